// Package version holds Kloud's one version: the server, the CLI and the
// agent show the same string, set at build time by build.sh with
// -ldflags "-X github.com/kloud/kloud/internal/version.Version=...".
package version

// Version is the build's version; "0.1.0-dev" in a build that did not set it.
var Version = "0.1.0-dev"
