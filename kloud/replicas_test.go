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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
	"github.com/kloud/kloud/store/mongo"
	"github.com/kloud/kloud/store/secretbox"
)

// replica is one `kloud serve` process of the replicas test.
type replica struct {
	name    string
	cmd     *exec.Cmd
	url     string
	dataDir string
	worker  string // its worker id in job leases: host:pid
	done    chan struct{}
	client  *client.Client
}

func (r *replica) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startReplica runs `kloud serve` on the Mongo URI with its own data dir;
// agents reach the service at publicURL (the balancer).
func startReplica(t *testing.T, name, storeURI, publicURL, token, secret, sandboxRoot string) *replica {
	t.Helper()
	dataDir := t.TempDir()
	port := freePort(t)
	r := &replica{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), dataDir: dataDir, done: make(chan struct{})}
	r.cmd = exec.Command(kloudBinary(t), "serve", "--store", storeURI, "--data-dir", dataDir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--url", publicURL,
		"--job-lease", "6s", "--shutdown-grace", "5s", "--workers", "4",
		"--check-interval", "1s", "--rating-interval", "1s",
		// One owner's stacks on every replica at once, as before fair
		// share: this test is about replicas, not about owners.
		"--max-jobs-per-owner", "12")
	r.cmd.Env = append(os.Environ(),
		"KLOUD_ADMIN_TOKEN="+token,
		secretbox.EnvKey+"="+secret, // every replica of one database shares the key
		"KLOUD_TERRAFORM="+testenv.Terraform(t),
		"KLOUD_PLUGIN_DIR="+testenv.PluginDir(t),
		"KLOUD_KLIENT="+testenv.Klient(t),
		"KLOUD_SANDBOX_ROOT="+sandboxRoot, // the sandbox "cloud" every replica reaches
	)
	logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	r.worker = fmt.Sprintf("%s:%d", host, r.cmd.Process.Pid)
	go func() { _ = r.cmd.Wait(); logFile.Close(); close(r.done) }()
	t.Cleanup(func() {
		if r.alive() {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
		}
		<-r.done
		log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
		if dir := os.Getenv("KLOUD_REPLICAS_LOG_DIR"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, "replica-"+r.name+".log"), log, 0o600)
		}
		if t.Failed() {
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("replica %s log (tail):\n%s", r.name, log)
		}
	})
	r.client = client.New(r.url, token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := r.client.Health(context.Background())
		if err == nil && h.Status == "ok" {
			return r
		}
		if !r.alive() || time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
			t.Fatalf("replica %s did not start: %v\n%s", name, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// terraformProcs returns the Terraform processes (and provider plugins
// serving them) running in the replica's working directories. Sandbox
// machine agents started from there are machines, not part of the replica.
func (r *replica) terraformProcs() []testenv.Proc {
	var out []testenv.Proc
	for _, p := range testenv.Processes(filepath.Join(r.dataDir, "work")) {
		argv0, _, _ := strings.Cut(p.Cmdline, " ")
		if filepath.Base(argv0) == "terraform" || strings.Contains(argv0, "terraform-provider-") && !strings.Contains(p.Cmdline, " agent ") {
			out = append(out, p)
		}
	}
	return out
}

// kill ends the replica the way a dying host ends it: SIGKILL to kloud and
// to the Terraform it runs. The sandbox machines, like cloud instances,
// live on.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Kill()
	<-r.done
	for _, p := range r.terraformProcs() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
}

// balancer is the HTTP load balancer in front of the replicas, as a
// deployment would have: each request goes to the next replica, and to the
// one after when a replica does not answer. Machine agents reach Kloud
// through it.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     atomic.Uint64
}

