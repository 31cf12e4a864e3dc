// Command kloud is Kloud's server (kloud serve) and its command-line client,
// which mirrors the HTTP API: kloud credential add, kloud stack apply
// --follow, kloud machine stop, kloud rating summary, … Every command is
// kloud <noun> <verb>, with its own help (kloud stack apply -h).
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := exitCode(runIO(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one kloud command line on the process's standard streams and
// returns its error as is (a *client.Error for a server's refusal).
func run(args []string) error {
	return runIO(context.Background(), args, os.Stdout, os.Stderr)
}
