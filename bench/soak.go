package main

// soak: `go run ./bench soak [flags]` runs a mixed load against fastsocks
// for a long time and watches the proxy process for growth.
//
// Load, all at once, for --duration:
//   - churn: --clients clients each loop connect, greet, CONNECT, 1-byte
//     echo, close (connrate's loop; --rate caps it);
//   - a long-lived set of --tunnels tunnels (one in ten through HTTP
//     CONNECT), each sending a 64-byte ping about every --ping-every and
//     checking the echo;
//   - churn of that set: every --churn-every, a --churn fraction of it is
//     closed (in turn by RST, by FIN, and by a half-close that waits for
//     the target's FIN to come back through the proxy) and reopened;
//   - --http-clients clients looping short HTTP CONNECT tunnels (every
//     other one sends its first byte with the CONNECT head);
//   - one client making requests the proxy must refuse, every
//     --refuse-every: a name not allowed (SOCKS5 0x02, HTTP 403), an IP
//     literal (0x08), an HTTP GET (405), a closed target port (0x05, 502).
//
// Every --interval a line gives the proxy's RSS (/proc/PID/status), fds
// (/proc/PID/fd), goroutines and tunnels active (its --admin /metrics),
// the operations and errors since the last line, and the CPU of the proxy,
// of the bench (client and targets) and of everything else; it is read
// between two churn steps of the long-lived set. At the end: a
// Markdown table of the trace, and a verdict comparing the medians of the
// first and last thirds after the warm-up (the first 20% of the run, at
// least 30 s, at most half), plus a check that once the load stops the
// proxy goes back to its idle fds with no tunnel open. Exit status 0 when
// flat, 1 when something grew, the error rate passed --max-error-rate, the
// proxy did not drain or it exited.

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// soakConfig is what the soak flags set.
type soakConfig struct {
	Duration      time.Duration
	Interval      time.Duration
	Tunnels       int           // long-lived set
	Churn         float64       // fraction of the set replaced every ChurnEvery
	ChurnEvery    time.Duration //
	Clients       int           // SOCKS5 churn clients
	Rate          float64       // churn connections/s, all clients together; 0: as fast as they go
	HTTPClients   int           // short-lived HTTP CONNECT clients
	RefuseEvery   time.Duration // pause between refused requests; 0: none
	PingEvery     time.Duration // mean time between pings on a long-lived tunnel
	MsgSize       int
	OpenWorkers   int // long-lived tunnels opened at once while filling the set
	Sources       int
	TargetPorts   int
	MaxErrorRate  float64 // errors / operations above which the run fails
	FastsocksBin  string
	FastsocksArgs string
	ProxyLogs     bool
	Report        string // also write the Markdown report to this file
	DrainWait     time.Duration

	commandLine string // for the report
}

func defaultSoakConfig() soakConfig {
	return soakConfig{
		Duration:     10 * time.Minute,
		Interval:     10 * time.Second,
		Tunnels:      2000,
		Churn:        0.05,
		ChurnEvery:   5 * time.Second,
		Clients:      4,
		HTTPClients:  1,
		RefuseEvery:  20 * time.Millisecond,
		PingEvery:    10 * time.Second,
		MsgSize:      64,
		OpenWorkers:  64,
		Sources:      16,
		TargetPorts:  4,
		MaxErrorRate: 1e-4,
		ProxyLogs:    true,
		DrainWait:    20 * time.Second,
	}
}

func parseSoakFlags(args []string, stderr io.Writer) (soakConfig, error) {
	c := defaultSoakConfig()
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long the load runs")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "time between trace lines")
	fs.IntVar(&c.Tunnels, "tunnels", c.Tunnels, "long-lived tunnels held (capped where a process's fd limit would be reached)")
	fs.Float64Var(&c.Churn, "churn", c.Churn, "fraction of the long-lived tunnels closed and reopened every --churn-every")
	fs.DurationVar(&c.ChurnEvery, "churn-every", c.ChurnEvery, "period of the long-lived set's churn")
	fs.IntVar(&c.Clients, "clients", c.Clients, "SOCKS5 clients looping connect, greet, CONNECT, 1-byte echo, close")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "cap on those clients' connections/s, all together (0: as fast as they go)")
	fs.IntVar(&c.HTTPClients, "http-clients", c.HTTPClients, "clients looping short HTTP CONNECT tunnels")
	fs.DurationVar(&c.RefuseEvery, "refuse-every", c.RefuseEvery, "pause between requests the proxy must refuse (0: none)")
	fs.DurationVar(&c.PingEvery, "ping-every", c.PingEvery, "mean time between pings on each long-lived tunnel")
	fs.IntVar(&c.MsgSize, "msg-size", c.MsgSize, "ping size in bytes")
	fs.IntVar(&c.OpenWorkers, "open-workers", c.OpenWorkers, "long-lived tunnels opened at once while filling the set")
	fs.IntVar(&c.Sources, "sources", c.Sources, "client source addresses 127.0.0.2 and up")
	fs.IntVar(&c.TargetPorts, "target-ports", c.TargetPorts, "echo (and duplex) target listeners")
	fs.Float64Var(&c.MaxErrorRate, "max-error-rate", c.MaxErrorRate, "client errors per operation above which the soak fails")
	fs.StringVar(&c.FastsocksBin, "fastsocks-bin", "", "use this fastsocks binary instead of building ./cmd/fastsocks")
	fs.StringVar(&c.FastsocksArgs, "fastsocks-args", "", "extra flags for fastsocks, space-separated")
	fs.BoolVar(&c.ProxyLogs, "proxy-logs", c.ProxyLogs, "copy fastsocks' stderr to the soak's, prefixed")
	fs.StringVar(&c.Report, "report", "", "also write the final Markdown report (trace and verdict) to this file")
	fs.DurationVar(&c.DrainWait, "drain-wait", c.DrainWait, "after the load, how long the proxy gets to close every tunnel")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.Duration <= 0 || c.Interval <= 0 || c.Interval > c.Duration:
		return c, errors.New("--duration and --interval must be positive, --interval at most --duration")
	case c.Tunnels < 0 || c.Clients < 0 || c.HTTPClients < 0 || c.OpenWorkers < 1:
		return c, errors.New("--tunnels, --clients and --http-clients must not be negative, --open-workers at least 1")
	case c.Churn < 0 || c.Churn > 1 || c.ChurnEvery <= 0:
		return c, errors.New("--churn must be 0..1 and --churn-every positive")
	case c.PingEvery <= 0 || c.MsgSize < 1 || c.MsgSize > 64<<10:
		return c, errors.New("--ping-every must be positive and --msg-size 1..64KiB")
	case c.Rate < 0 || c.RefuseEvery < 0 || c.MaxErrorRate < 0:
		return c, errors.New("--rate, --refuse-every and --max-error-rate must not be negative")
	case c.TargetPorts < 1 || c.TargetPorts > 64:
		return c, errors.New("--target-ports must be 1..64")
	}
	return c, nil
}

// soakMain is `go run ./bench soak`.
func soakMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseSoakFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench soak:", err)
		return 2
	}
	cfg.commandLine = "go run ./bench soak " + strings.Join(args, " ")
	res, err := runSoak(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench soak:", err)
		return 1
	}
	if !res.Verdict.Pass {
		return 1
	}
	return 0
}

// soakSample is one trace line.
type soakSample struct {
	Elapsed    time.Duration
	RSS        int64 // VmRSS, bytes
	FDs        int
	Threads    int
	Goroutines int   // go_goroutines; -1 if the scrape failed
	Tunnels    int   // fastsocks_tunnels_active; -1 if the scrape failed
	Conns      int   // fastsocks_connections_active; -1 if the scrape failed
	Heap       int64 // go_memstats_heap_inuse_bytes; -1 if the scrape failed
	Ops        int64 // operations since the previous line
	Errors     int64 // client errors since the previous line
	LogLines   int64 // proxy stderr lines since the previous line
	Reopening  int   // long-lived tunnels of a churn step still reopening when read (the trace waits up to 2s for 0)
	ProxyCores float64
	BenchCores float64 // the soak's clients and the targets process
	OtherCores float64 // everything else on the machine
	// SoftirqCores is the machine's softirq time (/proc/stat): mostly the
	// loopback network work of the soak's own traffic. Without
	// CONFIG_IRQ_TIME_ACCOUNTING the kernel also charges it to the
	// process it interrupted, so it is inside the figures above, not
	// beside them.
	SoftirqCores float64
	ScrapeErr    string
}

