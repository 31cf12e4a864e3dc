package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kloud/kloud/client"
)

func ratingCommand(a *app) *cobra.Command {
	modules := &cobra.Command{
		Use:     "modules",
		Short:   "List the rating modules",
		Long:    `List the rating modules (noop, hashmap) with whether they run and their priority; higher priorities run first.`,
		Example: `  kloud rating modules`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.c.RatingModules(cmd.Context())
			if err != nil {
				return err
			}
			return a.printModules(ms)
		},
	}
	enabled := &boolText{}
	module := &cobra.Command{
		Use:   "module NAME",
		Short: "Show a rating module, or enable, disable or reprioritise it",
		Long: `Without flags, show the module. With --enabled or --priority (admin), change
only what is given: the other setting stays as it was.`,
		Example: `  kloud rating module hashmap
  kloud rating module hashmap --enabled false
  kloud rating module hashmap --priority 10`,
		Args:              need("NAME"),
		ValidArgsFunction: cobra.FixedCompletions([]string{"hashmap", "noop"}, cobra.ShellCompDirectiveNoFileComp),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u client.ModuleUpdate
			if cmd.Flags().Changed("enabled") {
				u.Enabled = &enabled.v
			}
			if cmd.Flags().Changed("priority") {
				p, _ := cmd.Flags().GetInt("priority")
				u.Priority = &p
			}
			var (
				m   *client.RatingModule
				err error
			)
			if u.Enabled == nil && u.Priority == nil {
				m, err = a.c.RatingModule(cmd.Context(), args[0])
			} else {
				m, err = a.c.UpdateRatingModule(cmd.Context(), args[0], u)
			}
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(m, nil, nil)
			}
			return a.printModules([]client.RatingModule{*m})
		},
	}
	module.Flags().Var(enabled, "enabled", "run the module (true) or not (false)")
	module.Flags().Int("priority", 0, "priority (higher runs first)")

	quote := &cobra.Command{
		Use:   "quote",
		Short: "Price hypothetical usage with the current rules",
		Long: `Price points through the rating pipeline as it is configured now, as a rated
period would be. Quantities are decimals (strings or numbers).`,
		Example: `  kloud rating quote --points '[{"service":"instance","qty":"1","unit":"hour","desc":{"size":"small"}}]'
  kloud rating quote --points @usage.json -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var points []client.QuotePoint
			if err := decodeFlag("points", str(cmd, "points"), &points); err != nil {
				return err
			}
			q, err := a.c.Quote(cmd.Context(), client.QuoteRequest{Points: points})
			if err != nil {
				return err
			}
			if err := a.print(q, []string{"SERVICE", "QTY", "UNIT", "DESC", "PRICE"}, func() [][]string {
				var rows [][]string
				for _, p := range q.Points {
					rows = append(rows, []string{p.Service, p.Qty.String(), p.Unit, pairs(p.Desc), p.Price.String()})
				}
				return rows
			}); err != nil || a.output == "json" {
				return err
			}
			fmt.Fprintf(a.out, "total: %s\n", q.Total)
			return nil
		},
	}
	quote.Flags().String("points", "", `points as a JSON array, e.g. [{"service":"instance","qty":"1","unit":"hour","desc":{"size":"small"}}] (or @file)`)

	summary := &cobra.Command{
		Use:   "summary",
		Short: "Sum rated usage, grouped and paged",
		Long: `Sum the rated points of a time range: quantity and price per period, grouped
by the given keys (machine_id, stack_id, provider, owner, size, ...), filtered
by key:value pairs and paged with --offset and --limit. Members see only their
own usage; admins may pick a --scope (an owner id).`,
		Example: `  kloud rating summary
  kloud rating summary --groupby machine_id,size
  kloud rating summary --begin 2026-12-01T00:00:00Z --filters provider:sandbox -o json`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := summaryQuery(cmd)
			if err != nil {
				return err
			}
			sum, err := a.c.Summary(cmd.Context(), q)
			if err != nil {
				return err
			}
			header := make([]string, len(sum.Columns))
			for i, c := range sum.Columns {
				header[i] = strings.ToUpper(c)
			}
			return a.print(sum, header, func() [][]string {
				var rows [][]string
				for _, r := range sum.Results {
					row := make([]string, len(r))
					for i, v := range r {
						row[i] = "-"
						if v != nil {
							row[i] = *v
						}
					}
					rows = append(rows, row)
				}
				return rows
			})
		},
	}
	rangeFlags(summary)
	summary.Flags().String("groupby", "", "comma-separated groupby keys")
	summary.Flags().Int("offset", 0, "rows to skip")
	summary.Flags().Int("limit", 0, "rows to show (0: all)")

	frames := &cobra.Command{
		Use:   "dataframes",
		Short: "List rated dataframes, point by point",
		Long: `List the rated frames of a time range: for each scope and period, every
service's points with their quantity, price, groupby and metadata.`,
		Example: `  kloud rating dataframes --begin 2026-12-01T00:00:00Z -o json
  kloud rating dataframes --filters machine_id:m-1`,
		Args: need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := summaryQuery(cmd)
			if err != nil {
				return err
			}
			fs, err := a.c.DataFrames(cmd.Context(), q)
			if err != nil {
				return err
			}
			return a.print(fs, []string{"BEGIN", "END", "SERVICE", "QTY", "UNIT", "PRICE", "GROUPBY"}, func() [][]string {
				var rows [][]string
				for _, f := range fs {
					for _, svc := range slices.Sorted(maps.Keys(f.Usage)) {
						for _, p := range f.Usage[svc] {
							rows = append(rows, []string{ago(f.Period.Begin), ago(f.Period.End), svc, p.Vol.Qty.String(), p.Vol.Unit, p.Rating.Price.String(), pairs(p.Groupby)})
						}
					}
				}
				return rows
			})
		},
	}
	rangeFlags(frames)

	process := &cobra.Command{
		Use:   "process",
		Short: "Rate every closed period now",
		Long: `Rate every closed period of every scope now and write the reports (admin),
instead of waiting for the server's rating loop.`,
		Example: `  kloud rating process`,
		Args:    need(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.c.ProcessRating(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(p, []string{"SCOPES", "PERIODS", "POINTS"}, func() [][]string {
				return [][]string{{strconv.Itoa(p.Scopes), strconv.Itoa(p.Periods), strconv.Itoa(p.Points)}}
			})
		},
	}
	return group("rating", "Price usage: modules, hashmap rules, quotes and summaries",
		`The rating bridge turns machine uptime into priced usage, CloudKitty's way:
a collector, a pipeline of rating modules (hashmap prices with services,
fields, mappings and thresholds), rated storage and report writers.`,
		`  kloud rating hashmap services --data '{"name":"instance"}'
  kloud rating quote --points '[{"service":"instance","qty":"2"}]'
  kloud rating summary --groupby machine_id`,
		modules, module, hashmapCommand(a), quote, summary, frames, process, reprocessCommand(a))
}

