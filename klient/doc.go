// Package klient is the agent that runs on every machine: it serves its
// health and info, runs the machine's user data once, and registers and
// heartbeats with Kloud.
package klient