// soakCheck is one measure the verdict compares.
type soakCheck struct {
	Name        string
	Unit        string
	First, Last float64 // medians of the first and last thirds
	Tolerance   float64 // growth allowed
	Rule        string  // how the tolerance was set
	Samples     int     // samples with the figure, both thirds together
	OK          bool
}

func (c soakCheck) Growth() float64 { return c.Last - c.First }

// soakDrain is what the proxy looked like once the load stopped.
type soakDrain struct {
	IdleFDs, IdleGoroutines int // before the load started
	FDs, Goroutines         int
	Tunnels, Conns          int
	After                   time.Duration // how long it took (or DrainWait)
	OK                      bool
	Checked                 bool
	// ExtraGoroutines lists the goroutine stacks the proxy has more of
	// than when idle, from its /debug/pprof/goroutine (informational).
	ExtraGoroutines []string
	StacksChecked   bool // the profiles were compared
}

// soakVerdict is the end of a soak.
type soakVerdict struct {
	Warmup           time.Duration
	FirstFrom        time.Duration
	FirstTo          time.Duration
	LastFrom, LastTo time.Duration
	PerThird         int
	Checks           []soakCheck
	Flat             bool   // every check within its tolerance
	NoVerdict        string // why the trace could not be judged
	Ops, Errors      int64
	ErrorsOK         bool
	Drain            soakDrain
	ProxyExited      string
	Pass             bool
	Summary          string // one line: "flat" or "GROWING: ..."
}

// soakResult is a whole soak.
type soakResult struct {
	Config    soakConfig
	Started   time.Time
	Proxy     netip.AddrPort
	Admin     string
	PID       int
	Tunnels   int // long-lived tunnels asked for after the fd cap
	Samples   []soakSample
	Verdict   soakVerdict
	Notes     []string
	OpsByKind map[string]int64
	ErrKinds  []string // "kind xN: sample"
	PingP50   time.Duration
	PingP99   time.Duration
	SetupP50  time.Duration
	SetupP99  time.Duration
	// Long-lived tunnels reopened after the fill: setup time quantiles
	// and how many took over a second.
	ReopenP50, ReopenP99, ReopenMax time.Duration
	SlowReopens                     int64
	// TCP counts the kernel's TCP counters moved by during the trace
	// (machine-wide: nonzero deltas of a chosen few).
	TCP      []string
	OtherTop []string // other processes that used the most CPU during the run
	Load0    float64  // machine load before anything started (cores)
}

// Operation kinds, counted separately for the summary.
const (
	opChurn = iota
	opHTTP
	opOpen
	opClose
	opPing
	opRefused
	numOps
)

var opNames = [numOps]string{
	"SOCKS5 churn connections (connect, CONNECT, 1-byte echo, close)",
	"HTTP CONNECT short tunnels",
	"long-lived tunnels opened (the first set before the clock started, included)",
	"long-lived tunnels closed by churn",
	"pings echoed on long-lived tunnels",
	"requests refused as expected",
}

// soak is a running soak's load.
type soak struct {
	cfg        soakConfig
	cl         *client
	tg         *targets
	proxy      netip.AddrPort
	closedPort uint16

	stop   chan struct{}
	wg     sync.WaitGroup
	ops    [numOps]atomic.Int64
	errs   errTally
	opened atomic.Int64 // long-lived tunnels open now, client side
	filled atomic.Int64 // slots whose first open is done (or failed for good)
	// churning counts long-lived tunnels told to close by churnSet and not
	// reopened yet. stepMu is held by churnSet for a churn step (until
	// churning is back to 0, 2 s at most) and by the trace while it reads
	// a line, so a line does not catch part of the set between close and
	// reopen.
	churning atomic.Int64
	stepMu   sync.Mutex
	// reopenH is the setup time of long-lived tunnels opened after the
	// fill (churn, or after a failed ping); slowReopens counts those over
	// a second (a SYN retransmitted, a stalled accept or dial).
	reopenH     hist
	slowReopens atomic.Int64
	pingH       hist
	setupH      hist
	logSink     *lineCounter
}

func (s *soak) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the soak stops; it reports whether the soak goes
// on.
func (s *soak) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

func (s *soak) totalOps() int64 {
	var n int64
	for i := range s.ops {
		n += s.ops[i].Load()
	}
	return n
}

// errTally counts client errors by kind, keeping one message per kind.
type errTally struct {
	total  atomic.Int64
	mu     sync.Mutex
	kinds  map[string]int64
	sample map[string]string
}

func (t *errTally) fail(err error) {
	t.total.Add(1)
	k := errKind(err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds, t.sample = map[string]int64{}, map[string]string{}
	}
	t.kinds[k]++
	if _, ok := t.sample[k]; !ok {
		t.sample[k] = err.Error()
	}
}

func (t *errTally) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ks []string
	for k := range t.kinds {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return t.kinds[ks[i]] > t.kinds[ks[j]] })
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s x%d (e.g. %s)", k, t.kinds[k], t.sample[k]))
	}
	return out
}

// lineCounter receives the proxy's prefixed stderr lines: counts them,
// keeps the first few and copies them on.
type lineCounter struct {
	mu    sync.Mutex
	n     int64
	first []string
	w     io.Writer
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < 10 {
		l.first = append(l.first, strings.TrimSpace(string(p)))
	}
	if l.w != nil {
		l.w.Write(p)
	}
	return len(p), nil
}

func (l *lineCounter) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *lineCounter) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.first...)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort() (uint16, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port), nil
}

