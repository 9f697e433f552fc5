// Command fastsocks is the egress proxy for sandboxed processes: SOCKS5
// (socks5h, hostnames only) on one or more listeners, a hostname allow/deny
// policy, and a flow-controlled relay on an event loop.
//
// It turns flags into a policy, a dial pool and an engine, and handles
// signals; everything else lives in the packages it wires together.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fastsocks/fastsocks/admin"
	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/engine"
	"github.com/fastsocks/fastsocks/policy"
)

// version is set at build time with -ldflags "-X main.version=..."; if not,
// the module version from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, nil))
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	listen, allow, deny   listFlag
	allowFile, denyFile   listFlag
	allowPrivate          listFlag
	handshake, dialTO     time.Duration
	idle, lifetime, drain time.Duration
	loops, maxDials       int
	maxTunnels            int
	maxHandshakes         int
	maxPerClient          int
	logFormat, logLevel   string
	accessLog, admin      string
	upstream, config      string
	showVersion           bool
}

func parseFlags(args []string, stderr io.Writer) (*options, *flag.FlagSet, error) {
	o := &options{}
	fs := flag.NewFlagSet("fastsocks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.listen, "listen", "address to accept SOCKS5 clients on, HOST:PORT (repeatable; port 0 picks one) (default 127.0.0.1:1080)")
	fs.Var(&o.allow, "allow", "hostname pattern to allow: example.com, *.example.com (one label), **.example.com (any depth) (repeatable)")
	fs.Var(&o.deny, "deny", "hostname pattern to deny; deny wins over allow (repeatable)")
	fs.Var(&o.allowFile, "allow-file", "file of allow patterns, one a line, # comments (repeatable)")
	fs.Var(&o.denyFile, "deny-file", "file of deny patterns, one a line, # comments (repeatable)")
	fs.DurationVar(&o.handshake, "handshake-timeout", engine.DefaultHandshakeTimeout, "time allowed for greeting and request")
	fs.DurationVar(&o.dialTO, "dial-timeout", engine.DefaultDialTimeout, "time allowed to resolve and connect to a target")
	fs.DurationVar(&o.idle, "idle-timeout", engine.DefaultIdleTimeout, "close a tunnel with no bytes either way for this long (0 = never)")
	fs.DurationVar(&o.lifetime, "max-lifetime", engine.DefaultMaxLifetime, "close any tunnel this long after it opened (0 = never)")
	fs.DurationVar(&o.drain, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, time open tunnels get to finish")
	fs.IntVar(&o.loops, "loops", runtime.GOMAXPROCS(0), "number of event loops")
	fs.IntVar(&o.maxDials, "max-dials", dial.DefaultWorkers, "dials in flight at once")
	fs.StringVar(&o.upstream, "upstream", "", "corporate HTTP proxy to chain allowed tunnels through: host:port, http://host:port or http://user:pass@host:port; \"none\" ignores HTTPS_PROXY (default: HTTPS_PROXY, then https_proxy; NO_PROXY/no_proxy list hosts that go direct)")
	fs.Var(&o.allowPrivate, "allow-private-dest", "CIDR the resolved-address guard lets direct dials reach although it is loopback, private, link-local, CGNAT or multicast, e.g. 10.20.0.0/16 (repeatable; default: none)")
	fs.IntVar(&o.maxTunnels, "max-tunnels", 0, "tunnels open at once, all tenants together; over it a request gets SOCKS5 0x01 / HTTP 503 (0 = no bound but the descriptor limit)")
	fs.IntVar(&o.maxHandshakes, "max-handshakes", 0, "connections still in their handshake at once; over it new connections are closed at accept (0 = a quarter of the descriptor limit)")
	fs.IntVar(&o.maxPerClient, "max-tunnels-per-client", 0, "connections open at once from one client IP address (TCP listeners; unix-socket sandboxes are bounded by their tenant's max_tunnels); over it new ones are closed at accept (0 = no bound)")
	fs.StringVar(&o.accessLog, "access-log", "", "file for the decision log, one line per request (default: stderr with the other logs)")
	fs.StringVar(&o.admin, "admin", "", "address for /metrics, /healthz and /debug/pprof/, e.g. 127.0.0.1:9090 (default: off)")
	fs.StringVar(&o.config, "config", "", "YAML file of listeners, tenants and settings (see README); flags given too override its settings; SIGHUP reloads it")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if len(o.listen) == 0 {
		o.listen = listFlag{"127.0.0.1:1080"}
	}
	switch {
	case o.handshake <= 0:
		return nil, fs, fmt.Errorf("--handshake-timeout must be positive, got %v", o.handshake)
	case o.dialTO <= 0:
		return nil, fs, fmt.Errorf("--dial-timeout must be positive, got %v", o.dialTO)
	case o.idle < 0:
		return nil, fs, fmt.Errorf("--idle-timeout must be 0 (never) or positive, got %v", o.idle)
	case o.lifetime < 0:
		return nil, fs, fmt.Errorf("--max-lifetime must be 0 (never) or positive, got %v", o.lifetime)
	case o.drain < 0:
		return nil, fs, fmt.Errorf("--drain-timeout must be 0 or positive, got %v", o.drain)
	case o.loops <= 0:
		return nil, fs, fmt.Errorf("--loops must be at least 1, got %d", o.loops)
	case o.maxDials <= 0:
		return nil, fs, fmt.Errorf("--max-dials must be at least 1, got %d", o.maxDials)
	case o.maxTunnels < 0:
		return nil, fs, fmt.Errorf("--max-tunnels must be 0 (no bound) or positive, got %d", o.maxTunnels)
	case o.maxHandshakes < 0:
		return nil, fs, fmt.Errorf("--max-handshakes must be 0 (default) or positive, got %d", o.maxHandshakes)
	case o.maxPerClient < 0:
		return nil, fs, fmt.Errorf("--max-tunnels-per-client must be 0 (no bound) or positive, got %d", o.maxPerClient)
	}
	return o, fs, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// readPatterns reads one pattern a line; blank lines and # comments are
// skipped. Each pattern is checked here so the error names file and line.
func readPatterns(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		p := sc.Text()
		if i := strings.IndexByte(p, '#'); i >= 0 {
			p = p[:i]
		}
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := policy.ValidatePattern(p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

func buildPolicy(o *options) (*policy.Policy, error) {
	allow := append([]string(nil), o.allow...)
	deny := append([]string(nil), o.deny...)
	for _, f := range o.allowFile {
		ps, err := readPatterns(f)
		if err != nil {
			return nil, fmt.Errorf("--allow-file: %w", err)
		}
		allow = append(allow, ps...)
	}
	for _, f := range o.denyFile {
		ps, err := readPatterns(f)
		if err != nil {
			return nil, fmt.Errorf("--deny-file: %w", err)
		}
		deny = append(deny, ps...)
	}
	return policy.New(allow, deny)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// run is main without os.Exit, for tests: it returns the exit code. If
// ready is non-nil it receives the engine once listening.
func run(args []string, stderr io.Writer, ready chan<- *engine.Engine) int {
	if len(args) > 0 && args[0] == "check" {
		return runCheck(args[1:], stderr)
	}
	o, fs, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "fastsocks:", err)
		return 2
	}
	if o.showVersion {
		fmt.Fprintln(stderr, "fastsocks", versionString())
		return 0
	}
	set := setFlags(fs)
	inherited, err := socketActivation(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "fastsocks:", err)
		return 2
	}
	s, err := loadSettings(o, set, os.Getenv, inherited)
	if err != nil {
		fmt.Fprintln(stderr, "fastsocks:", err)
		return 2
	}
	log, err := newLogger(stderr, s.logFormat, s.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "fastsocks:", err)
		return 2
	}
	access := log
	if s.accessLog != "" {
		f, err := os.OpenFile(s.accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			fmt.Fprintln(stderr, "fastsocks: --access-log:", err)
			return 2
		}
		defer f.Close()
		if access, err = newLogger(f, s.logFormat, "info"); err != nil {
			fmt.Fprintln(stderr, "fastsocks:", err)
			return 2
		}
	}
	raiseFDLimit(log)
	for _, t := range s.tenants {
		if len(t.Policy.Allow()) == 0 {
			log.Warn("the allow list is empty: every request will be refused; add --allow PATTERN or --allow-file FILE (or allow: in the config file)", "tenant", t.Name)
		}
	}
	never := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	pool := dial.New(dial.Config{Workers: s.maxDials, Timeout: s.dialTO, Upstream: s.upstream, NoProxy: s.noProxy})
	defer pool.Close()
	e, err := engine.Start(engine.Config{
		Listeners:         s.listeners,
		Tenants:           s.tenants,
		Loops:             s.loops,
		Dialer:            pool,
		HandshakeTimeout:  s.handshake,
		DialTimeout:       s.dialTO,
		IdleTimeout:       never(s.idle),
		MaxLifetime:       never(s.lifetime),
		MaxTunnels:        s.maxTunnels,
		MaxHandshakes:     s.maxHandshakes,
		MaxConnsPerClient: s.maxPerClient,
		Logger:            log,
		AccessLog:         access,
	})
	if err != nil {
		fmt.Fprintln(stderr, "fastsocks:", err)
		return 2
	}
	logListeners(log, e, s)
	var adm *admin.Server
	if s.admin != "" {
		if adm, err = admin.Start(admin.Config{Addr: s.admin, Source: e, Logger: log}); err != nil {
			e.Close()
			fmt.Fprintln(stderr, "fastsocks:", err)
			return 2
		}
		defer adm.Close()
		adm.SetReady(true, "")
		log.Info("admin endpoints on http://"+adm.Addr().String()+"/", "paths", "/metrics /healthz /debug/pprof/")
	}
	if s.upstream != nil {
		log.Info("allowed tunnels go through an upstream proxy", "upstream", s.upstream.String(), "from", s.upSource, "no_proxy", s.noProxy.String())
	} else {
		log.Info("allowed tunnels are dialed directly (no upstream proxy)")
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if ready != nil {
		ready <- e
	}
	var sig os.Signal
	for sig = range sigs {
		if sig != syscall.SIGHUP {
			break
		}
		reload(log, e, o, set, inherited)
	}
	if adm != nil {
		adm.SetReady(false, "draining")
	}
	st := e.Stats()
	log.Info("draining: no new connections; open tunnels get time to finish", "signal", sig.String(), "open", st.Active, "drain_timeout", s.drain)
	ctx, cancel := context.WithTimeout(context.Background(), s.drain)
	defer cancel()
	go func() {
		// A second signal cuts the drain short.
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = e.Shutdown(ctx)
	st = e.Stats()
	if err != nil {
		log.Warn("drain timeout passed: remaining tunnels closed", "accepted", st.Accepted, "refused", st.Refused)
	} else {
		log.Info("stopped", "accepted", st.Accepted, "refused", st.Refused, "bytes_up", st.BytesUp, "bytes_down", st.BytesDown)
	}
	return 0
}

// fdReserve is what the process keeps for itself (listeners, the
// admin side, the access log) when the descriptor limit is shared out.
const fdReserve = 64

// raiseFDLimit raises RLIMIT_NOFILE's soft limit to its hard limit and
// logs the tunnel capacity that gives: a tunnel holds two descriptors.
func raiseFDLimit(log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the file descriptor limit", "err", err)
		return
	}
	if rl.Cur < rl.Max {
		old := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn("cannot raise the file descriptor limit", "soft", old, "hard", rl.Max, "err", err)
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
	capacity := (int64(rl.Cur) - fdReserve) / 2
	log.Info("file descriptor limit", "limit", rl.Cur, "tunnel_capacity", capacity,
		"note", "each tunnel holds 2 descriptors; raise LimitNOFILE= (systemd) or ulimit -n for more")
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func logListeners(log *slog.Logger, e *engine.Engine, s *settings) {
	for i, a := range e.Addrs() {
		l := s.listeners[i]
		name := a.String()
		if a.Network() == "unix" {
			name = "unix:" + name
		}
		who := "tenant " + l.Tenant
		if l.Credentials {
			who = "credentials"
		}
		log.Info("listening on "+name, "for", who)
		if ap, err := netip.ParseAddrPort(a.String()); err == nil && !ap.Addr().IsLoopback() && !l.Credentials {
			log.Warn("listener is not on a loopback address and has no authentication: anyone who can reach it can use this proxy; firewall it, listen on 127.0.0.1, or use credentials", "addr", name)
		}
	}
}

// reload re-reads the config file (and the environment's upstream) and
// applies listeners, tenants and routes. On any error the running
// configuration stays. Timeouts, loops and logging need a restart.
func reload(log *slog.Logger, e *engine.Engine, o *options, set map[string]bool, inherited []inheritedFD) {
	if o.config == "" {
		log.Warn("SIGHUP ignored: there is no --config file to reload")
		return
	}
	s, err := loadSettings(o, set, os.Getenv, inherited)
	if err == nil {
		err = e.Reload(s.listeners, s.tenants)
	}
	if err != nil {
		log.Error("reload failed; the running configuration stays", "config", o.config, "err", err.Error())
		return
	}
	log.Info("reloaded", "config", o.config, "listeners", len(s.listeners), "tenants", len(s.tenants))
	logListeners(log, e, s)
}

// runCheck is "fastsocks check --config FILE": validate and exit.
func runCheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fastsocks check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to check")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: fastsocks check --config FILE")
		return 2
	}
	s, err := loadSettings(&options{config: *path}, map[string]bool{}, os.Getenv, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintf(stderr, "%s: OK: %s\n", *path, s.describe())
	return 0
}
