package klient

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names inside the machine directory that the agent reads or writes.
const (
	AddressFile      = "address"       // the agent's listen address, written once it listens
	TokenFile        = "agent.token"   // the machine's agent token (mode 0600)
	UserDataFile     = "user_data.sh"  // the first-boot script
	UserDataLogFile  = "user_data.log" // the script's output
	UserDataDoneFile = "user_data.done"
)

// Environment variables the agent reads; flags override them, except the
// token, which is never taken from the command line.
const (
	EnvDir       = "KLIENT_DIR"
	EnvMachineID = "KLIENT_MACHINE_ID"
	EnvSize      = "KLIENT_SIZE"
	EnvListen    = "KLIENT_LISTEN"
	EnvKloudURL  = "KLIENT_KLOUD_URL"
	EnvToken     = "KLIENT_TOKEN"
	EnvHeartbeat = "KLIENT_HEARTBEAT_INTERVAL"
	EnvBusyCPU   = "KLIENT_BUSY_CPU"
)

// Defaults.
const (
	DefaultListen            = "127.0.0.1:0"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultShutdownTimeout   = 5 * time.Second
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid agent configuration")

// Config is everything the agent needs. Zero durations take their defaults.
type Config struct {
	// Dir is the machine directory (its "disk"); required.
	Dir string
	// MachineID names the machine in info and in calls to Kloud; required.
	MachineID string
	// Size is reported in info and to Kloud ("small", "medium", "large").
	Size string
	// Listen is the TCP address to listen on; DefaultListen if empty.
	Listen string
	// KloudURL is Kloud's base URL; empty means run without Kloud.
	KloudURL string
	// Token authenticates the agent to Kloud. It is never logged.
	Token string
	// HeartbeatInterval is the time between heartbeats.
	HeartbeatInterval time.Duration
	// MaxBackoff caps the retry delay after a failed call to Kloud; the
	// default is six heartbeat intervals.
	MaxBackoff time.Duration
	// ShutdownTimeout bounds the HTTP server's graceful shutdown.
	ShutdownTimeout time.Duration
	// BusyCPU, when positive, is the CPU use (percent of one core, of the
	// processes the agent can see: on a sandbox machine, the machine's)
	// above which the machine counts as in use; 0 turns the sign off.
	BusyCPU float64

	// Log receives the agent's log; discarded if nil.
	Log *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// After waits between calls to Kloud (the heartbeat interval or a
	// backoff delay); time.After if nil. Tests inject it to drive or
	// record the waits.
	After func(time.Duration) <-chan time.Time
	// HTTPClient talks to Kloud; a client with a 10 s timeout if nil.
	HTTPClient *http.Client
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 6 * c.HeartbeatInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return c
}

// Valid reports the first thing wrong with c, naming the field.
func (c Config) Valid() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: dir is required", ErrConfig)
	}
	if c.MachineID == "" {
		return fmt.Errorf("%w: machine id is required", ErrConfig)
	}
	if c.KloudURL != "" {
		u, err := url.Parse(c.KloudURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: kloud url %q: want http(s)://host[:port]", ErrConfig, c.KloudURL)
		}
		if c.Token == "" {
			return fmt.Errorf("%w: a kloud url needs an agent token (env %s or %s in the machine dir)", ErrConfig, EnvToken, TokenFile)
		}
	}
	if c.HeartbeatInterval < 0 {
		return fmt.Errorf("%w: heartbeat interval %s is negative", ErrConfig, c.HeartbeatInterval)
	}
	return nil
}

// ParseConfig builds a Config from command-line arguments (without the
// program name) and the environment (getenv, usually os.Getenv). Flags win
// over environment variables. The token comes from the environment or from
// the machine directory's token file, never from the command line, where
// any user could read it with ps.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("klient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Dir, "dir", getenv(EnvDir), "machine directory (env "+EnvDir+")")
	fs.StringVar(&c.MachineID, "machine-id", getenv(EnvMachineID), "machine id (env "+EnvMachineID+")")
	fs.StringVar(&c.Size, "size", getenv(EnvSize), "machine size (env "+EnvSize+")")
	fs.StringVar(&c.Listen, "listen", getenv(EnvListen), "listen address, default "+DefaultListen+" (env "+EnvListen+")")
	fs.StringVar(&c.KloudURL, "kloud-url", getenv(EnvKloudURL), "Kloud base URL (env "+EnvKloudURL+")")
	heartbeat := DefaultHeartbeatInterval
	if v := getenv(EnvHeartbeat); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %s=%q: %v", ErrConfig, EnvHeartbeat, v, err)
		}
		heartbeat = d
	}
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", heartbeat, "heartbeat interval (env "+EnvHeartbeat+")")
	busy := 0.0
	if v := getenv(EnvBusyCPU); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return Config{}, fmt.Errorf("%w: %s=%q: want a percentage", ErrConfig, EnvBusyCPU, v)
		}
		busy = f
	}
	fs.Float64Var(&c.BusyCPU, "busy-cpu", busy, "CPU percent above which the machine counts as in use, 0 for never (env "+EnvBusyCPU+")")
	tokenFile := fs.String("token-file", "", "file holding the agent token, mode 0600; default <dir>/"+TokenFile+" (the token may also come from env "+EnvToken+")")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	if c.HeartbeatInterval <= 0 {
		return Config{}, fmt.Errorf("%w: heartbeat interval must be positive, got %s", ErrConfig, c.HeartbeatInterval)
	}
	c.Token = getenv(EnvToken)
	if c.Token == "" {
		path := *tokenFile
		if path == "" && c.Dir != "" {
			path = filepath.Join(c.Dir, TokenFile)
		}
		if path != "" {
			tok, err := ReadTokenFile(path)
			if err != nil && (*tokenFile != "" || !errors.Is(err, os.ErrNotExist)) {
				return Config{}, err
			}
			c.Token = tok
		}
	}
	return c, c.Valid()
}

// ReadTokenFile reads a token from a file that only its owner may read: a
// file with any group or other permission bit is refused.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: token file %s has mode %#o; want 0600", ErrConfig, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