// runSoak runs a whole soak, printing the trace to stdout as it goes and
// the report at the end.
func runSoak(cfg soakConfig, stdout, stderr io.Writer) (*soakResult, error) {
	// The proxy's log lines arrive from another goroutine.
	stderr = &lockedWriter{w: stderr}
	res := &soakResult{Config: cfg, Started: time.Now(), OpsByKind: map[string]int64{}}
	note := func(format string, args ...any) {
		n := fmt.Sprintf(format, args...)
		res.Notes = append(res.Notes, n)
		fmt.Fprintln(stderr, "soak: "+n)
	}
	nofile, err := raiseNofile()
	if err != nil {
		return nil, err
	}
	if load, err := machineLoad(time.Second); err == nil {
		res.Load0 = load
		fmt.Fprintf(stderr, "soak: before starting, the machine kept %.2f of %d cores busy\n", load, runtime.NumCPU())
	}
	cl, err := newClient(cfg.Sources)
	if err != nil {
		return nil, err
	}
	if len(cl.sources) < cfg.Sources {
		note("only %d client source addresses could be bound (asked %d)", len(cl.sources), cfg.Sources)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tg, err := startTargetsProcess(self, cfg.TargetPorts)
	if err != nil {
		return nil, fmt.Errorf("starting targets: %w", err)
	}
	defer tg.Close()

	bin := cfg.FastsocksBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "fastsocks-soak-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(stderr, "soak: building ./cmd/fastsocks")
		if bin, err = buildFastsocks(dir); err != nil {
			return nil, err
		}
	}
	// The proxy's port is chosen here, not found in /proc: the admin
	// listener is on loopback too, and at --log-level warn fastsocks does
	// not log its addresses.
	listenPort, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freeLoopbackPort()
	for err == nil && adminPort == listenPort {
		adminPort, err = freeLoopbackPort()
	}
	if err != nil {
		return nil, err
	}
	listen := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), listenPort)
	res.Admin = "127.0.0.1:" + strconv.Itoa(int(adminPort))
	args := []string{"--listen", listen.String(), "--admin", res.Admin,
		"--allow", targetHost, "--allow-private-dest", "127.0.0.0/8", "--log-level", "warn"}
	args = append(args, strings.Fields(cfg.FastsocksArgs)...)
	note("fastsocks flags: %s", strings.Join(args, " "))
	sink := &lineCounter{}
	if cfg.ProxyLogs {
		sink.w = stderr
	}
	h, err := startProcess("fastsocks", bin, args, sink)
	if err != nil {
		return nil, err
	}
	stopped := false
	stopProxy := func() {
		if !stopped {
			stopped = true
			for _, n := range h.Stop() {
				if strings.Contains(n, "lines on stderr; the last") {
					continue // said below, with the first lines
				}
				note("%s", n)
			}
		}
	}
	defer stopProxy()
	res.Proxy, res.PID = listen, h.PID
	mc := newMetricsClient(res.Admin)
	var idle soakSample
	if err := waitAdmin(mc, h, 20*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	idle, err = sampleProxy(mc, h.PID)
	if err != nil {
		return nil, err
	}
	idleStacks, _ := mc.goroutineStacks()

	// The long-lived set is capped by the fd limit of every process: the
	// proxy holds 2 fds per tunnel, the bench and the targets 1 each, and
	// while a churned part of the set reopens, its old tunnels may not be
	// closed yet on the proxy's side.
	short := 2 * (cfg.Clients + cfg.HTTPClients + 2)
	want := cfg.Tunnels
	for _, p := range []struct {
		name   string
		limit  int
		per    int
		before int
	}{
		{"fastsocks", fdLimit(h.PID), 2, idle.FDs},
		{"the bench (client side)", int(nofile), 1, countFDsOr(os.Getpid())},
		{"the targets process", fdLimit(tg.PID), 1, countFDsOr(tg.PID)},
	} {
		if p.limit <= 0 {
			continue
		}
		room := int(float64((p.limit-p.before-200)/p.per-short) / (1 + cfg.Churn))
		if room < want {
			want = max(room, 0)
			note("the fd limit caps the long-lived tunnels at %d (asked %d): %s has %d fds at most and holds %d per tunnel", want, cfg.Tunnels, p.name, p.limit, p.per)
		}
	}
	res.Tunnels = want

	closed, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	s := &soak{cfg: cfg, cl: cl, tg: tg, proxy: listen, closedPort: closed, stop: make(chan struct{}), logSink: sink}
	fmt.Fprintf(stdout, "soak: fastsocks pid %d on %v (admin %s); %d long-lived tunnels (%.0f%% replaced every %v, a ping each about every %v), %d SOCKS5 churn clients, %d HTTP CONNECT clients, a refused request every %v; %v, a line every %v\n",
		h.PID, listen, res.Admin, want, cfg.Churn*100, cfg.ChurnEvery, cfg.PingEvery, cfg.Clients, cfg.HTTPClients, cfg.RefuseEvery, cfg.Duration, cfg.Interval)
	fmt.Fprintf(stdout, "soak: idle proxy: RSS %.1f MiB, %d fds, %d goroutines, %d threads\n", mib(idle.RSS), idle.FDs, idle.Goroutines, idle.Threads)

	// Fill the long-lived set first, so the clock starts with it held.
	fillSem := make(chan struct{}, cfg.OpenWorkers)
	kills := make([]chan struct{}, want)
	for i := range kills {
		kills[i] = make(chan struct{}, 1)
		s.wg.Add(1)
		go s.longLived(i, kills[i], fillSem)
	}
	fillStart := time.Now()
fill:
	for s.filled.Load() < int64(want) && time.Since(fillStart) < 2*time.Minute {
		select {
		case <-h.Exited:
			break fill
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "soak: %d long-lived tunnels open after %v; %d errors\n", s.opened.Load(), time.Since(fillStart).Round(time.Millisecond), s.errs.total.Load())
	if n := s.opened.Load(); n < int64(want) {
		note("only %d of %d long-lived tunnels were open when the clock started", n, want)
	}
	for w := 0; w < cfg.Clients; w++ {
		s.wg.Add(1)
		go s.churnClient(w)
	}
	for w := 0; w < cfg.HTTPClients; w++ {
		s.wg.Add(1)
		go s.httpClient(w)
	}
	if cfg.RefuseEvery > 0 {
		s.wg.Add(1)
		go s.refuser()
	}
	if cfg.Churn > 0 && want > 0 {
		s.wg.Add(1)
		go s.churnSet(kills)
	}

	// The trace.
	others := newProcAccount()
	tcp0 := readTCPCounters()
	start := time.Now()
	prev := struct {
		ops, errs, logs  int64
		proxy, self, tgt procSample
		machine, softirq time.Duration
	}{ops: s.totalOps(), errs: s.errs.total.Load(), logs: sink.count()}
	prev.proxy, _ = readProc(h.PID, false)
	prev.self, _ = readProc(os.Getpid(), false)
	prev.tgt, _ = readProc(tg.PID, false)
	prev.machine, _ = machineBusy()
	prev.softirq, _ = machineSoftirq()
	fmt.Fprintln(stdout, "soak: elapsed | RSS | fds | goroutines | tunnels active | ops | errors (since the last line) | CPU of proxy, bench, other")
	record := func() {
		// Read between two churn steps of the long-lived set (waiting
		// 3 s at most, so a proxy that stops answering still gets its
		// lines).
		locked := s.stepMu.TryLock()
		for t0 := time.Now(); !locked && time.Since(t0) < min(3*time.Second, cfg.Interval/3); locked = s.stepMu.TryLock() {
			time.Sleep(5 * time.Millisecond)
		}
		reopening := int(s.churning.Load())
		smp, err := sampleProxy(mc, h.PID)
		if locked {
			s.stepMu.Unlock()
		}
		if err != nil {
			smp.ScrapeErr = err.Error()
		}
		smp.Reopening = reopening
		smp.Elapsed = time.Since(start)
		ops, errs, logs := s.totalOps(), s.errs.total.Load(), sink.count()
		smp.Ops, smp.Errors, smp.LogLines = ops-prev.ops, errs-prev.errs, logs-prev.logs
		pr, perr := readProc(h.PID, false)
		me, _ := readProc(os.Getpid(), false)
		tt, _ := readProc(tg.PID, false)
		mach, _ := machineBusy()
		soft, _ := machineSoftirq()
		others.update()
		if perr == nil {
			smp.ProxyCores = cores(prev.proxy, pr)
		}
		smp.BenchCores = cores(prev.self, me) + cores(prev.tgt, tt)
		if wall := me.At.Sub(prev.self.At); wall > 0 && mach > 0 {
			smp.OtherCores = max(0, float64(mach-prev.machine)/float64(wall)-smp.ProxyCores-smp.BenchCores)
			smp.SoftirqCores = float64(soft-prev.softirq) / float64(wall)
		}
		prev.ops, prev.errs, prev.logs = ops, errs, logs
		prev.proxy, prev.self, prev.tgt, prev.machine, prev.softirq = pr, me, tt, mach, soft
		res.Samples = append(res.Samples, smp)
		fmt.Fprintln(stdout, smp.line())
	}
	record()
	deadline := start.Add(cfg.Duration)
	tick := time.NewTicker(cfg.Interval)
	exited := false
trace:
	for time.Now().Before(deadline.Add(-cfg.Interval / 2)) {
		select {
		case <-tick.C:
			record()
		case <-h.Exited:
			exited = true
			break trace
		}
	}
	tick.Stop()
	if !exited && time.Until(deadline) > 0 {
		time.Sleep(time.Until(deadline))
		record()
	}
	res.OtherTop = others.top(time.Since(start), []int{os.Getpid(), h.PID, tg.PID})
	res.TCP = tcpDeltas(tcp0, readTCPCounters())

	// Stop the load, then see the proxy drain.
	close(s.stop)
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		note("the load's clients had not all stopped 30s after the end (a read or write blocked on the proxy?)")
	}
	for i := range numOps {
		res.OpsByKind[opNames[i]] = s.ops[i].Load()
	}
	res.PingP50, res.PingP99 = s.pingH.Quantile(0.5), s.pingH.Quantile(0.99)
	res.SetupP50, res.SetupP99 = s.setupH.Quantile(0.5), s.setupH.Quantile(0.99)
	res.ReopenP50, res.ReopenP99, res.ReopenMax = s.reopenH.Quantile(0.5), s.reopenH.Quantile(0.99), s.reopenH.Quantile(1)
	res.SlowReopens = s.slowReopens.Load()
	res.ErrKinds = s.errs.list()

	v := computeVerdict(res.Samples, cfg.Duration, fdSlack(cfg))
	v.Ops, v.Errors = s.totalOps(), s.errs.total.Load()
	v.ErrorsOK = float64(v.Errors) <= cfg.MaxErrorRate*float64(max(v.Ops, 1))
	select {
	case <-h.Exited:
		v.ProxyExited = fmt.Sprintf("fastsocks exited during the soak: %v", h.ExitErr())
	default:
		v.Drain = checkDrain(mc, h.PID, idle, cfg.DrainWait)
		if v.Drain.Goroutines > idle.Goroutines && idleStacks != nil {
			if now, err := mc.goroutineStacks(); err == nil {
				v.Drain.ExtraGoroutines = stackDiff(idleStacks, now)
				v.Drain.StacksChecked = true
			}
		}
	}
	stopProxy()
	if n := sink.count(); n > 0 {
		note("fastsocks wrote %d lines on stderr (at --log-level warn); the first: %s", n, strings.Join(sink.lines(), " | "))
	}
	v.finish()
	res.Verdict = v

	var rep bytes.Buffer
	res.writeReport(&rep)
	stdout.Write(rep.Bytes())
	if cfg.Report != "" {
		if err := os.WriteFile(cfg.Report, rep.Bytes(), 0o644); err != nil {
			return res, err
		}
	}
	return res, nil
}