func (b *balancer) add(url string) {
	b.mu.Lock()
	b.backends = append(b.backends, url)
	b.mu.Unlock()
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	start := int(b.next.Add(1))
	var lastErr error
	for i := range backends {
		target := backends[(start+i)%len(backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			lastErr = err
			continue
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, fmt.Sprintf("no replica answered: %v", lastErr), http.StatusBadGateway)
}

// TestReplicasShareOneDatabase runs three `kloud serve` replicas on one
// FerretDB database behind a load balancer, applies 20 sandbox stacks
// through alternating replicas, kills one replica with SIGKILL in the
// middle of an apply, and checks that they behave as one service: every
// stack ends initialized (a stack whose job died with the replica is failed
// with a reason and applies again through a live one), no stack's Terraform
// ran on two replicas at once, no event is lost, events stream from any
// replica, each singleton runs on one replica; then destroys everything and
// checks nothing is left running.
func TestReplicasShareOneDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three kloud servers and applies 20 stacks")
	}
	start := time.Now()
	ctx := context.Background()
	const token = "kla_replicas_test_admin_token"
	const secret = "replicas-test-shared-secret"
	testenv.Terraform(t) // skips without Terraform
	kloudBinary(t)
	fdb := ferrettest.Start(t)
	storeURI := fdb.DatabaseURI("kloudtest")

	lb := &balancer{}
	lbServer := httptest.NewServer(lb)
	t.Cleanup(lbServer.Close)
	shared := t.TempDir() // the sandbox root every replica serves
	var reps []*replica
	for i := range 3 {
		r := startReplica(t, fmt.Sprintf("r%d", i), storeURI, lbServer.URL, token, secret, shared)
		lb.add(r.url)
		reps = append(reps, r)
	}
	t.Logf("three replicas up in %v", time.Since(start).Round(time.Millisecond))

	// The test reads the database too, to check what the API does not
	// show (workers, state serials).
	box, err := secretbox.FromPassphrase(secret)
	if err != nil {
		t.Fatal(err)
	}
	db, err := mongo.Open(ctx, storeURI, "", mongo.WithBox(box), mongo.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	for _, r := range reps {
		h, err := r.client.Health(ctx)
		if err != nil || h.Store != "mongodb" {
			t.Fatalf("healthz of %s = %+v, %v; want store mongodb", r.name, h, err)
		}
	}

	cred, err := reps[0].client.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "shared",
		Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var tpls [2]*client.Template
	for n := 1; n <= 2; n++ {
		content := fmt.Sprintf("resource \"sandbox_machine\" \"m\" {\n  count = %d\n  name  = \"m-${count.index}\"\n}\n", n)
		tpls[n-1], err = reps[1].client.CreateTemplate(ctx, client.CreateTemplateRequest{Title: fmt.Sprintf("%d machines", n), Provider: "sandbox", Content: content})
		if err != nil {
			t.Fatal(err)
		}
	}

	const stacks = 20
	type applied struct {
		stack    *client.Stack
		machines int
		jobs     []string // every apply job, in order
	}
	all := make([]*applied, stacks)
	for i := range stacks {
		c := reps[i%3].client
		st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: fmt.Sprintf("s%02d", i), TemplateID: tpls[i%2].ID, CredentialID: cred.ID})
		if err != nil {
			t.Fatal(err)
		}
		all[i] = &applied{stack: st, machines: i%2 + 1}
	}
	for i, a := range all {
		ref, err := reps[i%3].client.ApplyStack(ctx, a.stack.ID)
		if err != nil {
			t.Fatalf("apply %s through %s: %v", a.stack.ID, reps[i%3].name, err)
		}
		a.jobs = append(a.jobs, ref.JobID)
	}

	// Follow the first job through a replica chosen without regard to who
	// runs it: events written anywhere stream from everywhere.
	followed := make(chan []client.Event, 1)
	go func() {
		var evs []client.Event
		_, _ = reps[2].client.FollowJob(ctx, all[0].jobs[0], func(ev client.Event) { evs = append(evs, ev) })
		followed <- evs
	}()

	// Kill r1 while it runs Terraform for one of its jobs: its Terraform
	// processes work in its data dir.
	victim := reps[1]
	killCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	var running []testenv.Proc
	for len(running) == 0 {
		if killCtx.Err() != nil {
			cancel()
			t.Fatalf("%s was never seen running Terraform", victim.name)
		}
		for _, p := range victim.terraformProcs() {
			if argv0, _, _ := strings.Cut(p.Cmdline, " "); filepath.Base(argv0) == "terraform" {
				running = append(running, p)
			}
		}
		if len(running) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	victim.kill(t)
	t.Logf("killed %s (worker %s) while it ran %v, at %v", victim.name, victim.worker, running, time.Since(start).Round(time.Millisecond))
	live := []*replica{reps[0], reps[2]}

	// Every first apply ends; those that died with r1 are failed with a
	// reason and applied again through a live replica.
	waitEnd := func(c *client.Client, id string) *client.Job {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		j, err := c.WaitJob(wctx, id)
		if err != nil {
			t.Fatalf("wait job %s: %v", id, err)
		}
		return j
	}
	var failedOnVictim int
	for i, a := range all {
		c := live[i%2].client
		j := waitEnd(c, a.jobs[0])
		if j.Status == "succeeded" {
			continue
		}
		sj, err := db.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sj.Worker != victim.worker || !strings.Contains(j.Error, "lease") {
			t.Errorf("job %s of %s failed on %q: %s", j.ID, a.stack.ID, sj.Worker, j.Error)
			continue
		}
		failedOnVictim++
		// The replica that failed the job puts the stack back right after.
		var st *client.Stack
		deadline := time.Now().Add(30 * time.Second)
		for {
			if st, err = c.Stack(ctx, a.stack.ID); err != nil {
				t.Fatal(err)
			}
			if st.Status == "not_initialized" && st.Reason != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st.Status != "not_initialized" || st.Reason == "" {
			t.Errorf("stack %s after its worker died = %s (%q), want not_initialized with a reason", st.ID, st.Status, st.Reason)
		}
		ref, err := c.ApplyStack(ctx, a.stack.ID)
		if err != nil {
			t.Fatalf("apply %s again: %v", a.stack.ID, err)
		}
		a.jobs = append(a.jobs, ref.JobID)
		if j := waitEnd(c, ref.JobID); j.Status != "succeeded" {
			t.Errorf("second apply of %s = %+v", a.stack.ID, j)
		}
	}
	if failedOnVictim == 0 {
		t.Errorf("no job failed with the killed replica, although it was running Terraform")
	}
	t.Logf("all %d stacks applied (%d again after the kill) at %v", stacks, failedOnVictim, time.Since(start).Round(time.Millisecond))

	evs := <-followed
	if len(evs) == 0 || evs[len(evs)-1].Kind != "done" {
		t.Errorf("following job %s through r2 gave %d events, want them all up to done", all[0].jobs[0], len(evs))
	}

	known := map[string]bool{} // sandbox machine ids the stacks hold
	for i, a := range all {
		st, err := live[i%2].client.Stack(ctx, a.stack.ID)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, m := range st.Machines {
			if m.State.String() == "Running" {
				running++
			}
			var meta struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(m.Metadata, &meta)
			known[meta.ID] = true
		}
		if st.Status != "initialized" || running != a.machines {
			t.Errorf("stack %s = %s with %d running machines, want initialized with %d", st.ID, st.Status, running, a.machines)
		}
	}

	// Each singleton is held by exactly one live replica, failing over
	// from the dead one.
	waitSingletons(t, live)
	t.Logf("stacks initialized, singletons on one live replica each, at %v", time.Since(start).Round(time.Millisecond))

	// Destroy everything through the live replicas: the working
	// directories of stacks applied elsewhere are rebuilt from the store.
	var destroys []string
	for i, a := range all {
		ref, err := live[i%2].client.DestroyStack(ctx, a.stack.ID)
		if err != nil {
			t.Fatalf("destroy %s: %v", a.stack.ID, err)
		}
		destroys = append(destroys, ref.JobID)
		a.jobs = append(a.jobs, ref.JobID)
	}
	for i, id := range destroys {
		if j := waitEnd(live[(i+1)%2].client, id); j.Status != "succeeded" {
			t.Errorf("destroy job %s = %+v", id, j)
		}
	}
	t.Logf("all destroyed at %v", time.Since(start).Round(time.Millisecond))
	for _, a := range all {
		checkOneRunnerAtATime(t, db, a.stack.ID, a.jobs)
	}
	// Machines the killed Terraform created before it died never reached
	// any state: orphans, like instances a killed `terraform apply`
	// leaves in a cloud. They are counted, then removed.
	left, err := sandboxvm.List(filepath.Join(shared, cred.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range left {
		if known[vm.ID()] {
			t.Errorf("machine %s survived its stack's destroy", vm.ID())
		}
		t.Logf("orphan of the killed apply: %s", vm.ID())
		if err := vm.Destroy(ctx); err != nil {
			t.Errorf("destroy orphan %s: %v", vm.ID(), err)
		}
	}
	testenv.NoProcesses(t, filepath.Join(shared, cred.ID)) // the replicas' own environment names shared
	for _, r := range reps {
		testenv.NoProcesses(t, filepath.Join(r.dataDir, "work"))
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// checkOneRunnerAtATime checks the jobs of one stack: each ran on one
// worker (one "running … on <worker>" event, naming the job's worker), their
// events are numbered 1, 2, … without a gap and end with done, the jobs did
// not overlap, and the stack's Terraform state serials strictly increase,
// each saved by one of its jobs.
func checkOneRunnerAtATime(t *testing.T, db *mongo.Store, stackID string, jobIDs []string) {
	t.Helper()
	ctx := context.Background()
	var prevEnd time.Time
	mine := map[string]bool{}
	for _, id := range jobIDs {
		mine[id] = true
		j, err := db.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := db.ListEvents(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var runners []string
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Errorf("job %s event %d has seq %d: an event was lost", id, i, e.Seq)
				break
			}
			if w, ok := strings.CutPrefix(e.Message, "running "+string(j.Kind)+" on "); ok && e.Kind == jobs.EventPhase {
				runners = append(runners, w)
			}
		}
		if len(runners) != 1 || runners[0] != j.Worker {
			t.Errorf("job %s of stack %s ran on %v, want once on its worker %s", id, stackID, runners, j.Worker)
		}
		if len(evs) == 0 || evs[len(evs)-1].Kind != jobs.EventDone {
			t.Errorf("job %s does not end with a done event", id)
		}
		if j.StartedAt.Before(prevEnd) {
			t.Errorf("job %s of stack %s started at %s, before the previous job ended at %s", id, stackID, j.StartedAt, prevEnd)
		}
		prevEnd = j.FinishedAt
	}
	versions, err := db.ListStateVersions(ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range versions {
		if i > 0 && v.Serial <= versions[i-1].Serial {
			t.Errorf("stack %s state serial %d after %d", stackID, v.Serial, versions[i-1].Serial)
		}
		if !mine[v.JobID] {
			t.Errorf("stack %s state serial %d saved by job %s, not one of its jobs", stackID, v.Serial, v.JobID)
		}
	}
}

// waitSingletons waits until each singleton lease is held by exactly one
// of the live replicas, as their /healthz reports.
func waitSingletons(t *testing.T, live []*replica) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		holders := map[string][]string{}
		var err error
		for _, r := range live {
			var h *client.Health
			if h, err = r.client.Health(context.Background()); err != nil {
				break
			}
			for name, held := range h.Singletons {
				if _, ok := holders[name]; !ok {
					holders[name] = nil
				}
				if held {
					holders[name] = append(holders[name], r.name)
				}
			}
		}
		ok := err == nil && len(holders) >= 2
		for _, hs := range holders {
			ok = ok && len(hs) == 1
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("singleton holders among live replicas = %v (%v), want exactly one each", holders, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
