package kloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
	"github.com/shopspring/decimal"
)

func machinesTemplate(n int) string {
	return fmt.Sprintf("resource \"sandbox_machine\" \"m\" {\n  count = %d\n  name  = \"m-${count.index}\"\n}\n", n)
}

// BenchmarkApplyVsRawTerraform measures a stack apply through the API, from
// POST …/apply to the job succeeded, against raw `terraform init &&
// terraform apply` of the same machines with the same plugin, and prints
// the ratio (target ≤ 1.10).
func BenchmarkApplyVsRawTerraform(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			h := kloudtest.New(b)
			ctx := context.Background()
			cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
			if err != nil {
				b.Fatal(err)
			}
			tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "bench", Provider: "sandbox", Content: machinesTemplate(n)})
			if err != nil {
				b.Fatal(err)
			}
			tf := testenv.Terraform(b)
			cliConfig := testenv.CLIConfig(b, testenv.PluginDir(b))
			// The raw run reaches a sandbox host of its own, as Kloud's
			// plugin reaches Kloud's.
			host, err := sandbox.NewHost(sandbox.HostConfig{Root: b.TempDir(), Agent: []string{testenv.Klient(b)}})
			if err != nil {
				b.Fatal(err)
			}
			if err := host.Listen("127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			defer host.Close()
			rawToken, release := host.Grant(ctx, "cr-raw", filepath.Join(host.Root(), "cr-raw"))
			defer release()
			var api, raw, rawInit, rawBare, rawBareInit time.Duration
			var tfInit, tfApply int64 // the jobs' own timings, ms
			phases := &phaseTimes{}
			for i := 0; i < b.N; i++ {
				st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: fmt.Sprint("bench-", i), TemplateID: tpl.ID, CredentialID: cred.ID})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				ref, err := h.Admin.ApplyStack(ctx, st.ID)
				if err != nil {
					b.Fatal(err)
				}
				kloudtest.WaitJob(b, h.Admin, ref.JobID)
				took := time.Since(start)
				api += took
				phases.add(b, h.Admin, ref.JobID, start, start.Add(took))
				if jobs, err := h.Admin.StackJobs(ctx, st.ID); err == nil && len(jobs) > 0 {
					tfInit += jobs[0].Timings["init"]
					tfApply += jobs[0].Timings["apply"]
				}
				ref, err = h.Admin.DestroyStack(ctx, st.ID)
				if err != nil {
					b.Fatal(err)
				}
				kloudtest.WaitJob(b, h.Admin, ref.JobID)

				// The same machines, raw: the template, a provider block
				// for the raw host, and what Kloud composes onto every
				// machine (its agent's token and Kloud's URL, its tags),
				// taken from the files Kloud's own run used.
				files := map[string]string{
					"main.tf": machinesTemplate(n),
					"providers.tf": fmt.Sprintf("terraform {\n  required_providers {\n    sandbox = { source = %q }\n  }\n}\nprovider \"sandbox\" {\n  endpoint = %q\n  token = %q\n}\n",
						testenv.PluginSource, host.Endpoint(), rawToken),
					"terraform.tfvars.json": fmt.Sprintf(`{"kloud_sandbox_endpoint": %q, "kloud_url": %q}`, host.Endpoint(), h.URL),
				}
				for _, name := range []string{"kloud_override.tf.json", "kloud_variables.tf.json"} {
					content, err := os.ReadFile(filepath.Join(h.DataDir, "work", st.ID, name))
					if err != nil {
						b.Fatalf("Kloud's composed %s: %v", name, err)
					}
					files[name] = string(content)
				}
				env := append(testenv.TerraformEnv(cliConfig), "TF_VAR_kloud_agent_secret=bench-agent-secret")
				bare := map[string]string{"main.tf": files["main.tf"], "providers.tf": files["providers.tf"]}
				for _, run := range []struct {
					files      map[string]string
					total, ini *time.Duration
				}{{bare, &rawBare, &rawBareInit}, {files, &raw, &rawInit}} {
					dir := b.TempDir()
					for name, content := range run.files {
						if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
							b.Fatal(err)
						}
					}
					start = time.Now()
					runTF(b, tf, dir, env, "init", "-input=false", "-no-color")
					*run.ini += time.Since(start)
					runTF(b, tf, dir, env, "apply", "-auto-approve", "-input=false", "-no-color")
					*run.total += time.Since(start)
					runTF(b, tf, dir, env, "destroy", "-auto-approve", "-input=false", "-no-color")
				}
			}
			b.ReportMetric(float64(api.Milliseconds())/float64(b.N), "api-ms/op")
			b.ReportMetric(float64(raw.Milliseconds())/float64(b.N), "raw-ms/op")
			b.ReportMetric(float64(api)/float64(raw), "ratio")
			per := int64(b.N)
			b.Logf("apply of %d machine(s): API %d ms, raw terraform init+apply of the same machines %d ms: ratio %.2f (target ≤ 1.10); the API's time by phase: %s; terraform init %d ms and apply %d ms in the job, %d ms and %d ms raw; raw without what Kloud adds to each machine (agent token, Kloud URL, tags) %d ms (init %d ms): ratio %.2f",
				n, api.Milliseconds()/per, raw.Milliseconds()/per, float64(api)/float64(raw), phases.String(b.N),
				tfInit/per, tfApply/per, rawInit.Milliseconds()/per, (raw-rawInit).Milliseconds()/per,
				rawBare.Milliseconds()/per, rawBareInit.Milliseconds()/per, float64(api)/float64(rawBare))
		})
	}
}

