package aws

import (
	"context"
	"testing"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/aws/awssim"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/templates"
)

// BenchmarkApplyTemplate composes the example stack (two aws_instance
// blocks) as an apply does.
func BenchmarkApplyTemplate(b *testing.B) {
	example, err := templates.Example(Name)
	if err != nil {
		b.Fatal(err)
	}
	s := composeStack(b, testCredential(), testBootstrap(), string(example), stack.FormatHCL, map[string]string{"web_count": "2"})
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.ApplyTemplate(ctx, s.Credential); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInfo is one Machine.Info: a signed DescribeInstances through
// the SDK to the simulator on loopback, its XML decoded.
func BenchmarkInfo(b *testing.B) {
	sim := awssim.New(awssim.Options{})
	defer sim.Close()
	sim.AddKey(awssim.Key{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey})
	id := sim.AddInstance(awssim.Instance{})
	cred := &Credential{AccessKey: testAccessKey, SecretKey: testSecretKey, Region: "us-east-1", Endpoint: sim.URL()}
	p := New(Options{})
	m, err := p.Machine(&provider.BaseMachine{Provider: p, Cred: cred, Metadata: &Metadata{ID: id}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := m.Info(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sim.Calls("DescribeInstances"))/b.Elapsed().Seconds(), "describes/s")
}
