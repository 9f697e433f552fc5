// Command bench is fastsocks' load generator. It builds fastsocks from the
// tree and starts it as a subprocess, starts a goroutine-per-connection
// baseline proxy (package baseline) and its own upstream servers as
// subprocesses, runs the scenarios against fastsocks, the baseline and
// direct loopback (no proxy), and prints a Markdown table with ratios.
//
//	go run ./bench                        # everything, default sizes
//	go run ./bench --quick                # a short smoke run
//	go run ./bench --scenarios fanout --tunnels 4000 --json out.json
//	go run ./bench --target 127.0.0.1:1080 --pid 1234 --name dante
//
// Scenarios:
//
//   - connrate: C clients each loop connect, greet, CONNECT, 1-byte echo,
//     close. Connections/s, setup latency percentiles, proxy CPU per
//     connection.
//   - fanout: hold N tunnels; proxy RSS and fds per idle tunnel; then every
//     tunnel ping-pongs: messages/s, RTT percentiles, proxy CPU per message.
//   - throughput: K tunnels streaming both ways: Gbit/s, proxy CPU s/GB.
//   - slowreader: targets flood, clients stop reading: proxy RSS growth.
//
// Proxy figures come from /proc/PID of the proxy process alone: utime+stime
// from stat, VmRSS from status, the fd directory. Clients reach targets
// through the name "localhost" only (proxies resolve it from /etc/hosts),
// from source addresses 127.0.0.2 and up, to several target ports, so
// ephemeral ports are not the limit. The bench raises its own fd limit to
// the hard limit and caps N where any process's fd limit would be reached.
//
// It measures; it decides nothing about the engine. What it leaves to
// others: profiling (run the proxy under pprof or perf while the bench
// loads it) and the codec and policy micro-benchmarks (go test -bench in
// proto/ and policy/).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr))
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	cfg           config
	scenarios     string
	subjects      string
	quick         bool
	jsonPath      string
	target        string
	pid           int
	name          string
	fastsocksBin  string
	fastsocksArgs string
	sources       int
	targetPorts   int
	proxyLogs     bool

	serveBaseline string
	baselineAllow listFlag
	serveTargets  int
}

func defaultConfig() config {
	return config{
		Scenarios:   allScenarios,
		Duration:    5 * time.Second,
		Warmup:      time.Second,
		Concurrency: 64,
		Tunnels:     8000,
		MsgSize:     64,
		Streams:     8,
		Chunk:       64 << 10,
		SlowTunnels: 256,
		OpenWorkers: 64,
		Progress:    2 * time.Second,
		FDMargin:    200,
		Settle:      time.Second,
		SampleEvery: 100 * time.Millisecond,
	}
}

