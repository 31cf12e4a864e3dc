package main

// The providers built into kloud: each package registers itself with
// provider.MustRegister at init, so one import line is what adds a
// provider to the binary. `kloud provider scaffold NAME` adds its line
// here.
import (
	_ "github.com/kloud/kloud/provider/aws"          // EC2
	_ "github.com/kloud/kloud/provider/digitalocean" // droplets
	_ "github.com/kloud/kloud/provider/sandbox"      // the embedded default provider
)