func countFDsOr(pid int) int {
	n, err := countFDs(pid)
	if err != nil {
		return 0
	}
	return n
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// fdSlack is the fd noise the short-lived load makes: each churn and HTTP
// client holds up to 2 proxy fds at a time, the refuser 2, a scrape 1.
func fdSlack(cfg soakConfig) int {
	return 2*(cfg.Clients+cfg.HTTPClients+1) + 4
}

func (smp soakSample) line() string {
	g, t := "?", "?"
	if smp.Goroutines >= 0 {
		g = strconv.Itoa(smp.Goroutines)
	}
	if smp.Tunnels >= 0 {
		t = strconv.Itoa(smp.Tunnels)
	}
	l := fmt.Sprintf("soak: %7s  RSS %6.1f MiB  fds %5d  goroutines %4s  tunnels %5s  ops %7d  errors %3d  CPU %.2f / %.2f / %.2f",
		fmtElapsed(smp.Elapsed), mib(smp.RSS), smp.FDs, g, t, smp.Ops, smp.Errors, smp.ProxyCores, smp.BenchCores, smp.OtherCores)
	if smp.Reopening > 0 {
		l += fmt.Sprintf("  (read with %d long-lived tunnels still reopening)", smp.Reopening)
	}
	if smp.LogLines > 0 {
		l += fmt.Sprintf("  proxy log lines %d", smp.LogLines)
	}
	if smp.ScrapeErr != "" {
		l += "  (metrics: " + smp.ScrapeErr + ")"
	}
	return l
}

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// ---- the load ----

// pattern fills b with bytes that depend on a tunnel and a sequence
// number, so a misrouted or stale echo is caught.
func pattern(b []byte, slot, seq int) {
	for i := range b {
		b[i] = byte(slot*7 + seq*13 + i)
	}
}

// longLived holds one slot of the long-lived set: open a tunnel, ping it
// now and then, and when told (churn) close it and open another.
func (s *soak) longLived(slot int, kill <-chan struct{}, fillSem chan struct{}) {
	defer s.wg.Done()
	useHTTP := slot%10 == 9
	first := true
	out := make([]byte, s.cfg.MsgSize)
	in := make([]byte, s.cfg.MsgSize)
	port := s.tg.Echo[slot%len(s.tg.Echo)]
	rng := rand.New(rand.NewPCG(uint64(slot), 0x50a4))
	closes := slot   // rotates the close mode
	churned := false // closed by churnSet, not reopened yet
	for seq := 0; !s.stopped(); {
		if first {
			fillSem <- struct{}{}
		}
		var c *net.TCPConn
		var early []byte
		var err error
		t0 := time.Now()
		if useHTTP {
			c, early, err = s.openHTTP(port, nil)
		} else {
			c, _, err = s.cl.open(s.proxy, port)
		}
		if first {
			<-fillSem
		} else if err == nil {
			d := time.Since(t0)
			s.reopenH.Record(slot, d)
			if d > time.Second {
				s.slowReopens.Add(1)
			}
		}
		if err != nil {
			s.errs.fail(err)
			if first {
				first = false
				s.filled.Add(1)
			}
			if !s.sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond) {
				return
			}
			continue
		}
		if len(early) > 0 {
			s.errs.fail(&stepError{"http reply", fmt.Errorf("%d unexpected bytes after the 200 head", len(early))})
		}
		s.ops[opOpen].Add(1)
		s.opened.Add(1)
		if churned {
			churned = false
			s.churning.Add(-1)
		}
		if first {
			first = false
			s.filled.Add(1)
		}
		// The first ping comes at a random point of the period, so the
		// pings of the set spread evenly.
		wait := time.Duration(rng.Int64N(int64(s.cfg.PingEvery)))
		alive := true
		for alive {
			t := time.NewTimer(wait)
			select {
			case <-s.stop:
				t.Stop()
				c.SetLinger(0)
				c.Close()
				s.opened.Add(-1)
				return
			case <-kill:
				t.Stop()
				closes++
				if err := closeTunnel(c, closes%3); err != nil {
					s.errs.fail(err)
				} else {
					s.ops[opClose].Add(1)
				}
				s.opened.Add(-1)
				alive = false
				churned = true
			case <-t.C:
				seq++
				pattern(out, slot, seq)
				c.SetDeadline(time.Now().Add(15 * time.Second))
				t0 := time.Now()
				_, err := c.Write(out)
				if err == nil {
					_, err = io.ReadFull(c, in)
				}
				if err == nil && !bytes.Equal(in, out) {
					err = errors.New("echo differs from what was sent")
				}
				if err != nil {
					s.errs.fail(&stepError{"ping", err})
					c.SetLinger(0)
					c.Close()
					s.opened.Add(-1)
					alive = false
					continue
				}
				s.pingH.Record(slot, time.Since(t0))
				s.ops[opPing].Add(1)
				// Next ping in 0.5..1.5 periods.
				wait = s.cfg.PingEvery/2 + time.Duration(rng.Int64N(int64(s.cfg.PingEvery)))
			}
		}
	}
}

// closeTunnel closes a long-lived tunnel in one of three ways: 0 RST, 1
// FIN, 2 half-close, then wait for the target's FIN (the echo target
// answers EOF with its own) to come back through the proxy.
func closeTunnel(c *net.TCPConn, mode int) error {
	switch mode {
	case 0:
		c.SetLinger(0)
		return c.Close()
	case 1:
		return c.Close()
	}
	defer c.Close()
	if err := c.CloseWrite(); err != nil {
		return &stepError{"half-close", err}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return &stepError{"half-close", fmt.Errorf("%d bytes after CloseWrite, want EOF", n)}
	case err == io.EOF:
		return nil
	default:
		return &stepError{"half-close", err}
	}
}

// churnSet closes a fraction of the long-lived set every ChurnEvery; each
// slot reopens at once.
func (s *soak) churnSet(kills []chan struct{}) {
	defer s.wg.Done()
	k := int(math.Round(s.cfg.Churn * float64(len(kills))))
	if k == 0 {
		k = 1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for s.sleep(s.cfg.ChurnEvery) {
		s.stepMu.Lock()
		for _, i := range rng.Perm(len(kills))[:k] {
			select {
			case kills[i] <- struct{}{}:
				s.churning.Add(1)
			default:
			}
		}
		for t0 := time.Now(); s.churning.Load() > 0 && time.Since(t0) < 2*time.Second && !s.stopped(); {
			time.Sleep(5 * time.Millisecond)
		}
		s.stepMu.Unlock()
	}
}

// pacer spaces one client's iterations so all clients together stay under
// rate per second (no spacing when rate is 0).
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate float64, clients int) *pacer {
	p := &pacer{next: time.Now()}
	if rate > 0 {
		p.every = time.Duration(float64(clients) / rate * float64(time.Second))
	}
	return p
}

func (p *pacer) wait(s *soak) bool {
	if p.every == 0 {
		return !s.stopped()
	}
	p.next = p.next.Add(p.every)
	d := time.Until(p.next)
	if d < -time.Second {
		p.next = time.Now()
	}
	if d > 0 {
		return s.sleep(d)
	}
	return !s.stopped()
}