// quickConfig is --quick: every size small, for a smoke run of a few
// seconds per scenario.
func quickConfig() config {
	c := defaultConfig()
	c.Duration = time.Second
	c.Warmup = 300 * time.Millisecond
	c.Concurrency = 16
	c.Tunnels = 500
	c.Streams = 4
	c.SlowTunnels = 32
	c.OpenWorkers = 32
	c.Settle = 300 * time.Millisecond
	c.SampleEvery = 50 * time.Millisecond
	return c
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	d := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: "+strings.Join(allScenarios, ","))
	fs.StringVar(&o.subjects, "subjects", "", "what to measure, comma-separated, first one compared with the others (default fastsocks,baseline,direct; with --target: NAME,baseline,direct)")
	fs.BoolVar(&o.quick, "quick", false, "short smoke run: 1s windows and small sizes (explicit flags still win)")
	fs.DurationVar(&o.cfg.Duration, "duration", d.Duration, "measured window of each timed phase")
	fs.DurationVar(&o.cfg.Warmup, "warmup", d.Warmup, "load before each window opens")
	fs.IntVar(&o.cfg.Concurrency, "concurrency", d.Concurrency, "connrate: concurrent clients")
	fs.IntVar(&o.cfg.Tunnels, "tunnels", d.Tunnels, "fanout: tunnels to hold (capped where a process's fd limit would be reached)")
	fs.IntVar(&o.cfg.MsgSize, "msg-size", d.MsgSize, "fanout: ping-pong message size in bytes")
	fs.IntVar(&o.cfg.Streams, "streams", d.Streams, "throughput: tunnels streaming both ways")
	fs.IntVar(&o.cfg.Chunk, "chunk", d.Chunk, "throughput: bytes per write and read")
	fs.IntVar(&o.cfg.SlowTunnels, "slow-tunnels", d.SlowTunnels, "slowreader: tunnels whose client stops reading")
	fs.IntVar(&o.cfg.OpenWorkers, "open-workers", d.OpenWorkers, "tunnels opened at once when filling fanout")
	fs.DurationVar(&o.cfg.Progress, "progress", d.Progress, "interval of the progress line on stderr (0: none)")
	fs.IntVar(&o.sources, "sources", 16, "client source addresses 127.0.0.2 and up")
	fs.IntVar(&o.targetPorts, "target-ports", 4, "listeners per target kind (echo, duplex)")
	fs.StringVar(&o.jsonPath, "json", "", "also write results as JSON to this file")
	fs.StringVar(&o.target, "target", "", "measure the SOCKS5 server at IP:PORT instead of fastsocks (needs --pid; it must allow localhost)")
	fs.IntVar(&o.pid, "pid", 0, "with --target: the server's process id, for CPU, RSS and fds from /proc")
	fs.StringVar(&o.name, "name", "target", "with --target: its name in the table")
	fs.StringVar(&o.fastsocksBin, "fastsocks-bin", "", "use this fastsocks binary instead of building ./cmd/fastsocks")
	fs.StringVar(&o.fastsocksArgs, "fastsocks-args", "", "extra flags for fastsocks, space-separated (e.g. \"--loops 1\")")
	fs.DurationVar(&o.cfg.WaitQuiet, "wait-quiet", 0, "before each run, wait up to this long for the machine to be idle (other load under 0.15 cores); 0: do not wait")
	fs.IntVar(&o.cfg.RerunNoisy, "rerun-noisy", 0, "rerun a scenario run up to this many times while other load (over 0.25 cores) disturbed it")
	fs.BoolVar(&o.proxyLogs, "proxy-logs", true, "copy the proxies' stderr to the bench's, prefixed")
	// Hidden modes: the bench re-executes itself as the baseline proxy and
	// the target servers, so each gets its own process.
	fs.StringVar(&o.serveBaseline, "serve-baseline", "", "")
	fs.Var(&o.baselineAllow, "allow", "")
	fs.IntVar(&o.serveTargets, "serve-targets", 0, "")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./bench [flags]")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage == "" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  --%s %s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		q := quickConfig()
		pick := func(name string, dst *time.Duration, v time.Duration) {
			if !set[name] {
				*dst = v
			}
		}
		pickI := func(name string, dst *int, v int) {
			if !set[name] {
				*dst = v
			}
		}
		pick("duration", &o.cfg.Duration, q.Duration)
		pick("warmup", &o.cfg.Warmup, q.Warmup)
		pickI("concurrency", &o.cfg.Concurrency, q.Concurrency)
		pickI("tunnels", &o.cfg.Tunnels, q.Tunnels)
		pickI("streams", &o.cfg.Streams, q.Streams)
		pickI("slow-tunnels", &o.cfg.SlowTunnels, q.SlowTunnels)
		pickI("open-workers", &o.cfg.OpenWorkers, q.OpenWorkers)
		o.cfg.Settle, o.cfg.SampleEvery = q.Settle, q.SampleEvery
	} else {
		o.cfg.Settle, o.cfg.SampleEvery = d.Settle, d.SampleEvery
	}
	o.cfg.FDMargin = d.FDMargin
	o.cfg.Scenarios = nil
	for _, s := range strings.Split(o.scenarios, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ok := false
		for _, a := range allScenarios {
			ok = ok || a == s
		}
		if !ok {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		o.cfg.Scenarios = append(o.cfg.Scenarios, s)
	}
	switch {
	case o.serveBaseline != "" || o.serveTargets > 0:
		return o, nil
	case len(o.cfg.Scenarios) == 0:
		return nil, errors.New("--scenarios: none given")
	case o.cfg.Duration <= 0 || o.cfg.Warmup < 0:
		return nil, errors.New("--duration must be positive and --warmup not negative")
	case o.cfg.Concurrency < 1 || o.cfg.Tunnels < 1 || o.cfg.Streams < 1 || o.cfg.SlowTunnels < 1 || o.cfg.OpenWorkers < 1:
		return nil, errors.New("--concurrency, --tunnels, --streams, --slow-tunnels and --open-workers must be at least 1")
	case o.cfg.MsgSize < 1 || o.cfg.MsgSize > 1<<20 || o.cfg.Chunk < 1 || o.cfg.Chunk > 16<<20:
		return nil, errors.New("--msg-size must be 1..1MiB and --chunk 1..16MiB")
	case o.targetPorts < 1 || o.targetPorts > 64:
		return nil, errors.New("--target-ports must be 1..64")
	case o.target != "" && o.pid <= 0:
		return nil, errors.New("--target needs --pid, the server's process id, for its CPU and memory")
	case o.target == "" && o.pid != 0:
		return nil, errors.New("--pid is only used with --target")
	}
	return o, nil
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "listeners" {
		return listenersMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "soak" {
		return soakMain(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if o.serveBaseline != "" {
		allow := []string(o.baselineAllow)
		if len(allow) == 0 {
			allow = []string{targetHost}
		}
		return serveBaselineMain(o.serveBaseline, allow)
	}
	if o.serveTargets > 0 {
		return serveTargetsMain(o.serveTargets)
	}
	if err := runMain(o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func runMain(o *options, stdout, stderr io.Writer) error {
	started := time.Now()
	var notes []string
	nofile, err := raiseNofile()
	if err != nil {
		return err
	}
	cl, err := newClient(o.sources)
	if err != nil {
		return err
	}
	if len(cl.sources) < o.sources {
		notes = append(notes, fmt.Sprintf("only %d client source addresses could be bound (asked %d)", len(cl.sources), o.sources))
	}
	if load, err := machineLoad(500 * time.Millisecond); err == nil && load > 0.25 {
		n := fmt.Sprintf("before the bench started, other processes kept %.2f of %d cores busy: figures will be low and noisy (see --wait-quiet and the \"other load\" rows)", load, runtime.NumCPU())
		fmt.Fprintln(stderr, "bench: "+n)
		notes = append(notes, n)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tg, err := startTargetsProcess(self, o.targetPorts)
	if err != nil {
		return fmt.Errorf("starting targets: %w", err)
	}
	defer tg.Close()

	var echo io.Writer
	if o.proxyLogs {
		echo = stderr
	}
	byName := map[string]subject{
		"direct": {Name: "direct"},
		"baseline": {Name: "baseline", Start: func() (*proxyHandle, error) {
			return startProcess("baseline", self, []string{"--serve-baseline", "127.0.0.1:0", "--allow", targetHost}, echo)
		}},
	}
	first := "fastsocks"
	if o.target != "" {
		first = o.name
		ap, err := netip.ParseAddrPort(o.target)
		if err != nil {
			return fmt.Errorf("--target %q: want IP:PORT: %v", o.target, err)
		}
		if _, err := readProc(o.pid, false); err != nil {
			return fmt.Errorf("--pid %d: %v", o.pid, err)
		}
		byName[o.name] = subject{Name: o.name, Start: func() (*proxyHandle, error) {
			if err := syscall.Kill(o.pid, 0); err != nil {
				return nil, fmt.Errorf("process %d: %v", o.pid, err)
			}
			return &proxyHandle{Addr: ap, PID: o.pid, Stop: func() []string { return nil }}, nil
		}}
	}
	if o.subjects == "" {
		o.subjects = first + ",baseline,direct"
	}
	var subjects []subject
	var names []string
	needFastsocks := false
	for _, n := range strings.Split(o.subjects, ",") {
		n = strings.TrimSpace(n)
		if n == "fastsocks" && o.target == "" {
			needFastsocks = true
			continue
		}
		if _, ok := byName[n]; !ok {
			return fmt.Errorf("--subjects: unknown %q (have fastsocks, baseline, direct, or the --name of --target)", n)
		}
	}
	if needFastsocks {
		bin := o.fastsocksBin
		if bin == "" {
			dir, err := os.MkdirTemp("", "fastsocks-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			fmt.Fprintln(stderr, "bench: building ./cmd/fastsocks")
			if bin, err = buildFastsocks(dir); err != nil {
				return err
			}
		}
		// The targets are on loopback, which the resolved-address guard
		// refuses unless opened.
		args := []string{"--listen", "127.0.0.1:0", "--allow", targetHost, "--allow-private-dest", "127.0.0.0/8", "--log-level", "warn"}
		args = append(args, strings.Fields(o.fastsocksArgs)...)
		byName["fastsocks"] = subject{Name: "fastsocks", Start: func() (*proxyHandle, error) {
			return startProcess("fastsocks", bin, args, echo)
		}}
		notes = append(notes, "fastsocks flags: "+strings.Join(args, " "))
	}
	for _, n := range strings.Split(o.subjects, ",") {
		n = strings.TrimSpace(n)
		subjects = append(subjects, byName[n])
		names = append(names, n)
	}

	rn := newRunner(o.cfg, cl, tg, stderr)
	results := rn.runAll(subjects)
	rp := &report{
		Started:  started,
		Seconds:  time.Since(started).Seconds(),
		Command:  append([]string{"go run ./bench"}, os.Args[1:]...),
		Config:   o.cfg,
		Subjects: names,
		Results:  results,
		Notes:    notes,
		Machine: machine{
			CPUs:        runtime.NumCPU(),
			GoVersion:   runtime.Version(),
			Kernel:      kernel(),
			NofileLimit: nofile,
			Sources:     len(cl.sources),
			TargetPorts: o.targetPorts,
			Targets:     "separate process",
		},
	}
	rp.compareNotes()
	fmt.Fprintf(stdout, "fastsocks bench: %d CPUs (client, proxy and targets share them), %s, kernel %s, fd limit %d per process; %s windows after %s warm-up; %.0fs in all\n\n",
		rp.Machine.CPUs, rp.Machine.GoVersion, rp.Machine.Kernel, nofile, o.cfg.Duration, o.cfg.Warmup, rp.Seconds)
	rp.writeTable(stdout)
	rp.writeNotes(stdout)
	if o.jsonPath != "" {
		if err := rp.writeJSON(o.jsonPath); err != nil {
			return err
		}
	}
	return nil
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "?"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}
