package klient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kloud/kloud/internal/version"
)

// Main runs the agent as a program: configuration from args (without the
// program name) and the environment, log to stderr, stop on SIGTERM or
// SIGINT. It returns the process exit code: 0 after a clean stop, 2 for bad
// configuration, 1 for any other failure. "-version" prints the version
// the agent reports. cmd/klient and the sandbox
// provider plugin's "agent" subcommand both call it.
func Main(args []string) int {
	if len(args) == 1 && (args[0] == "-version" || args[0] == "--version") {
		fmt.Println(version.Version)
		return 0
	}
	cfg, err := ParseConfig(args, os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "klient:", err)
		return 2
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	agent, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "klient:", err)
		return 2
	}
	if err := agent.Run(ctx); err != nil {
		cfg.Log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}