// churnClient is connrate's loop.
func (s *soak) churnClient(w int) {
	defer s.wg.Done()
	p := newPacer(s.cfg.Rate, s.cfg.Clients)
	buf := make([]byte, 1)
	for i := w; p.wait(s); i++ {
		c, setup, err := s.cl.open(s.proxy, s.tg.Echo[i%len(s.tg.Echo)])
		if err != nil {
			s.errs.fail(err)
			s.sleep(5 * time.Millisecond)
			continue
		}
		c.SetDeadline(time.Now().Add(s.cl.timeout))
		buf[0] = byte('a' + i%26)
		want := buf[0]
		_, err = c.Write(buf)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		if err == nil && buf[0] != want {
			err = fmt.Errorf("echo %q, sent %q", buf[0], want)
		}
		c.Close()
		if err != nil {
			s.errs.fail(&stepError{"echo", err})
			continue
		}
		s.setupH.Record(w, setup)
		s.ops[opChurn].Add(1)
	}
}

// httpClient loops short HTTP CONNECT tunnels with a 1-byte echo; every
// other one sends its byte right behind the CONNECT head, as a TLS client
// sends its ClientHello.
func (s *soak) httpClient(w int) {
	defer s.wg.Done()
	buf := make([]byte, 1)
	for i := w; !s.stopped(); i++ {
		b := byte('A' + i%26)
		var early []byte
		if i%2 == 1 {
			early = []byte{b}
		}
		c, got, err := s.openHTTP(s.tg.Echo[i%len(s.tg.Echo)], early)
		if err != nil {
			s.errs.fail(err)
			s.sleep(5 * time.Millisecond)
			continue
		}
		c.SetDeadline(time.Now().Add(s.cl.timeout))
		if early == nil {
			_, err = c.Write([]byte{b})
		}
		if err == nil {
			if len(got) > 0 {
				buf[0] = got[0]
				if len(got) > 1 {
					err = fmt.Errorf("%d bytes echoed, sent 1", len(got))
				}
			} else {
				_, err = io.ReadFull(c, buf)
			}
		}
		if err == nil && buf[0] != b {
			err = fmt.Errorf("echo %q, sent %q", buf[0], b)
		}
		c.Close()
		if err != nil {
			s.errs.fail(&stepError{"http echo", err})
			continue
		}
		s.ops[opHTTP].Add(1)
	}
}

// openHTTP opens a tunnel to localhost:port with HTTP CONNECT, sending
// early right behind the head. It returns the bytes read past the
// response head.
func (s *soak) openHTTP(port uint16, early []byte) (*net.TCPConn, []byte, error) {
	c, err := s.cl.dial(s.proxy)
	if err != nil {
		return nil, nil, &stepError{"connect", err}
	}
	c.SetDeadline(time.Now().Add(s.cl.timeout))
	hp := net.JoinHostPort(targetHost, strconv.Itoa(int(port)))
	req := append([]byte("CONNECT "+hp+" HTTP/1.1\r\nHost: "+hp+"\r\n\r\n"), early...)
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, nil, &stepError{"http request", err}
	}
	code, _, rest, err := readHTTPHead(c)
	if err == nil && code != 200 {
		err = fmt.Errorf("status %d, want 200", code)
	}
	if err != nil {
		c.SetLinger(0)
		c.Close()
		return nil, nil, &stepError{"http reply", err}
	}
	c.SetDeadline(time.Time{})
	return c, rest, nil
}

// readHTTPHead reads a response head; it returns the status code, the
// head and the bytes read after it.
func readHTTPHead(c net.Conn) (code int, head string, rest []byte, err error) {
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 1024)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head, rest = string(buf[:i+4]), buf[i+4:]
			break
		}
		if len(buf) > 16<<10 {
			return 0, "", nil, errors.New("response head over 16 KiB")
		}
		n, rerr := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if rerr != nil && n == 0 {
			if rerr == io.EOF && len(buf) > 0 {
				return 0, "", nil, fmt.Errorf("EOF inside the response head %q", buf)
			}
			return 0, "", nil, rerr
		}
	}
	first, _, _ := strings.Cut(head, "\r\n")
	f := strings.Fields(first)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, head, rest, fmt.Errorf("status line %q", first)
	}
	code, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, head, rest, fmt.Errorf("status line %q", first)
	}
	return code, head, rest, nil
}

// refusedCase is a request the proxy must refuse, and how.
type refusedCase struct {
	name string
	do   func(s *soak) error
}

var refusedCases = []refusedCase{
	{"SOCKS5 name not allowed", func(s *soak) error {
		return s.socksExpect(socks5.AppendRequest(nil, socks5.CmdConnect, "refused.invalid", 443), socks5.RepNotAllowed)
	}},
	{"HTTP CONNECT name not allowed", func(s *soak) error {
		return s.httpExpect("CONNECT refused.invalid:443 HTTP/1.1\r\nHost: refused.invalid:443\r\n\r\n", 403, "blocked-by-allowlist")
	}},
	{"SOCKS5 IP literal", func(s *soak) error {
		req := []byte{socks5.Version, byte(socks5.CmdConnect), 0, byte(socks5.AddrIPv4), 127, 0, 0, 1, 0, 0}
		req[8], req[9] = byte(s.tg.Echo[0]>>8), byte(s.tg.Echo[0])
		return s.socksExpect(req, socks5.RepAddrTypeNotSupported)
	}},
	{"HTTP GET", func(s *soak) error {
		return s.httpExpect("GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n", 405, "")
	}},
	{"SOCKS5 closed target port", func(s *soak) error {
		return s.socksExpect(socks5.AppendRequest(nil, socks5.CmdConnect, targetHost, s.closedPort), socks5.RepConnectionRefused)
	}},
	{"HTTP CONNECT closed target port", func(s *soak) error {
		hp := net.JoinHostPort(targetHost, strconv.Itoa(int(s.closedPort)))
		return s.httpExpect("CONNECT "+hp+" HTTP/1.1\r\nHost: "+hp+"\r\n\r\n", 502, "")
	}},
}

// refuser cycles through refusedCases.
func (s *soak) refuser() {
	defer s.wg.Done()
	for i := 0; s.sleep(s.cfg.RefuseEvery); i++ {
		rc := refusedCases[i%len(refusedCases)]
		if err := rc.do(s); err != nil {
			s.errs.fail(&stepError{"refusal (" + rc.name + ")", err})
			continue
		}
		s.ops[opRefused].Add(1)
	}
}

// socksExpect sends a greeting and req in one write (a pipelining client)
// and wants reply rep, then the connection closed by the proxy.
func (s *soak) socksExpect(req []byte, rep socks5.ReplyCode) error {
	c, err := s.cl.dial(s.proxy)
	if err != nil {
		return &stepError{"connect", err}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cl.timeout))
	b := append(socks5.AppendGreeting(nil, socks5.MethodNoAuth), req...)
	if _, err := c.Write(b); err != nil {
		return err
	}
	var arr [512]byte
	if _, err := io.ReadFull(c, arr[:2]); err != nil {
		return fmt.Errorf("method selection: %w", err)
	}
	have := 0
	for {
		got, _, _, perr := socks5.ParseReply(arr[:have])
		if perr == nil || errors.Is(perr, socks5.ErrReplyAddrType) {
			if got != rep {
				return fmt.Errorf("REP %#02x (%v), want %#02x", byte(got), got, byte(rep))
			}
			break
		}
		if perr != socks5.ErrShort {
			return perr
		}
		n, rerr := c.Read(arr[have:])
		have += n
		if rerr != nil && n == 0 {
			return fmt.Errorf("reply: %w", rerr)
		}
	}
	// The proxy closes after a refusal.
	if n, err := c.Read(arr[:]); n > 0 || err == nil {
		return fmt.Errorf("%d more bytes after the refusal, want the connection closed", n)
	}
	return nil
}

// httpExpect sends head and wants status code (and X-Proxy-Error: xerr
// when xerr is set), then the connection closed after the body.
func (s *soak) httpExpect(head string, code int, xerr string) error {
	c, err := s.cl.dial(s.proxy)
	if err != nil {
		return &stepError{"connect", err}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cl.timeout))
	if _, err := c.Write([]byte(head)); err != nil {
		return err
	}
	got, h, _, err := readHTTPHead(c)
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("status %d, want %d", got, code)
	}
	if xerr != "" && !strings.Contains(strings.ToLower(h), "x-proxy-error: "+xerr) {
		return fmt.Errorf("no X-Proxy-Error: %s in %q", xerr, h)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("reading to the close: %w", err)
	}
	return nil
}

