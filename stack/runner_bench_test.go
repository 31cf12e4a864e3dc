package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/testenv"
)

// BenchmarkRunnerApply compares init+apply of n sandbox machines through
// the Runner with a raw `terraform init && terraform apply -auto-approve` of
// the same composed files in another directory, with the same CLI
// configuration (plugin mirror) and environment. Both start from an empty
// working directory each iteration, as a new stack does; the machines are
// destroyed between iterations, off the clock. It reports the Runner's and
// the raw run's milliseconds per apply and their ratio (target ≤ 1.10).
func BenchmarkRunnerApply(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) { benchmarkApply(b, n) })
		// As kloud serve runs it: Terraform and the machines confined. The
		// raw run it is compared with is not.
		b.Run(fmt.Sprintf("machines=%d/confined", n), func(b *testing.B) { benchmarkApply(b, n, testenv.Confiner(b)) })
	}
}

func benchmarkApply(b *testing.B, n int, confiner ...*confine.Confiner) {
	backend := newMemBackend()
	r, data := newSandboxRunner(b, backend, confiner...)
	b.Cleanup(func() { testenv.NoProcesses(b, data) })
	ctx := context.Background()
	tmpl := sandboxMachines(n)
	rawRoot := b.TempDir()

	var runnerTimes, rawTimes []time.Duration
	viaRunner := func(i int) {
		run := Run{Key: fmt.Sprintf("bench-%d-%d", n, i), Template: tmpl, Output: func(string) {}}
		start := time.Now()
		res, err := r.Apply(ctx, run)
		runnerTimes = append(runnerTimes, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if got := len(ResourcesOfType(res.Resources, "sandbox_machine")); got != n {
			b.Fatalf("runner applied %d machines, want %d", got, n)
		}
		if _, err := r.Destroy(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
	raw := func(i int) {
		dir := filepath.Join(rawRoot, fmt.Sprintf("raw-%d", i))
		env := rawEnv(r, dir)
		writeTemplateFiles(b, dir, tmpl)
		start := time.Now()
		rawTerraform(b, r.tfPath, dir, env, "init", "-input=false", "-no-color")
		rawTerraform(b, r.tfPath, dir, env, "apply", "-auto-approve", "-input=false", "-no-color")
		rawTimes = append(rawTimes, time.Since(start))
		rawTerraform(b, r.tfPath, dir, env, "destroy", "-auto-approve", "-input=false", "-no-color")
	}
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first, so neither always follows the other's
		// destroy. Both are timed by hand; the benchmark's own ns/op is the
		// pair, destroys included.
		if i%2 == 0 {
			viaRunner(i)
			raw(i)
		} else {
			raw(i)
			viaRunner(i)
		}
	}
	b.StopTimer()
	b.Logf("runner apply times %v", roundMs(runnerTimes))
	b.Logf("raw apply times    %v", roundMs(rawTimes))
	runnerMs, rawMs := medianMs(runnerTimes), medianMs(rawTimes)
	b.ReportMetric(runnerMs, "runner-ms")
	b.ReportMetric(rawMs, "raw-ms")
	b.ReportMetric(runnerMs/rawMs, "ratio")
}

// rawEnv is the environment the Runner gives Terraform in dir, secrets
// included, for the raw run.
func rawEnv(r *Runner, dir string) []string {
	var env []string
	for k, v := range r.baseEnv(dir) {
		env = append(env, k+"="+v)
	}
	return append(env, "TF_IN_AUTOMATION=1", "TF_VAR_agent_token="+sandboxMachines(0).Env["agent_token"].Reveal())
}

func writeTemplateFiles(b testing.TB, dir string, t *Template) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, t.FileName()), []byte(t.Content), 0o600); err != nil {
		b.Fatal(err)
	}
	for name, content := range t.Generated {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

func rawTerraform(b testing.TB, bin, dir string, env []string, args ...string) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("terraform %s: %v\n%s", args[0], err, out.String())
	}
}

// medianMs is the median of ds in milliseconds.
func medianMs(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m) / float64(time.Millisecond)
}

func roundMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
