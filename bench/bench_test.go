package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/bench/baseline"
)

// inProcessBaseline is a subject whose proxy is the baseline served in the
// test's own process, on a fresh listener per run.
func inProcessBaseline(t *testing.T) subject {
	return subject{Name: "baseline", Start: func() (*proxyHandle, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		done := make(chan error, 1)
		go func() { done <- baseline.Serve(ln, baseline.AllowList(targetHost)) }()
		return &proxyHandle{
			Addr: ln.Addr().(*net.TCPAddr).AddrPort(),
			PID:  os.Getpid(),
			Stop: func() []string {
				ln.Close()
				if err := <-done; err != nil {
					t.Errorf("baseline.Serve: %v", err)
				}
				return nil
			},
		}, nil
	}}
}

// TestQuickRun runs every scenario, tiny, against an in-process baseline
// and direct loopback, and checks each figure the table needs is there and
// sane.
func TestQuickRun(t *testing.T) {
	cfg := quickConfig()
	cfg.Duration = 400 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	cfg.Concurrency = 4
	cfg.Tunnels = 300
	cfg.Streams = 2
	cfg.SlowTunnels = 8
	cfg.OpenWorkers = 8
	cfg.Settle = 100 * time.Millisecond
	cfg.SampleEvery = 20 * time.Millisecond
	cfg.Progress = 150 * time.Millisecond // exercise the progress line

	cl, err := newClient(4)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := startTargets(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	var log bytes.Buffer
	rn := newRunner(cfg, cl, tg, &log)
	results := rn.runAll([]subject{inProcessBaseline(t), {Name: "direct"}})

	rp := &report{Config: cfg, Subjects: []string{"baseline", "direct"}, Results: results}
	want := map[string][]string{
		"connrate":   {"conns_per_s", "setup_p50_us", "setup_p99_us", "setup_p999_us", "cpu_us_per_conn"},
		"fanout":     {"tunnels", "rss_per_tunnel_kib", "fds_per_tunnel", "msgs_per_s", "rtt_p50_us", "rtt_p999_us", "cpu_us_per_msg"},
		"throughput": {"gbit_per_s", "cpu_s_per_gb"},
		"slowreader": {"rss_growth_mib", "rss_growth_per_tunnel_kib", "flood_gbit_while_reading"},
	}
	directHas := map[string][]string{
		"connrate":   {"conns_per_s", "setup_p50_us"},
		"fanout":     {"tunnels", "msgs_per_s", "rtt_p50_us"},
		"throughput": {"gbit_per_s"},
	}
	for sc, keys := range want {
		r := rp.find(sc, "baseline")
		if r == nil || r.Skipped != "" {
			t.Fatalf("%s baseline: no result (%+v)", sc, r)
		}
		if r.Errors > 0 {
			t.Errorf("%s baseline: %d client errors: %v", sc, r.Errors, r.ErrorKinds)
		}
		for _, k := range keys {
			v, ok := r.Metrics[k]
			if !ok {
				t.Errorf("%s baseline: no %s in %v", sc, k, r.Metrics)
				continue
			}
			// In process, RSS growth is the whole test's and may be
			// negative after a GC; it need only have been read. All else
			// must be positive.
			if strings.HasPrefix(k, "rss_growth") {
				continue
			}
			if !(v > 0) {
				t.Errorf("%s baseline: %s = %v, want > 0", sc, k, v)
			}
		}
	}
	for sc, keys := range directHas {
		r := rp.find(sc, "direct")
		if r == nil || r.Skipped != "" {
			t.Fatalf("%s direct: no result (%+v)", sc, r)
		}
		for _, k := range keys {
			if v := r.Metrics[k]; !(v > 0) {
				t.Errorf("%s direct: %s = %v, want > 0", sc, k, v)
			}
		}
		if _, ok := r.Metrics["cpu_us_per_conn"]; ok {
			t.Errorf("%s direct: has a proxy CPU figure without a proxy", sc)
		}
	}
	if r := rp.find("slowreader", "direct"); r == nil || r.Skipped == "" {
		t.Errorf("slowreader direct: want skipped (no proxy), got %+v", r)
	}
	if r := rp.find("fanout", "baseline"); r.Metrics["tunnels"] != float64(cfg.Tunnels) {
		t.Errorf("fanout baseline held %v tunnels, want %d", r.Metrics["tunnels"], cfg.Tunnels)
	}
	if !strings.Contains(log.String(), "bench: fanout baseline:") {
		t.Errorf("no progress lines on the log:\n%s", log.String())
	}

	var table bytes.Buffer
	rp.writeTable(&table)
	rp.writeNotes(&table)
	for _, s := range []string{"| scenario | metric | baseline | direct | baseline / direct |", "| connrate | connections/s |", "x |"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	path := t.TempDir() + "/out.json"
	if err := rp.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	stat := "4242 (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 1000000 200 18446744073709551615\n"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; cpu != want {
		t.Errorf("cpu = %v, want %v (250+75 ticks at 100 Hz)", cpu, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("short stat parsed without error")
	}
	rss, threads, err := parseStatus([]byte("Name:\tfastsocks\nThreads:\t7\nVmRSS:\t   12345 kB\n"))
	if err != nil || rss != 12345<<10 || threads != 7 {
		t.Errorf("parseStatus = %d, %d, %v; want %d, 7", rss, threads, err, 12345<<10)
	}
	if _, _, err := parseStatus([]byte("Name:\tzombie\n")); err == nil {
		t.Error("status without VmRSS parsed without error")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.FDs <= 0 || s.Threads <= 0 {
		t.Errorf("readProc(self) = %+v, want positive RSS, fds and threads", s)
	}
	if fdLimit(os.Getpid()) <= 0 {
		t.Error("fdLimit(self) not found in /proc/self/limits")
	}
}

func TestParseListening(t *testing.T) {
	for line, want := range map[string]string{
		`time=2026-01-01T00:00:00Z level=INFO msg="listening on 127.0.0.1:43125" loops=2`: "127.0.0.1:43125",
		`{"time":"x","level":"INFO","msg":"listening on 127.0.0.1:1080","loops":2}`:       "127.0.0.1:1080",
		"baseline: listening on 127.0.0.1:9":                                              "127.0.0.1:9",
		"level=WARN msg=something":                                                        "",
	} {
		a, ok := parseListening(line)
		if got := ""; ok {
			got = a.String()
			if got != want {
				t.Errorf("parseListening(%q) = %s, want %q", line, got, want)
			}
		} else if want != "" {
			t.Errorf("parseListening(%q) found nothing, want %s", line, want)
		}
	}
}

func TestListeningAddrFromProc(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got, ok := listeningAddr(os.Getpid())
	if !ok {
		t.Fatal("no listening socket found in /proc for this process")
	}
	// Other tests' listeners may be found first; any loopback listener of
	// ours will do, but when this is the only one it must be it.
	if !got.Addr().IsLoopback() || got.Port() == 0 {
		t.Errorf("listeningAddr = %v", got)
	}
}

func TestHistQuantiles(t *testing.T) {
	h := new(hist)
	for i := 1; i <= 1000; i++ {
		h.Record(i, time.Duration(i)*time.Microsecond)
	}
	if h.Count() != 1000 {
		t.Fatalf("Count = %d", h.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.04 || d > 0.04 {
			t.Errorf("Quantile(%v) = %v, want %v within 4%%", c.q, got, c.want)
		}
	}
	if new(hist).Quantile(0.5) != 0 {
		t.Error("empty histogram quantile not 0")
	}
}

func TestTargetsLineRoundTrip(t *testing.T) {
	tg := &targets{Echo: []uint16{1, 2}, Duplex: []uint16{3, 65535}}
	echo, duplex, err := parseTargetsLine(tg.line() + "\n")
	if err != nil || len(echo) != 2 || echo[1] != 2 || len(duplex) != 2 || duplex[1] != 65535 {
		t.Errorf("parseTargetsLine(%q) = %v %v %v", tg.line(), echo, duplex, err)
	}
	if _, _, err := parseTargetsLine("targets echo="); err == nil {
		t.Error("empty port list parsed")
	}
}

func TestErrKind(t *testing.T) {
	for err, want := range map[error]string{
		&stepError{"connect", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}: "connect: ECONNREFUSED",
		&stepError{"reply", io.ErrUnexpectedEOF}:    "reply: EOF",
		&stepError{"reply", errors.New("REP 0x02")}: "reply: REP 0x02",
	} {
		if got := errKind(err); got != want {
			t.Errorf("errKind(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"--quick", "--tunnels", "77", "--scenarios", "fanout,connrate"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Tunnels != 77 || o.cfg.Duration != quickConfig().Duration || len(o.cfg.Scenarios) != 2 {
		t.Errorf("--quick with --tunnels 77: %+v", o.cfg)
	}
	for _, args := range [][]string{
		{"--scenarios", "nope"},
		{"--target", "127.0.0.1:1080"},
		{"--pid", "1"},
		{"--tunnels", "0"},
	} {
		if _, err := parseFlags(args, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// childEnv makes the test binary act as the bench binary's hidden modes
// (--serve-baseline, --serve-targets) when it is started as a subprocess.
const childEnv = "FASTSOCKS_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestSubprocesses runs fanout and slowreader against a baseline and
// targets in their own processes, as `go run ./bench` does, so the proxy's
// figures are its own.
func TestSubprocesses(t *testing.T) {
	t.Setenv(childEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := startTargetsProcess(self, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	if tg.PID == os.Getpid() {
		t.Fatal("targets run in the test's process")
	}
	var log bytes.Buffer
	sub := subject{Name: "baseline", Start: func() (*proxyHandle, error) {
		return startProcess("baseline", self, []string{"--serve-baseline", "127.0.0.1:0", "--allow", targetHost}, &log)
	}}
	cfg := quickConfig()
	cfg.Scenarios = []string{"fanout", "slowreader"}
	cfg.Duration = 300 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	cfg.Tunnels = 400
	cfg.SlowTunnels = 8
	cfg.Settle = 100 * time.Millisecond
	cfg.Progress = 0
	cl, err := newClient(4)
	if err != nil {
		t.Fatal(err)
	}
	rn := newRunner(cfg, cl, tg, &log)
	rp := &report{Config: cfg, Subjects: []string{"baseline"}, Results: rn.runAll([]subject{sub})}
	r := rp.find("fanout", "baseline")
	if r == nil || r.Skipped != "" || r.Errors > 0 {
		t.Fatalf("fanout: %+v\nlog:\n%s", r, log.String())
	}
	// Two sockets per tunnel at least (Go's splice adds a pipe per
	// blocked direction); RSS grows by kilobytes per goroutine pair.
	if v := r.Metrics["fds_per_tunnel"]; v < 2 || v > 8 {
		t.Errorf("baseline fds per tunnel = %v, want 2..8", v)
	}
	if v := r.Metrics["rss_per_tunnel_kib"]; !(v > 1) {
		t.Errorf("baseline RSS per tunnel = %v KiB, want more than 1", v)
	}
	if v := r.Metrics["proxy_cores"]; !(v > 0) {
		t.Errorf("baseline proxy_cores = %v, want > 0", v)
	}
	s := rp.find("slowreader", "baseline")
	if s == nil || s.Skipped != "" {
		t.Fatalf("slowreader: %+v", s)
	}
	if _, ok := s.Metrics["rss_growth_mib"]; !ok {
		t.Errorf("slowreader: no RSS growth in %v", s.Metrics)
	}
	if v := s.Metrics["flood_gbit_while_reading"]; !(v > 0) {
		t.Errorf("slowreader: flood rate %v, want > 0", v)
	}
}
