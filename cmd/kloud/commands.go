package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/kloud/kloud/client"
)

func followFlag(fs *flag.FlagSet) { fs.Bool("follow", false, "stream the job's events until it ends") }

func commands() map[string]command {
	return map[string]command{
		"user create": {
			flags: func(fs *flag.FlagSet) { fs.String("role", "member", "admin or member") },
			run: func(cc *cmdContext) error {
				name, err := cc.arg(0, "NAME")
				if err != nil {
					return err
				}
				u, err := cc.c.CreateUser(cc.ctx, client.CreateUserRequest{Name: name, Role: cc.str("role")})
				if err != nil {
					return err
				}
				return cc.print(u, []string{"ID", "NAME", "ROLE", "TOKEN"}, func() [][]string { return [][]string{{u.ID, u.Name, u.Role, u.Token}} })
			},
		},
		"credential add": {
			flags: func(fs *flag.FlagSet) {
				fs.String("title", "", "title")
				fs.String("data", "{}", "credential data as a JSON object (or @file)")
			},
			run: func(cc *cmdContext) error {
				prov, err := cc.arg(0, "PROVIDER")
				if err != nil {
					return err
				}
				data, err := readArg(cc.str("data"))
				if err != nil {
					return err
				}
				if !json.Valid(data) {
					return fmt.Errorf("--data is not valid JSON")
				}
				c, err := cc.c.CreateCredential(cc.ctx, client.CreateCredentialRequest{Provider: prov, Title: cc.str("title"), Data: data})
				if err != nil {
					return err
				}
				return cc.printCredentials([]client.Credential{*c})
			},
		},
		"credential list": {run: func(cc *cmdContext) error {
			cs, err := cc.c.Credentials(cc.ctx)
			if err != nil {
				return err
			}
			return cc.printCredentials(cs)
		}},
		"credential show": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			c, err := cc.c.Credential(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.printCredentials([]client.Credential{*c})
		}},
		"credential delete": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			return cc.c.DeleteCredential(cc.ctx, id)
		}},
		"credential verify": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			r, err := cc.c.VerifyCredential(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.print(r, []string{"VERIFIED", "MESSAGE"}, func() [][]string { return [][]string{{strconv.FormatBool(r.Verified), r.Message}} })
		}},
		"credential bootstrap": {
			flags: func(fs *flag.FlagSet) {
				followFlag(fs)
				fs.Bool("destroy", false, "destroy the bootstrap resources instead")
			},
			run: func(cc *cmdContext) error {
				id, err := cc.arg(0, "ID")
				if err != nil {
					return err
				}
				ref, err := cc.c.BootstrapCredential(cc.ctx, id, cc.flag("destroy"))
				return cc.startedJob(ref, err, cc.flag("follow"))
			},
		},
		"template create": {
			flags: func(fs *flag.FlagSet) {
				fs.String("title", "", "title (default: the file name)")
				fs.String("provider", "sandbox", "provider")
				fs.String("format", "", "hcl or json (default: from the file name)")
			},
			run: func(cc *cmdContext) error {
				file, err := cc.arg(0, "FILE")
				if err != nil {
					return err
				}
				content, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				format := cc.str("format")
				if format == "" {
					format = "hcl"
					if strings.HasSuffix(file, ".json") {
						format = "json"
					}
				}
				title := cc.str("title")
				if title == "" {
					title = file
				}
				t, err := cc.c.CreateTemplate(cc.ctx, client.CreateTemplateRequest{Title: title, Provider: cc.str("provider"), Content: string(content), Format: format})
				if err != nil {
					return err
				}
				return cc.printTemplates([]client.Template{*t})
			},
		},
		"template list": {run: func(cc *cmdContext) error {
			ts, err := cc.c.Templates(cc.ctx)
			if err != nil {
				return err
			}
			return cc.printTemplates(ts)
		}},
		"template show": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			t, err := cc.c.Template(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.print(t, nil, nil)
		}},
		"template plan": {
			flags: func(fs *flag.FlagSet) {
				fs.String("credential", "", "credential id")
				fs.Var(varsFlag{}, "var", "variable name=value (repeatable)")
			},
			run: func(cc *cmdContext) error {
				id, err := cc.arg(0, "ID")
				if err != nil {
					return err
				}
				vars := map[string]string(cc.fs.Lookup("var").Value.(varsFlag))
				p, err := cc.c.PlanTemplate(cc.ctx, id, client.PlanRequest{CredentialID: cc.str("credential"), Variables: vars})
				if err != nil {
					return err
				}
				if cc.output == "json" {
					return cc.print(p, nil, nil)
				}
				if err := cc.print(p, []string{"MACHINE", "ACTION", "SIZE"}, func() [][]string {
					var rows [][]string
					for _, m := range p.Machines {
						rows = append(rows, []string{m.Label, m.Action, m.Size})
					}
					return rows
				}); err != nil {
					return err
				}
				fmt.Fprintf(cc.out, "estimated cost: %s %s/hour, %s %s/month\n", p.CostEstimate.Hourly, p.CostEstimate.Currency, p.CostEstimate.Monthly, p.CostEstimate.Currency)
				return nil
			},
		},
		"stack create": {
			flags: func(fs *flag.FlagSet) {
				fs.String("title", "", "title")
				fs.String("template", "", "template id")
				fs.String("credential", "", "credential id")
				fs.Var(varsFlag{}, "var", "variable name=value (repeatable)")
			},
			run: func(cc *cmdContext) error {
				vars := map[string]string(cc.fs.Lookup("var").Value.(varsFlag))
				s, err := cc.c.CreateStack(cc.ctx, client.CreateStackRequest{Title: cc.str("title"), TemplateID: cc.str("template"), CredentialID: cc.str("credential"), Variables: vars})
				if err != nil {
					return err
				}
				return cc.printStacks([]client.Stack{*s})
			},
		},
		"stack list": {run: func(cc *cmdContext) error {
			ss, err := cc.c.Stacks(cc.ctx)
			if err != nil {
				return err
			}
			return cc.printStacks(ss)
		}},
		"stack show": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			s, err := cc.c.Stack(cc.ctx, id)
			if err != nil {
				return err
			}
			if cc.output == "json" {
				return cc.print(s, nil, nil)
			}
			if err := cc.printStacks([]client.Stack{*s}); err != nil {
				return err
			}
			fmt.Fprintln(cc.out)
			return cc.printMachines(s.Machines)
		}},
		"stack apply": {flags: followFlag, run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			ref, err := cc.c.ApplyStack(cc.ctx, id)
			return cc.startedJob(ref, err, cc.flag("follow"))
		}},
		"stack destroy": {flags: followFlag, run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			ref, err := cc.c.DestroyStack(cc.ctx, id)
			return cc.startedJob(ref, err, cc.flag("follow"))
		}},
		"job show": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			j, err := cc.c.Job(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.print(j, []string{"ID", "KIND", "STATUS", "PERCENT", "ERROR"}, func() [][]string {
				return [][]string{{j.ID, j.Kind, j.Status, strconv.Itoa(j.Percentage), j.Error}}
			})
		}},
		"job cancel": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			j, err := cc.c.Cancel(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.print(j, []string{"ID", "KIND", "STATUS", "ERROR", "CANCEL"}, func() [][]string {
				return [][]string{{j.ID, j.Kind, j.Status, j.Error, j.CancelReason}}
			})
		}},
		"job events": {flags: followFlag, run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			if cc.flag("follow") {
				return cc.follow(id)
			}
			evs, err := cc.c.JobEvents(cc.ctx, id)
			if err != nil {
				return err
			}
			return cc.print(evs, []string{"SEQ", "AT", "KIND", "PERCENT", "MESSAGE"}, func() [][]string {
				var rows [][]string
				for _, e := range evs {
					rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), ago(e.At), e.Kind, strconv.Itoa(e.Percentage), e.Message})
				}
				return rows
			})
		}},
		"machine list": {run: func(cc *cmdContext) error {
			ms, err := cc.c.Machines(cc.ctx)
			if err != nil {
				return err
			}
			return cc.printMachines(ms)
		}},
		"machine info": {run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			m, err := cc.c.Machine(cc.ctx, id)
			if err != nil {
				return err
			}
			if cc.output == "json" {
				return cc.print(m, nil, nil)
			}
			if err := cc.printMachines([]client.Machine{*m}); err != nil {
				return err
			}
			fmt.Fprintf(cc.out, "agent:\n  status:       %s\n  last seen at: %s\n  version:      %s\n",
				m.Agent.Status, agentSeen(m.Agent), orDash(m.Agent.Version))
			fmt.Fprintf(cc.out, "metadata: %s\n", m.Metadata)
			return nil
		}},
		"machine start": {flags: followFlag, run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			ref, err := cc.c.StartMachine(cc.ctx, id)
			return cc.startedJob(ref, err, cc.flag("follow"))
		}},
		"machine stop": {flags: followFlag, run: func(cc *cmdContext) error {
			id, err := cc.arg(0, "ID")
			if err != nil {
				return err
			}
			ref, err := cc.c.StopMachine(cc.ctx, id)
			return cc.startedJob(ref, err, cc.flag("follow"))
		}},
		"rating modules": {run: func(cc *cmdContext) error { return cc.raw(http.MethodGet, "/api/v1/rating/modules", nil) }},
		"rating module": {
			flags: func(fs *flag.FlagSet) {
				fs.String("enabled", "", "true or false")
				fs.Int("priority", 0, "priority (higher runs first)")
			},
			run: func(cc *cmdContext) error {
				name, err := cc.arg(0, "NAME")
				if err != nil {
					return err
				}
				body := map[string]any{"priority": cc.fs.Lookup("priority").Value.(flag.Getter).Get()}
				if e := cc.str("enabled"); e != "" {
					b, err := strconv.ParseBool(e)
					if err != nil {
						return fmt.Errorf("--enabled: %w", err)
					}
					body["enabled"] = b
				}
				return cc.raw(http.MethodPut, "/api/v1/rating/modules/"+url.PathEscape(name), body)
			},
		},
		"rating quote": {
			flags: func(fs *flag.FlagSet) {
				fs.String("points", "", `points as JSON, e.g. [{"service":"instance","qty":"1","unit":"hour","desc":{"size":"small"}}] (or @file)`)
			},
			run: func(cc *cmdContext) error {
				data, err := readArg(cc.str("points"))
				if err != nil {
					return err
				}
				var points []json.RawMessage
				if err := json.Unmarshal(data, &points); err != nil {
					return fmt.Errorf("--points: %w", err)
				}
				return cc.raw(http.MethodPost, "/api/v1/rating/quote", map[string]any{"points": points})
			},
		},
		"rating summary": {
			flags: func(fs *flag.FlagSet) {
				fs.String("begin", "", "RFC 3339 begin")
				fs.String("end", "", "RFC 3339 end")
				fs.String("groupby", "", "comma-separated groupby keys")
				fs.String("filters", "", "comma-separated key:value filters")
			},
			run: func(cc *cmdContext) error {
				q := url.Values{}
				for _, k := range []string{"begin", "end"} {
					if v := cc.str(k); v != "" {
						q.Set(k, v)
					}
				}
				for _, k := range []string{"groupby", "filters"} {
					for _, v := range strings.Split(cc.str(k), ",") {
						if v != "" {
							q.Add(k, v)
						}
					}
				}
				var sum struct {
					Total   int      `json:"total"`
					Columns []string `json:"columns"`
					Results [][]any  `json:"results"`
				}
				if err := cc.c.Do(cc.ctx, http.MethodGet, "/api/v1/rating/summary?"+q.Encode(), nil, &sum); err != nil {
					return err
				}
				return cc.print(sum, upper(sum.Columns), func() [][]string {
					var rows [][]string
					for _, r := range sum.Results {
						row := make([]string, len(r))
						for i, v := range r {
							row[i] = fmt.Sprint(v)
						}
						rows = append(rows, row)
					}
					return rows
				})
			},
		},
		"rating hashmap": {
			flags: func(fs *flag.FlagSet) {
				fs.String("data", "", "the rule as a JSON object, to create it (or @file)")
				fs.Bool("delete", false, "delete the rule with the given id")
			},
			run: func(cc *cmdContext) error {
				kind, err := cc.arg(0, "services|fields|groups|mappings|thresholds")
				if err != nil {
					return err
				}
				path := "/api/v1/rating/modules/hashmap/" + url.PathEscape(kind)
				switch {
				case cc.flag("delete"):
					id, err := cc.arg(1, "ID")
					if err != nil {
						return err
					}
					return cc.c.Do(cc.ctx, http.MethodDelete, path+"/"+url.PathEscape(id), nil, nil)
				case cc.str("data") != "":
					data, err := readArg(cc.str("data"))
					if err != nil {
						return err
					}
					if !json.Valid(data) {
						return fmt.Errorf("--data is not valid JSON")
					}
					return cc.raw(http.MethodPost, path, json.RawMessage(data))
				}
				return cc.raw(http.MethodGet, path, nil)
			},
		},
		"rating process": {run: func(cc *cmdContext) error { return cc.raw(http.MethodPost, "/api/v1/rating/process", nil) }},
		"report list":    {run: func(cc *cmdContext) error { return cc.raw(http.MethodGet, "/api/v1/reports", nil) }},
		"report get": {run: func(cc *cmdContext) error {
			name, err := cc.arg(0, "NAME")
			if err != nil {
				return err
			}
			return cc.c.Do(cc.ctx, http.MethodGet, "/api/v1/reports/"+url.PathEscape(name), nil, cc.out)
		}},
	}
}

