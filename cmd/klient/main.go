// Command klient is the agent that runs on every Kloud machine: it serves
// its health and info over HTTP, runs the machine's user data once, and
// registers and heartbeats with Kloud. See package klient for its flags and
// environment.
package main

import (
	"os"
	"syscall"

	"github.com/kloud/kloud/klient"
)

func main() {
	// What the agent and the machine's user data write on the machine's
	// disk is the machine's own: nobody else on the host may read it.
	syscall.Umask(0o077)
	os.Exit(klient.Main(os.Args[1:]))
}