// phaseTimes adds up, over a benchmark's applies, the time between a job's
// milestones (its phase events and fixed progress messages), from the POST
// to the client seeing the end.
type phaseTimes struct {
	order []string
	total map[string]time.Duration
}

// milestone names an event that starts a phase ("" for Terraform's output).
func milestone(e client.Event) string {
	switch {
	case e.Kind == "phase":
		name, _, _ := strings.Cut(e.Message, " on ") // "running apply on <worker>"
		return name
	case e.Kind == "done":
		return ""
	case e.Kind == "progress" && !strings.Contains(e.Message, ":"):
		return e.Message // "composing template", "running terraform apply", "recording machines"…
	}
	return ""
}

func (p *phaseTimes) add(b *testing.B, c *client.Client, jobID string, posted, seen time.Time) {
	evs, err := c.JobEvents(context.Background(), jobID)
	if err != nil || len(evs) == 0 {
		b.Fatalf("events of %s: %v", jobID, err)
	}
	if p.total == nil {
		p.total = map[string]time.Duration{}
	}
	put := func(name string, d time.Duration) {
		if _, ok := p.total[name]; !ok {
			p.order = append(p.order, name)
		}
		p.total[name] += d
	}
	put("POST until queued", evs[0].At.Sub(posted))
	cur, since := "queued", evs[0].At
	for _, e := range evs[1:] {
		name := milestone(e)
		if e.Kind == "done" {
			put(cur, e.At.Sub(since))
			cur, since = "done until the client saw it", e.At
			continue
		}
		if name == "" {
			continue
		}
		put(cur, e.At.Sub(since))
		cur, since = name, e.At
	}
	put(cur, seen.Sub(since))
}

func (p *phaseTimes) String(n int) string {
	var parts []string
	for _, name := range p.order {
		parts = append(parts, fmt.Sprintf("%s %d ms", name, p.total[name].Milliseconds()/int64(n)))
	}
	return strings.Join(parts, ", ")
}