// raw calls an endpoint and prints its JSON answer as is.
func (cc *cmdContext) raw(method, path string, body any) error {
	var out json.RawMessage
	if err := cc.c.Do(cc.ctx, method, path, body, &out); err != nil {
		return err
	}
	return cc.print(out, nil, nil)
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// readArg returns s, or the file's content when s is @file.
func readArg(s string) ([]byte, error) {
	if name, ok := strings.CutPrefix(s, "@"); ok {
		return os.ReadFile(name)
	}
	return []byte(s), nil
}

func (cc *cmdContext) printCredentials(cs []client.Credential) error {
	return cc.print(cs, []string{"ID", "PROVIDER", "TITLE", "VERIFIED", "BOOTSTRAPPED"}, func() [][]string {
		var rows [][]string
		for _, c := range cs {
			rows = append(rows, []string{c.ID, c.Provider, c.Title, strconv.FormatBool(c.Verified), strconv.FormatBool(c.Bootstrapped)})
		}
		return rows
	})
}

func (cc *cmdContext) printTemplates(ts []client.Template) error {
	return cc.print(ts, []string{"ID", "PROVIDER", "FORMAT", "TITLE"}, func() [][]string {
		var rows [][]string
		for _, t := range ts {
			rows = append(rows, []string{t.ID, t.Provider, t.Format, t.Title})
		}
		return rows
	})
}

func (cc *cmdContext) printStacks(ss []client.Stack) error {
	return cc.print(ss, []string{"ID", "TITLE", "STATUS", "MACHINES", "REASON"}, func() [][]string {
		var rows [][]string
		for _, s := range ss {
			rows = append(rows, []string{s.ID, s.Title, string(s.Status), strconv.Itoa(len(s.Machines)), s.Reason})
		}
		return rows
	})
}

// printMachines prints machines as the server computed them: the uptime
// is the server's uptime_seconds, the same in a list and in info.
func (cc *cmdContext) printMachines(ms []client.Machine) error {
	return cc.print(ms, []string{"ID", "LABEL", "PROVIDER", "STATE", "ALWAYS_ON", "UPTIME", "AGENT", "REASON"}, func() [][]string {
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{m.ID, m.Label, m.Provider, m.State.String(), strconv.FormatBool(m.AlwaysOn), fmt.Sprintf("%ds", m.UptimeSeconds), orDash(m.Agent.Status), m.Reason})
		}
		return rows
	})
}

func agentSeen(a client.AgentStatus) string {
	if a.LastSeenAt == nil {
		return "-"
	}
	return ago(*a.LastSeenAt)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
