// Command klient is the agent that runs on every Kloud machine: it serves
// its health and info over HTTP, runs the machine's user data once, and
// registers and heartbeats with Kloud. See package klient for its flags and
// environment.
package main

import (
	"os"

	"github.com/kloud/kloud/klient"
)

func main() { os.Exit(klient.Main(os.Args[1:])) }