func runTF(b *testing.B, tf, dir string, env []string, args ...string) {
	cmd := exec.Command(tf, args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// BenchmarkJobPickup measures, from the POST that queues a job to the
// moment a worker claims it (the job's started_at), the pickup latency of
// apply jobs, and prints its p50 and p99 (target p99 < 50 ms).
func BenchmarkJobPickup(b *testing.B) {
	h := kloudtest.New(b)
	ctx := context.Background()
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		b.Fatal(err)
	}
	tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "bench", Provider: "sandbox", Content: machinesTemplate(1)})
	if err != nil {
		b.Fatal(err)
	}
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "pickup", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		b.Fatal(err)
	}
	var pickups []time.Duration
	for i := 0; i < b.N; i++ {
		posted := time.Now()
		ref, err := h.Admin.ApplyStack(ctx, st.ID)
		if err != nil {
			b.Fatal(err)
		}
		j := kloudtest.WaitJob(b, h.Admin, ref.JobID)
		pickups = append(pickups, j.StartedAt.Sub(posted))
	}
	sort.Slice(pickups, func(i, j int) bool { return pickups[i] < pickups[j] })
	b.ReportMetric(float64(pickups[len(pickups)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pickups[(len(pickups)*99)/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkListMachines10k: GET /api/v1/machines?limit=100 over 10,000
// machines with a day of state history each, from 50 concurrent clients
// each walking the pages by their Link; prints the latency percentiles
// (target p99 < 20 ms on SQLite).
func BenchmarkListMachines10k(b *testing.B) {
	h := kloudtest.New(b)
	ctx := context.Background()
	seedMachines(b, h.Store, adminID(b, h), 10000, 24)
	// Billing brought up to date first: the day of history just seeded is
	// a backlog a running server has long rated (BenchmarkBilling measures
	// that), and its rating pass must not fall into the measurement.
	if _, err := h.Admin.ProcessRating(ctx); err != nil {
		b.Fatal(err)
	}
	const clients = 50
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	b.ResetTimer()
	var wg sync.WaitGroup
	// At least 20 pages per client: a p99 of a thousand requests.
	per := max(20, b.N/clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := ""
			for i := 0; i < per; i++ {
				if next == "" {
					next = "/api/v1/machines?limit=100"
				}
				// The body is read, not decoded: the figure is the server's.
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+next, nil)
				req.Header.Set("Authorization", "Bearer "+h.AdminToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(start)
				if resp.StatusCode != http.StatusOK || n < 100*100 {
					b.Errorf("list: status %d, %d bytes", resp.StatusCode, n)
					return
				}
				next = linkNext(resp.Header.Get("Link"))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := float64(lat[len(lat)*99/100].Microseconds()) / 1000
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.Logf("GET /api/v1/machines?limit=100, 10,000 machines, 50 clients, SQLite: p99 %.1f ms (target < 20 ms), %d requests", p99, len(lat))
}

// linkNext is the target of a Link header's rel="next" ("" when none).
func linkNext(link string) string {
	target, rel, ok := strings.Cut(link, ";")
	if !ok || !strings.Contains(rel, `rel="next"`) {
		return ""
	}
	return strings.Trim(strings.TrimSpace(target), "<>")
}

// BenchmarkServeRSS10k runs `kloud serve` (KLOUD_BIN) on a SQLite data dir
// holding 10,000 machines with a day of history, lists them all by pages
// from 50 clients, and prints the process's resident memory (target
// < 150 MiB).
func BenchmarkServeRSS10k(b *testing.B) {
	bin := os.Getenv("KLOUD_BIN")
	if bin == "" {
		b.Skip("set KLOUD_BIN to a built kloud (./build.sh bench does)")
	}
	dataDir := b.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir, sqlite.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	seedMachines(b, st, "usr-seed", 10000, 24)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "bench-admin-token-0123456789"
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--listen", addr, "--unconfined", "--log-level", "error")
	cmd.Env = append(os.Environ(), "KLOUD_ADMIN_TOKEN="+token)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	c := client.New("http://"+addr, token)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := c.Health(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("kloud serve did not answer within a minute")
		}
	}
	rssBefore := testenv.MemoryMiB(cmd.Process.Pid, "VmRSS")
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				ms, err := c.Machines(ctx)
				if err != nil || len(ms) != 10000 {
					b.Errorf("list = %d machines, %v", len(ms), err)
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	rss, peak := testenv.MemoryMiB(cmd.Process.Pid, "VmRSS"), testenv.MemoryMiB(cmd.Process.Pid, "VmHWM")
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.Logf("kloud serve with 10,000 machines: %.0f MiB resident at start, %.0f MiB after 50 clients listed them all (peak %.0f MiB; target < 150 MiB)", rssBefore, rss, peak)
}

// adminID is the id of the harness's admin, the owner of seeded machines.
func adminID(b *testing.B, h *kloudtest.Harness) string {
	b.Helper()
	users, err := h.Store.ListUsers(context.Background())
	if err != nil || len(users) == 0 {
		b.Fatalf("users: %v", err)
	}
	return users[0].ID
}

// seedMachines stores n machines of one stack of owner straight into st,
// each with changes state changes over the last day.
func seedMachines(b *testing.B, st store.Machines, owner string, n, changes int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now().Add(-24 * time.Hour).UTC()
	for i := 0; i < n; i++ {
		m := &stack.Machine{StackID: "stk-seed", OwnerID: owner, Provider: "sandbox", Label: fmt.Sprintf("sandbox_machine.m[%d]", i),
			State: machinestate.Running, Metadata: json.RawMessage(`{"size":"small","region":"local"}`), CreatedAt: start, UpdatedAt: start}
		if err := st.PutMachine(ctx, m); err != nil {
			b.Fatal(err)
		}
		for c := 1; c < changes; c++ {
			state := machinestate.Stopped
			if c%2 == 0 {
				state = machinestate.Running
			}
			if err := st.SetMachineState(ctx, m.ID, state, "", start.Add(time.Duration(c)*time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// quoteBench starts a server whose hashmap prices service instance by
// size and returns it with the body of a quote of 5,000 points.
func quoteBench(b *testing.B) (*kloudtest.Harness, []byte) {
	h := kloudtest.New(b)
	ctx := context.Background()
	c := h.Admin
	svc, err := c.CreateHashmapService(ctx, client.NameRequest{Name: "instance"})
	if err != nil {
		b.Fatal(err)
	}
	fld, err := c.CreateHashmapField(ctx, client.FieldRequest{ServiceID: svc.ID, Name: "size"})
	if err != nil {
		b.Fatal(err)
	}
	sizes := []string{"small", "medium", "large", "xlarge"}
	for i, sz := range sizes {
		if _, err := c.CreateHashmapMapping(ctx, client.MappingRequest{FieldID: fld.ID, Value: sz, Type: "flat", Cost: decimal.New(int64(i+1), -2)}); err != nil {
			b.Fatal(err)
		}
	}
	req := client.QuoteRequest{Points: make([]client.QuotePoint, 5000)}
	for i := range req.Points {
		req.Points[i] = client.QuotePoint{Service: "instance", Qty: decimal.New(int64(1+i%7), -1), Unit: "hour",
			Desc: map[string]string{"size": sizes[i%len(sizes)], "region": "us-east-1", "provider": "aws", "machine_id": fmt.Sprintf("m-%05d", i)}}
	}
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	return h, body
}

// BenchmarkQuote100k: POST /api/v1/rating/quote with 20 requests of 5,000
// points, priced by the hashmap module, one after another; prints the time
// for the 100,000 points (target ≤ 0.2 s).
func BenchmarkQuote100k(b *testing.B) {
	h, body := quoteBench(b)
	ctx := context.Background()
	var elapsed, cpu time.Duration
	b.ResetTimer()
	for range b.N {
		start, cpuStart := time.Now(), testenv.CPUTime()
		for range 20 {
			hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/api/v1/rating/quote", bytes.NewReader(body))
			hreq.Header.Set("Authorization", "Bearer "+h.AdminToken)
			hreq.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(hreq)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("quote: status %d", resp.StatusCode)
			}
		}
		elapsed += time.Since(start)
		cpu += testenv.CPUTime() - cpuStart
	}
	sec := elapsed.Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/100k-points")
	// The CPU time of client and server (one process), which others'
	// load on the machine does not inflate as much as the wall clock.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/100k-points")
	b.Logf("POST /api/v1/rating/quote, 20 requests of 5,000 points: %.3f s for the 100,000 (target ≤ 0.2 s), %.3f s CPU", sec, cpu.Seconds()/float64(b.N))
}

// BenchmarkQuoteHandler: one quote of 5,000 points through the server's
// handler (authentication, decoding, pricing, encoding), the answer
// dropped as the benchmark's client drops it, without the network; run
// with -benchmem.
func BenchmarkQuoteHandler(b *testing.B) {
	h, body := quoteBench(b)
	handler := h.Server.Handler()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/rating/quote", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		w := &droppedAnswer{header: http.Header{}}
		handler.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("quote: status %d", w.status)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/point")
}

// droppedAnswer is a ResponseWriter that keeps the status and drops the
// body.
type droppedAnswer struct {
	header http.Header
	status int
}

func (d *droppedAnswer) Header() http.Header { return d.header }

func (d *droppedAnswer) WriteHeader(status int) {
	if d.status == 0 {
		d.status = status
	}
}

func (d *droppedAnswer) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(p), nil
}

// BenchmarkListMachinesPage is one page of BenchmarkListMachines10k
// without the network: GET /api/v1/machines?limit=100 (a page in the
// middle, found by its cursor) through the server's handler into a
// recorder, authentication and middleware included. "cached" asks within
// one second (the list cache answers); "built" moves the clock a second
// every time, so every answer is read from the store and encoded anew.
// Run with -benchmem: the figures are CPU time and allocations a page.
func BenchmarkListMachinesPage(b *testing.B) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(b, func(c *kloud.Config) { c.Now = clock.Now })
	seedMachines(b, h.Store, adminID(b, h), 300, 24)
	handler := h.Server.Handler()
	get := func(target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.Len() < 100*100 {
			b.Fatalf("list %s: status %d, %d bytes", target, w.Code, w.Body.Len())
		}
		return w
	}
	// The second page: a cursor, and a Link to the third.
	target := linkNext(get("/api/v1/machines?limit=100").Header().Get("Link"))
	if target == "" {
		b.Fatal("the first page has no Link to the next")
	}
	for _, bb := range []struct {
		name  string
		every func()
	}{
		{"cached", func() {}},
		{"built", func() { clock.Advance(time.Second) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := testenv.CPUTime()
			for b.Loop() {
				bb.every()
				get(target)
			}
			b.ReportMetric(float64((testenv.CPUTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