func rangeFlags(cmd *cobra.Command) {
	cmd.Flags().String("begin", "", "RFC 3339 begin")
	cmd.Flags().String("end", "", "RFC 3339 end")
	cmd.Flags().String("filters", "", "comma-separated key:value filters")
	cmd.Flags().String("scope", "", "scope (an owner id; admins only)")
}

// summaryQuery reads the range, filter, groupby and page flags a command
// has.
func summaryQuery(cmd *cobra.Command) (client.SummaryQuery, error) {
	var q client.SummaryQuery
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"begin", &q.Begin}, {"end", &q.End}} {
		if v := str(cmd, f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, usagef("--%s %q is not an RFC 3339 time", f.name, clip(v))
			}
			*f.dst = t
		}
	}
	for _, g := range strings.Split(str(cmd, "groupby"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			q.GroupBy = append(q.GroupBy, g)
		}
	}
	for _, f := range strings.Split(str(cmd, "filters"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, ":")
		if !ok || k == "" {
			return q, usagef("--filters %q: want key:value", clip(f))
		}
		if q.Filters == nil {
			q.Filters = map[string]string{}
		}
		q.Filters[k] = v
	}
	q.Offset, _ = cmd.Flags().GetInt("offset")
	q.Limit, _ = cmd.Flags().GetInt("limit")
	q.Scope = str(cmd, "scope")
	return q, nil
}

func (a *app) printModules(ms []client.RatingModule) error {
	return a.print(ms, []string{"MODULE", "ENABLED", "PRIORITY", "DESCRIPTION"}, func() [][]string {
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{m.Name, strconv.FormatBool(m.Enabled), strconv.Itoa(m.Priority), m.Description})
		}
		return rows
	})
}

