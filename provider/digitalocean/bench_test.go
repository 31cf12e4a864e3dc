package digitalocean

import (
	"context"
	"testing"

	"github.com/kloud/kloud/provider/digitalocean/dosim"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/templates"
)

// BenchmarkApplyTemplate composes the example template (two droplet
// blocks): the cost ApplyTemplate adds before Terraform runs.
func BenchmarkApplyTemplate(b *testing.B) {
	content, err := templates.Example(Name)
	if err != nil {
		b.Fatal(err)
	}
	t := &testing.T{}
	s := composeStack(t, string(content), stack.FormatHCL)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ApplyTemplate(context.Background(), s.Credential); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/compose")
}

// BenchmarkInfo is one Info (Droplets.Get through godo) against the
// simulator on loopback.
func BenchmarkInfo(b *testing.B) {
	clock := newClock()
	sim := dosim.New(dosim.Options{Now: clock.Now})
	defer sim.Close()
	sim.AddAccount(testToken, dosim.Account{})
	e := &env{sim: sim, clock: clock, p: NewProvider(testOptions(clock)),
		cred: &Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: sim.URL()}}
	d := sim.AddDroplet(dosim.Droplet{})
	m := e.machine(&testing.T{}, d.ID)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := m.Info(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/info")
}