// ---- the proxy's figures ----

type metricsClient struct {
	url string
	hc  *http.Client
}

func newMetricsClient(admin string) *metricsClient {
	return &metricsClient{
		url: "http://" + admin + "/metrics",
		// A fresh connection per scrape: no idle keep-alive connection
		// (and its goroutine) left in the proxy between lines.
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
	}
}

func (m *metricsClient) scrape() (map[string]float64, error) {
	resp, err := m.hc.Get(m.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return parseMetricsText(b), nil
}

// parseMetricsText reads the Prometheus text format minimally: each sample
// line "name{labels} value [timestamp]" gives m["name{labels}"] = value
// ("name" alone when there are no labels). Comments and lines it cannot
// read are skipped.
func parseMetricsText(b []byte) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ \t")
		if end < 0 {
			continue
		}
		if line[end] == '{' {
			// Find the closing brace outside quoted label values.
			inQ, esc := false, false
			close := -1
			for i := end + 1; i < len(line) && close < 0; i++ {
				switch ch := line[i]; {
				case esc:
					esc = false
				case ch == '\\' && inQ:
					esc = true
				case ch == '"':
					inQ = !inQ
				case ch == '}' && !inQ:
					close = i
				}
			}
			if close < 0 {
				continue
			}
			end = close + 1
		}
		f := strings.Fields(line[end:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[line[:end]] = v
	}
	return m
}

// sampleProxy reads the proxy's RSS, fds and threads from /proc and its
// goroutines, tunnels, connections and heap from /metrics. A failed scrape
// leaves those -1 and returns its error with the /proc figures.
func sampleProxy(mc *metricsClient, pid int) (soakSample, error) {
	smp := soakSample{Goroutines: -1, Tunnels: -1, Conns: -1, Heap: -1}
	p, err := readProc(pid, true)
	if err != nil {
		return smp, err
	}
	smp.RSS, smp.FDs, smp.Threads = p.RSS, p.FDs, p.Threads
	m, err := mc.scrape()
	if err != nil {
		return smp, err
	}
	get := func(name string) (float64, bool) {
		v, ok := m[name]
		return v, ok
	}
	var missing []string
	if v, ok := get("go_goroutines"); ok {
		smp.Goroutines = int(v)
	} else {
		missing = append(missing, "go_goroutines")
	}
	if v, ok := get("fastsocks_tunnels_active"); ok {
		smp.Tunnels = int(v)
	} else {
		missing = append(missing, "fastsocks_tunnels_active")
	}
	if v, ok := get("fastsocks_connections_active"); ok {
		smp.Conns = int(v)
	}
	if v, ok := get("go_memstats_heap_inuse_bytes"); ok {
		smp.Heap = int64(v)
	}
	if len(missing) > 0 {
		return smp, fmt.Errorf("/metrics lacks %s", strings.Join(missing, ", "))
	}
	return smp, nil
}

// goroutineStacks reads the proxy's goroutine profile (debug=1): how many
// goroutines wait in each stack.
func (m *metricsClient) goroutineStacks() (map[string]int, error) {
	resp, err := m.hc.Get(strings.TrimSuffix(m.url, "/metrics") + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /debug/pprof/goroutine: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return parseGoroutineProfile(b), nil
}

// parseGoroutineProfile reads a debug=1 goroutine profile: groups "N @
// addresses" followed by "#\taddr\tfunc+off\tfile:line" frames. A group is
// named by its first three frames outside the runtime, syscall and poller
// packages (the place in the program it waits), "f1 < f2 < f3".
func parseGoroutineProfile(b []byte) map[string]int {
	out := map[string]int{}
	n := 0
	var frames []string
	flush := func() {
		if n > 0 {
			key := strings.Join(frames, " < ")
			if key == "" {
				key = "(no frames outside the runtime)"
			}
			out[key] += n
		}
		n, frames = 0, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cnt, _, ok := strings.Cut(line, " @"); ok && !strings.HasPrefix(line, "#") {
			flush()
			n, _ = strconv.Atoi(strings.TrimSpace(cnt))
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if n == 0 || !strings.HasPrefix(line, "#") || len(f) < 2 || len(frames) == 3 {
			continue
		}
		fn := f[1]
		if i := strings.LastIndex(fn, "+0x"); i > 0 {
			fn = fn[:i]
		}
		switch {
		case strings.HasPrefix(fn, "runtime."), strings.HasPrefix(fn, "syscall."),
			strings.HasPrefix(fn, "internal/"), strings.HasPrefix(fn, "golang.org/x/sys/"):
			continue
		}
		frames = append(frames, fn)
	}
	flush()
	return out
}

// stackDiff lists the stacks now has more goroutines in than before.
func stackDiff(before, now map[string]int) []string {
	var out []string
	for k, n := range now {
		if d := n - before[k]; d > 0 {
			out = append(out, fmt.Sprintf("+%d in %s", d, k))
		}
	}
	sort.Strings(out)
	return out
}

// waitAdmin waits for /metrics to answer.
func waitAdmin(mc *metricsClient, h *proxyHandle, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := mc.scrape()
		if err == nil {
			return nil
		}
		select {
		case <-h.Exited:
			return fmt.Errorf("fastsocks exited: %v", h.ExitErr())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fastsocks' /metrics did not answer within %v: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDrain waits up to limit for the proxy to hold no connection and no
// more fds than when idle before the load.
func checkDrain(mc *metricsClient, pid int, idle soakSample, limit time.Duration) soakDrain {
	d := soakDrain{IdleFDs: idle.FDs, IdleGoroutines: idle.Goroutines, Checked: true}
	t0 := time.Now()
	for {
		smp, err := sampleProxy(mc, pid)
		d.FDs, d.Goroutines, d.Tunnels, d.Conns = smp.FDs, smp.Goroutines, smp.Tunnels, smp.Conns
		d.After = time.Since(t0)
		if err == nil && smp.Tunnels == 0 && smp.Conns == 0 && smp.FDs <= idle.FDs {
			d.OK = true
			return d
		}
		if d.After > limit {
			return d
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---- the verdict ----

// soakWarmup is the part of a run left out of the verdict: 20% of it, at
// least 30 s, but never more than half of it.
func soakWarmup(d time.Duration) time.Duration {
	return max(d/5, min(30*time.Second, d/2))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// computeVerdict compares the medians of the first and last thirds of the
// samples after the warm-up: RSS may grow by 10% or 2 MiB (whichever is
// more), fds by 1% or the short-lived load's slack, goroutines by 10.
func computeVerdict(samples []soakSample, duration time.Duration, slack int) soakVerdict {
	v := soakVerdict{Warmup: soakWarmup(duration)}
	var post []soakSample
	for _, s := range samples {
		if s.Elapsed >= v.Warmup {
			post = append(post, s)
		}
	}
	if len(post) < 3 {
		v.NoVerdict = fmt.Sprintf("only %d samples after the %v warm-up; need 3 (a longer --duration or a shorter --interval)", len(post), v.Warmup)
		return v
	}
	k := len(post) / 3
	first, last := post[:k], post[len(post)-k:]
	v.PerThird = k
	v.FirstFrom, v.FirstTo = first[0].Elapsed, first[k-1].Elapsed
	v.LastFrom, v.LastTo = last[0].Elapsed, last[k-1].Elapsed
	col := func(ss []soakSample, f func(soakSample) (float64, bool)) []float64 {
		var out []float64
		for _, s := range ss {
			if x, ok := f(s); ok {
				out = append(out, x)
			}
		}
		return out
	}
	check := func(name, unit string, f func(soakSample) (float64, bool), tol func(first float64) (float64, string)) {
		a, b := col(first, f), col(last, f)
		c := soakCheck{Name: name, Unit: unit, Samples: len(a) + len(b)}
		if len(a) == 0 || len(b) == 0 {
			c.Rule = "no figures in one of the thirds"
			v.Checks = append(v.Checks, c)
			return
		}
		c.First, c.Last = median(a), median(b)
		c.Tolerance, c.Rule = tol(c.First)
		c.OK = c.Growth() <= c.Tolerance
		v.Checks = append(v.Checks, c)
	}
	check("proxy RSS", "MiB", func(s soakSample) (float64, bool) { return mib(s.RSS), s.RSS > 0 },
		func(f float64) (float64, string) { return max(0.10*f, 2), "10% or 2 MiB, whichever is more" })
	check("proxy fds", "", func(s soakSample) (float64, bool) { return float64(s.FDs), s.FDs > 0 },
		func(f float64) (float64, string) {
			return max(0.01*f, float64(slack)), fmt.Sprintf("1%% or %d, the short-lived clients' fds, whichever is more", slack)
		})
	check("proxy goroutines", "", func(s soakSample) (float64, bool) { return float64(s.Goroutines), s.Goroutines >= 0 },
		func(float64) (float64, string) { return 10, "10 goroutines" })
	v.Flat = true
	for _, c := range v.Checks {
		v.Flat = v.Flat && c.OK
	}
	return v
}

// finish sets Pass and Summary once errors and the drain are known.
func (v *soakVerdict) finish() {
	var bad []string
	if v.NoVerdict != "" {
		bad = append(bad, "no verdict: "+v.NoVerdict)
	}
	for _, c := range v.Checks {
		if !c.OK {
			bad = append(bad, fmt.Sprintf("%s %s -> %s (%s, allowed %s)", c.Name, c.fmt(c.First), c.fmt(c.Last), c.fmtSigned(c.Growth()), c.fmtSigned(c.Tolerance)))
		}
	}
	if !v.ErrorsOK {
		bad = append(bad, fmt.Sprintf("%d client errors in %d operations", v.Errors, v.Ops))
	}
	if v.ProxyExited != "" {
		bad = append(bad, v.ProxyExited)
	} else if v.Drain.Checked && !v.Drain.OK {
		bad = append(bad, fmt.Sprintf("after the load: %d tunnels, %d connections, %d fds (idle %d) after %v", v.Drain.Tunnels, v.Drain.Conns, v.Drain.FDs, v.Drain.IdleFDs, v.Drain.After.Round(time.Millisecond)))
	}
	v.Pass = len(bad) == 0
	switch {
	case v.Pass:
		v.Summary = "flat"
	case v.NoVerdict == "" && !v.Flat:
		v.Summary = "GROWING: " + strings.Join(bad, "; ")
	default:
		v.Summary = "FAILED: " + strings.Join(bad, "; ")
	}
}

func (c soakCheck) fmt(x float64) string {
	if c.Unit == "MiB" {
		return fmt.Sprintf("%.1f MiB", x)
	}
	return strconv.FormatFloat(x, 'f', -1, 64) // a median of counts: n or n.5
}

func (c soakCheck) fmtSigned(x float64) string {
	s := c.fmt(x)
	if x >= 0 {
		s = "+" + s
	}
	return s
}

// ---- other processes' CPU ----

type procCPU struct {
	comm string
	cpu  time.Duration
}

// procCPUTable reads the CPU time of every process.
func procCPUTable() map[int]procCPU {
	out := map[int]procCPU{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		cpu, err := parseStatCPU(b)
		if err != nil {
			continue
		}
		comm := ""
		if i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')'); i >= 0 && j > i {
			comm = string(b[i+1 : j])
		}
		out[pid] = procCPU{comm, cpu}
	}
	return out
}

// procAccount adds up the CPU each process uses between updates, so
// processes that come and go during a run are counted too (all but their
// last interval).
type procAccount struct {
	prev map[int]procCPU
	used map[int]procCPU
}

func newProcAccount() *procAccount {
	return &procAccount{prev: procCPUTable(), used: map[int]procCPU{}}
}

func (a *procAccount) update() {
	now := procCPUTable()
	for pid, pn := range now {
		d := pn.cpu
		if pp, ok := a.prev[pid]; ok && pp.comm == pn.comm {
			d -= pp.cpu
		}
		if d > 0 {
			u := a.used[pid]
			u.comm, u.cpu = pn.comm, u.cpu+d
			a.used[pid] = u
		}
	}
	a.prev = now
}

// top names the processes other than ours that used the most CPU, in
// cores over wall.
func (a *procAccount) top(wall time.Duration, ours []int) []string {
	skip := map[int]bool{}
	for _, p := range ours {
		skip[p] = true
	}
	type use struct {
		pid   int
		comm  string
		cores float64
	}
	var all []use
	for pid, u := range a.used {
		if skip[pid] {
			continue
		}
		if c := float64(u.cpu) / float64(wall); c >= 0.02 {
			all = append(all, use{pid, u.comm, c})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].cores > all[j].cores })
	var out []string
	for i, u := range all {
		if i == 5 {
			break
		}
		out = append(out, fmt.Sprintf("%s (pid %d) %.2f cores", u.comm, u.pid, u.cores))
	}
	return out
}

// ---- the report ----

func (r *soakResult) writeReport(w io.Writer) {
	v := r.Verdict
	fmt.Fprintf(w, "\n## Soak: %s\n\n", v.Summary)
	fmt.Fprintf(w, "```\n%s\n```\n\n", r.Config.commandLine)
	fmt.Fprintf(w, "Started %s; %d CPUs shared by the proxy, the bench's clients and targets and anything else; %s; kernel %s; fd limit per process: fastsocks and the bench %s.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), kernel(), strconv.Itoa(int(softNofile())))
	fmt.Fprintf(w, "Load: %d long-lived tunnels (one in ten via HTTP CONNECT; %.0f%% of them closed by RST, FIN or half-close and reopened every %v; a %d-byte ping on each about every %v), %d SOCKS5 clients looping connect/CONNECT/1-byte echo/close",
		r.Tunnels, r.Config.Churn*100, r.Config.ChurnEvery, r.Config.MsgSize, r.Config.PingEvery, r.Config.Clients)
	if r.Config.Rate > 0 {
		fmt.Fprintf(w, " (at most %.0f/s together)", r.Config.Rate)
	}
	fmt.Fprintf(w, ", %d looping short HTTP CONNECT tunnels, and a request the proxy must refuse every %v (name not allowed, IP literal, GET, closed port; SOCKS5 and HTTP). Columns: proxy RSS from /proc/PID/status, fds from /proc/PID/fd, goroutines, tunnels and connections active and heap in use from its /metrics; ops and errors since the previous line; CPU in cores over the interval. Each line is read between two churn steps of the long-lived set.\n\n",
		r.Config.HTTPClients, r.Config.RefuseEvery)

	fmt.Fprintln(w, "| elapsed | phase | RSS (MiB) | fds | goroutines | tunnels active | conns active | heap in use (MiB) | ops | errors | proxy CPU | bench CPU | other CPU |")
	fmt.Fprintln(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range r.Samples {
		phase := ""
		switch {
		case s.Elapsed < v.Warmup:
			phase = "warm-up"
		case v.PerThird > 0 && s.Elapsed >= v.FirstFrom && s.Elapsed <= v.FirstTo:
			phase = "first third"
		case v.PerThird > 0 && s.Elapsed >= v.LastFrom && s.Elapsed <= v.LastTo:
			phase = "last third"
		}
		num := func(x int) string {
			if x < 0 {
				return "?"
			}
			return strconv.Itoa(x)
		}
		heap := "?"
		if s.Heap >= 0 {
			heap = fmt.Sprintf("%.1f", mib(s.Heap))
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %d | %s | %s | %s | %s | %d | %d | %.2f | %.2f | %.2f |\n",
			fmtElapsed(s.Elapsed), phase, mib(s.RSS), s.FDs, num(s.Goroutines), num(s.Tunnels), num(s.Conns), heap, s.Ops, s.Errors, s.ProxyCores, s.BenchCores, s.OtherCores)
	}
	fmt.Fprintln(w)

	if v.NoVerdict != "" {
		fmt.Fprintf(w, "No growth verdict: %s.\n\n", v.NoVerdict)
	} else {
		fmt.Fprintf(w, "Warm-up: the first %v (20%% of the run, at least 30 s, at most half of it). Compared: medians of the first third after it (%s to %s) and of the last third (%s to %s), %d trace lines each.\n\n",
			v.Warmup, fmtElapsed(v.FirstFrom), fmtElapsed(v.FirstTo), fmtElapsed(v.LastFrom), fmtElapsed(v.LastTo), v.PerThird)
		fmt.Fprintln(w, "| measure | first third | last third | growth | allowed | verdict |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- | --- |")
		for _, c := range v.Checks {
			verdict := "flat"
			if !c.OK {
				verdict = "**GROWING**"
			}
			if c.Samples == 0 || math.IsNaN(c.First) {
				fmt.Fprintf(w, "| %s | – | – | – | %s | **no data** |\n", c.Name, c.Rule)
				continue
			}
			pct := ""
			if c.First > 0 {
				pct = fmt.Sprintf(" (%+.1f%%)", 100*c.Growth()/c.First)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s%s | %s (%s) | %s |\n", c.Name, c.fmt(c.First), c.fmt(c.Last), c.fmtSigned(c.Growth()), pct, c.fmtSigned(math.Round(c.Tolerance*10)/10), c.Rule, verdict)
		}
		fmt.Fprintln(w)
	}
	errVerdict := "ok"
	if !v.ErrorsOK {
		errVerdict = "**too many**"
	}
	fmt.Fprintf(w, "Client errors: %d in %d operations (%.2g per operation; allowed %.2g): %s.\n\n", v.Errors, v.Ops, float64(v.Errors)/float64(max(v.Ops, 1)), r.Config.MaxErrorRate, errVerdict)
	switch {
	case v.ProxyExited != "":
		fmt.Fprintf(w, "**%s.**\n\n", v.ProxyExited)
	case v.Drain.Checked:
		dv := "ok"
		if !v.Drain.OK {
			dv = "**did not drain**"
		}
		fmt.Fprintf(w, "After the load stopped: %d tunnels and %d connections active, %d fds (%d when idle before the load), %d goroutines (%d when idle), %v after the last client closed: %s.\n\n",
			v.Drain.Tunnels, v.Drain.Conns, v.Drain.FDs, v.Drain.IdleFDs, v.Drain.Goroutines, v.Drain.IdleGoroutines, v.Drain.After.Round(time.Millisecond), dv)
		if len(v.Drain.ExtraGoroutines) > 0 {
			fmt.Fprintf(w, "Goroutines the proxy had then and not when idle (its /debug/pprof/goroutine): %s.\n\n", strings.Join(v.Drain.ExtraGoroutines, "; "))
		} else if v.Drain.StacksChecked {
			fmt.Fprintf(w, "The goroutine profile taken right after (its /debug/pprof/goroutine) has no stack with more goroutines than when idle: the extra ones were transient (the admin server's own).\n\n")
		}
	}
	fmt.Fprintln(w, "Operations:")
	fmt.Fprintln(w)
	secs := 0.0
	if n := len(r.Samples); n > 0 {
		secs = r.Samples[n-1].Elapsed.Seconds()
	}
	for i := range numOps {
		n := r.OpsByKind[opNames[i]]
		rate := ""
		if secs > 0 {
			rate = fmt.Sprintf(" (%.1f/s)", float64(n)/secs)
		}
		fmt.Fprintf(w, "- %s: %d%s\n", opNames[i], n, rate)
	}
	if r.SetupP50 > 0 {
		fmt.Fprintf(w, "- churn connection setup (connect to SOCKS5 success reply): p50 %v, p99 %v\n", r.SetupP50.Round(time.Microsecond), r.SetupP99.Round(time.Microsecond))
	}
	if r.ReopenP50 > 0 {
		fmt.Fprintf(w, "- long-lived tunnel reopen (connect to success reply): p50 %v, p99 %v, max %v; %d took over 1 s\n", r.ReopenP50.Round(time.Microsecond), r.ReopenP99.Round(time.Microsecond), r.ReopenMax.Round(time.Millisecond), r.SlowReopens)
	}
	if r.PingP50 > 0 {
		fmt.Fprintf(w, "- long-lived ping round trip: p50 %v, p99 %v\n", r.PingP50.Round(time.Microsecond), r.PingP99.Round(time.Microsecond))
	}
	for _, e := range r.ErrKinds {
		fmt.Fprintf(w, "- error: %s\n", e)
	}
	fmt.Fprintln(w)
	if len(r.TCP) > 0 {
		fmt.Fprintf(w, "Kernel TCP counters during the trace (/proc/net/netstat and snmp, whole machine): %s.\n\n", strings.Join(r.TCP, ", "))
	}
	pending := 0
	for _, s := range r.Samples {
		if s.Reopening > 0 {
			pending++
		}
	}
	if pending > 0 {
		fmt.Fprintf(w, "%d trace lines were read while a churn step of the long-lived set was still reopening 2 s after it began (the trace waits for a step to end, 2 s at most): their fds and tunnels active may be low by up to twice and once the count of tunnels reopening.\n\n", pending)
	}
	var other []float64
	var proxyC, benchC, soft float64
	for _, s := range r.Samples[min(1, len(r.Samples)):] {
		other = append(other, s.OtherCores)
		proxyC += s.ProxyCores
		benchC += s.BenchCores
		soft += s.SoftirqCores
	}
	if n := float64(len(other)); n > 0 {
		sort.Float64s(other)
		mean := 0.0
		for _, x := range other {
			mean += x
		}
		mean /= n
		fmt.Fprintf(w, "CPU, averaged over the lines after the first: the proxy %.2f cores, the bench's clients and targets %.2f, other load %.2f (%.2f to %.2f per line); %.2f cores were busy before the soak started. Kernel softirq time (network work, mostly the soak's own loopback traffic, charged to whichever process it interrupted) was %.2f cores.",
			proxyC/n, benchC/n, mean, other[0], other[len(other)-1], r.Load0, soft/n)
		if len(r.OtherTop) > 0 {
			fmt.Fprintf(w, " Busiest other processes over the run: %s.", strings.Join(r.OtherTop, ", "))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "Notes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
}

// tcpCounterNames are the kernel TCP counters the report shows when they
// move: listen queue overflows, TIME_WAIT handling, SYN and other
// retransmissions, resets and aborts.
var tcpCounterNames = []string{
	"TcpExt:ListenOverflows", "TcpExt:ListenDrops", "TcpExt:TCPTimeWaitOverflow", "TcpExt:TW",
	"TcpExt:TWRecycled", "TcpExt:PAWSEstab", "TcpExt:TCPSynRetrans", "TcpExt:TCPTimeouts",
	"TcpExt:TCPAbortOnData", "TcpExt:TCPAbortOnClose", "TcpExt:TCPAbortOnMemory", "TcpExt:TCPReqQFullDrop",
	"TcpExt:TCPBacklogDrop", "TcpExt:SyncookiesSent", "TcpExt:TCPChallengeACK",
	"Tcp:ActiveOpens", "Tcp:PassiveOpens", "Tcp:AttemptFails", "Tcp:EstabResets", "Tcp:RetransSegs", "Tcp:OutRsts",
}

// readTCPCounters reads /proc/net/netstat and /proc/net/snmp: pairs of
// lines "Prefix: names..." and "Prefix: values...".
func readTCPCounters() map[string]int64 {
	out := map[string]int64{}
	for _, f := range []string{"/proc/net/netstat", "/proc/net/snmp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		parseProcNetCounters(b, out)
	}
	return out
}

func parseProcNetCounters(b []byte, out map[string]int64) {
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
			continue
		}
		prefix := names[0]
		for j := 1; j < len(names); j++ {
			if v, err := strconv.ParseInt(values[j], 10, 64); err == nil {
				out[prefix+names[j]] = v
			}
		}
	}
}

// tcpDeltas lists the chosen counters that moved between a and b.
func tcpDeltas(a, b map[string]int64) []string {
	var out []string
	for _, k := range tcpCounterNames {
		vb, ok := b[k]
		if !ok {
			continue
		}
		if d := vb - a[k]; d != 0 {
			out = append(out, fmt.Sprintf("%s %+d", k, d))
		}
	}
	return out
}

// machineSoftirq returns the softirq time of all CPUs since boot (the
// seventh field of /proc/stat's first line).
func machineSoftirq() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	n, err := strconv.ParseInt(f[7], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/stat: %q", line)
	}
	return time.Duration(n) * time.Second / clockTicks, nil
}

func softNofile() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