// pairs shows a map as k=v, sorted by key.
func pairs(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// ruleKind is one kind of hashmap rule as the CLI handles it: each call
// answers the value to print and its table rows.
type ruleKind struct {
	header []string
	list   func(ctx context.Context, f client.RuleFilter) (any, [][]string, error)
	get    func(ctx context.Context, id string) (any, [][]string, error)
	create func(ctx context.Context, data string) (any, [][]string, error)
	update func(ctx context.Context, id, data string) (any, [][]string, error) // nil: not replaceable
	del    func(ctx context.Context, id string) error
}

// one answers a single value with its row.
func one[T any](v *T, err error, row func(T) []string) (any, [][]string, error) {
	if err != nil {
		return nil, nil, err
	}
	return v, [][]string{row(*v)}, nil
}

// many answers a list with its rows.
func many[T any](vs []T, err error, row func(T) []string) (any, [][]string, error) {
	if err != nil {
		return nil, nil, err
	}
	rows := make([][]string, len(vs))
	for i, v := range vs {
		rows[i] = row(v)
	}
	return vs, rows, nil
}

// create decodes a rule's --data into its request type and sends it.
func create[Req, T any](send func(context.Context, Req) (*T, error), row func(T) []string) func(context.Context, string) (any, [][]string, error) {
	return func(ctx context.Context, data string) (any, [][]string, error) {
		var req Req
		if err := decodeFlag("data", data, &req); err != nil {
			return nil, nil, err
		}
		v, err := send(ctx, req)
		return one(v, err, row)
	}
}

func ruleKinds(c *client.Client) map[string]ruleKind {
	service := func(s client.HashmapService) []string { return []string{s.ID, s.Name} }
	field := func(f client.HashmapField) []string { return []string{f.ID, f.ServiceID, f.Name} }
	group := func(g client.HashmapGroup) []string { return []string{g.ID, g.Name} }
	mapping := func(m client.HashmapMapping) []string {
		return []string{m.ID, orDash(m.ServiceID), orDash(m.FieldID), orDash(m.Value), orDash(m.GroupID), m.Type, m.Cost.String()}
	}
	threshold := func(t client.HashmapThreshold) []string {
		return []string{t.ID, orDash(t.ServiceID), orDash(t.FieldID), orDash(t.GroupID), t.Level.String(), t.Type, t.Cost.String()}
	}
	return map[string]ruleKind{
		"services": {
			header: []string{"ID", "NAME"},
			list: func(ctx context.Context, _ client.RuleFilter) (any, [][]string, error) {
				vs, err := c.HashmapServices(ctx)
				return many(vs, err, service)
			},
			get: func(ctx context.Context, id string) (any, [][]string, error) {
				v, err := c.HashmapService(ctx, id)
				return one(v, err, service)
			},
			create: create(c.CreateHashmapService, service),
			del:    c.DeleteHashmapService,
		},
		"fields": {
			header: []string{"ID", "SERVICE", "NAME"},
			list: func(ctx context.Context, f client.RuleFilter) (any, [][]string, error) {
				vs, err := c.HashmapFields(ctx, f.ServiceID)
				return many(vs, err, field)
			},
			get: func(ctx context.Context, id string) (any, [][]string, error) {
				v, err := c.HashmapField(ctx, id)
				return one(v, err, field)
			},
			create: create(c.CreateHashmapField, field),
			del:    c.DeleteHashmapField,
		},
		"groups": {
			header: []string{"ID", "NAME"},
			list: func(ctx context.Context, _ client.RuleFilter) (any, [][]string, error) {
				vs, err := c.HashmapGroups(ctx)
				return many(vs, err, group)
			},
			get: func(ctx context.Context, id string) (any, [][]string, error) {
				v, err := c.HashmapGroup(ctx, id)
				return one(v, err, group)
			},
			create: create(c.CreateHashmapGroup, group),
			del:    c.DeleteHashmapGroup,
		},
		"mappings": {
			header: []string{"ID", "SERVICE", "FIELD", "VALUE", "GROUP", "TYPE", "COST"},
			list: func(ctx context.Context, f client.RuleFilter) (any, [][]string, error) {
				vs, err := c.HashmapMappings(ctx, f)
				return many(vs, err, mapping)
			},
			get: func(ctx context.Context, id string) (any, [][]string, error) {
				v, err := c.HashmapMapping(ctx, id)
				return one(v, err, mapping)
			},
			create: create(c.CreateHashmapMapping, mapping),
			update: func(ctx context.Context, id, data string) (any, [][]string, error) {
				return create(func(ctx context.Context, r client.MappingRequest) (*client.HashmapMapping, error) {
					return c.UpdateHashmapMapping(ctx, id, r)
				}, mapping)(ctx, data)
			},
			del: c.DeleteHashmapMapping,
		},
		"thresholds": {
			header: []string{"ID", "SERVICE", "FIELD", "GROUP", "LEVEL", "TYPE", "COST"},
			list: func(ctx context.Context, f client.RuleFilter) (any, [][]string, error) {
				vs, err := c.HashmapThresholds(ctx, f)
				return many(vs, err, threshold)
			},
			get: func(ctx context.Context, id string) (any, [][]string, error) {
				v, err := c.HashmapThreshold(ctx, id)
				return one(v, err, threshold)
			},
			create: create(c.CreateHashmapThreshold, threshold),
			update: func(ctx context.Context, id, data string) (any, [][]string, error) {
				return create(func(ctx context.Context, r client.ThresholdRequest) (*client.HashmapThreshold, error) {
					return c.UpdateHashmapThreshold(ctx, id, r)
				}, threshold)(ctx, data)
			},
			del: c.DeleteHashmapThreshold,
		},
	}
}

var ruleKindNames = []string{"services", "fields", "groups", "mappings", "thresholds"}

func hashmapCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hashmap KIND [ID]",
		Short: "List, show, create, replace or delete hashmap rules",
		Long: `Manage the hashmap module's rules, in CloudKitty's shapes. KIND is services,
fields, groups, mappings or thresholds.

  kloud rating hashmap KIND               list (--service, --field, --group filter)
  kloud rating hashmap KIND ID            show one
  kloud rating hashmap KIND --data JSON   create one (admin)
  kloud rating hashmap KIND ID --data JSON  replace a mapping or threshold (admin)
  kloud rating hashmap KIND ID --delete   delete one (admin)

Costs and levels are decimals (strings or numbers); a mapping or threshold is
flat unless its type is rate.`,
		Example: `  kloud rating hashmap services --data '{"name":"instance"}'
  kloud rating hashmap fields --data '{"service_id":"SVC","name":"size"}'
  kloud rating hashmap mappings --data '{"field_id":"FIELD","value":"small","type":"flat","cost":"0.05"}'
  kloud rating hashmap thresholds --data '{"service_id":"SVC","level":"50","type":"rate","cost":"0.98"}'
  kloud rating hashmap mappings --field FIELD -o json
  kloud rating hashmap mappings MAPPING --delete`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := need("KIND", "[ID]")(cmd, args); err != nil {
				return err
			}
			if !slices.Contains(ruleKindNames, args[0]) {
				return usagef("unknown rule kind %q; want one of %s", clip(args[0]), strings.Join(ruleKindNames, ", "))
			}
			return nil
		},
		ValidArgs: ruleKindNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := ruleKinds(a.c)[args[0]]
			ctx := cmd.Context()
			id := ""
			if len(args) > 1 {
				id = args[1]
			}
			del, _ := cmd.Flags().GetBool("delete")
			data := str(cmd, "data")
			var (
				v    any
				rows [][]string
				err  error
			)
			switch {
			case del && id == "":
				return usagef("--delete needs the ID of the rule")
			case del && data != "":
				return usagef("--delete and --data do not go together")
			case del:
				return kind.del(ctx, id)
			case data != "" && id == "":
				v, rows, err = kind.create(ctx, data)
			case data != "":
				if kind.update == nil {
					return usagef("%s cannot be replaced; delete and create it", args[0])
				}
				v, rows, err = kind.update(ctx, id, data)
			case id != "":
				v, rows, err = kind.get(ctx, id)
			default:
				v, rows, err = kind.list(ctx, client.RuleFilter{ServiceID: str(cmd, "service"), FieldID: str(cmd, "field"), GroupID: str(cmd, "group")})
			}
			if err != nil {
				return err
			}
			return a.print(v, kind.header, func() [][]string { return rows })
		},
	}
	cmd.Flags().String("data", "", "the rule as a JSON object, to create or replace it (or @file)")
	cmd.Flags().Bool("delete", false, "delete the rule with the given ID")
	cmd.Flags().String("service", "", "list only the rules of this service id")
	cmd.Flags().String("field", "", "list only the rules of this field id")
	cmd.Flags().String("group", "", "list only the rules of this group id")
	return cmd
}
