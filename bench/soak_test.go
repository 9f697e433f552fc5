package main

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSoakShort runs the whole soak, tiny and short, against a fastsocks
// built from the tree: the trace must have its lines with every figure
// read, the verdict must be computed, and the load must see no errors (each
// refusal answered as expected, each echo right).
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fastsocks and runs for about 10s")
	}
	t.Setenv(childEnv, "1") // the targets subprocess is this test binary
	cfg := defaultSoakConfig()
	cfg.Duration = 8 * time.Second
	cfg.Interval = time.Second
	cfg.Tunnels = 50
	cfg.Churn = 0.2
	cfg.ChurnEvery = 500 * time.Millisecond
	cfg.PingEvery = 500 * time.Millisecond
	cfg.Clients = 2
	cfg.Rate = 400
	cfg.Sources = 4
	cfg.TargetPorts = 2
	cfg.RefuseEvery = 10 * time.Millisecond
	cfg.DrainWait = 10 * time.Second
	cfg.Report = t.TempDir() + "/soak.md"
	cfg.commandLine = "go test -run TestSoakShort ./bench"
	var out, log bytes.Buffer
	t0 := time.Now()
	res, err := runSoak(cfg, &out, &log)
	if err != nil {
		t.Fatalf("runSoak: %v\nstderr:\n%s", err, log.String())
	}
	t.Logf("soak took %v\n%s", time.Since(t0).Round(time.Millisecond), out.String())

	if n := len(res.Samples); n < 8 {
		t.Errorf("%d trace lines, want at least 8 (one a second for 8s, and one at the start)", n)
	}
	for _, s := range res.Samples {
		if s.RSS <= 0 || s.FDs <= 0 || s.Goroutines <= 0 || s.Tunnels < 0 || s.Heap <= 0 || s.ScrapeErr != "" {
			t.Errorf("trace line not fully read: %+v", s)
		}
		if s.Tunnels < cfg.Tunnels/2 {
			t.Errorf("at %v only %d tunnels active, want about %d", s.Elapsed, s.Tunnels, cfg.Tunnels)
		}
	}
	if last := res.Samples[len(res.Samples)-1]; last.Ops <= 0 || last.ProxyCores <= 0 {
		t.Errorf("last line: %d ops, proxy %.2f cores; want both positive", last.Ops, last.ProxyCores)
	}
	v := res.Verdict
	if v.NoVerdict != "" || v.Summary == "" || len(v.Checks) != 3 {
		t.Fatalf("verdict not computed: %+v", v)
	}
	for _, c := range v.Checks {
		if c.Samples < 2 || !(c.First > 0) || !(c.Last > 0) {
			t.Errorf("check %s: %+v", c.Name, c)
		}
	}
	if !v.Drain.Checked {
		t.Errorf("drain not checked: %+v", v.Drain)
	}
	if v.Errors > 0 {
		t.Errorf("%d client errors: %v", v.Errors, res.ErrKinds)
	}
	for i := range numOps {
		if res.OpsByKind[opNames[i]] == 0 {
			t.Errorf("no %s", opNames[i])
		}
	}
	for _, s := range []string{"## Soak: ", "| elapsed | phase | RSS (MiB) |", "| proxy RSS |", "| proxy fds |", "| proxy goroutines |", "After the load stopped:"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if b, err := os.ReadFile(cfg.Report); err != nil || !bytes.Contains(b, []byte("| elapsed |")) {
		t.Errorf("--report file: %v, %d bytes", err, len(b))
	}
}

func TestParseMetricsText(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 12
fastsocks_tunnels_active 2003
process_resident_memory_bytes 3.145728e+07
fastsocks_requests_total{tenant="default",verdict="allow"} 17
weird{a="x}y",b="q\"}"} 4
dial_seconds_bucket{le="+Inf"} 9 1700000000000
broken{a="x" 3
nonumber abc
`
	m := parseMetricsText([]byte(text))
	for k, want := range map[string]float64{
		"go_goroutines":                 12,
		"fastsocks_tunnels_active":      2003,
		"process_resident_memory_bytes": 31457280,
		`fastsocks_requests_total{tenant="default",verdict="allow"}`: 17,
		`weird{a="x}y",b="q\"}"}`:                                    4,
		`dial_seconds_bucket{le="+Inf"}`:                             9,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", k, got, ok, want)
		}
	}
	if len(m) != 6 {
		t.Errorf("parsed %d series, want 6: %v", len(m), m)
	}
}

// trace makes a trace of n lines, one every step, with RSS, fds and
// goroutines given by functions of the line's index.
func trace(n int, step time.Duration, rss func(i int) float64, fds, gor func(i int) int) []soakSample {
	var out []soakSample
	for i := 0; i < n; i++ {
		out = append(out, soakSample{Elapsed: time.Duration(i) * step, RSS: int64(rss(i) * (1 << 20)), FDs: fds(i), Goroutines: gor(i), Tunnels: 2000})
	}
	return out
}

func TestComputeVerdict(t *testing.T) {
	const d = 10 * time.Minute
	flatRSS := func(i int) float64 { return 30 + float64(i%3)*0.5 } // GC sawtooth
	flatFDs := func(i int) int { return 4018 + i%5 }
	flatG := func(i int) int { return 10 + i%3 }
	v := computeVerdict(trace(61, 10*time.Second, flatRSS, flatFDs, flatG), d, 16)
	if v.NoVerdict != "" || !v.Flat || v.Warmup != 2*time.Minute || v.PerThird != 16 {
		t.Fatalf("flat trace: %+v", v)
	}
	if v.FirstFrom != 2*time.Minute || v.LastTo != 10*time.Minute {
		t.Errorf("thirds: first from %v, last to %v", v.FirstFrom, v.LastTo)
	}
	v.ErrorsOK = true
	v.finish()
	if !v.Pass || v.Summary != "flat" {
		t.Errorf("flat trace: pass %v, summary %q", v.Pass, v.Summary)
	}

	// RSS growing 0.1 MiB per line: about 4.8 MiB between the thirds.
	v = computeVerdict(trace(61, 10*time.Second, func(i int) float64 { return 30 + 0.1*float64(i) }, flatFDs, flatG), d, 16)
	if v.Flat || v.Checks[0].OK || !v.Checks[1].OK || !v.Checks[2].OK {
		t.Errorf("growing RSS: %+v", v.Checks)
	}
	v.ErrorsOK = true
	v.finish()
	if v.Pass || !strings.HasPrefix(v.Summary, "GROWING: proxy RSS") {
		t.Errorf("growing RSS: summary %q", v.Summary)
	}

	// One fd leaked per line: 32 between the thirds, under 1% of 4018 (40).
	v = computeVerdict(trace(61, 10*time.Second, flatRSS, func(i int) int { return 4018 + i }, flatG), d, 16)
	if !v.Checks[1].OK {
		t.Errorf("fds +32 on 4018 should be within 1%%: %+v", v.Checks[1])
	}
	v = computeVerdict(trace(61, 10*time.Second, flatRSS, func(i int) int { return 4018 + 2*i }, flatG), d, 16)
	if v.Checks[1].OK {
		t.Errorf("fds +64 on 4018 should be growth: %+v", v.Checks[1])
	}
	// Goroutines: 11 more is growth, 10 is not.
	v = computeVerdict(trace(61, 10*time.Second, flatRSS, flatFDs, func(i int) int {
		if i >= 45 {
			return 22
		}
		return 11
	}), d, 16)
	if v.Checks[2].OK {
		t.Errorf("goroutines 11 -> 22 should be growth: %+v", v.Checks[2])
	}
	// A failed scrape leaves goroutines out, not zero.
	tr := trace(61, 10*time.Second, flatRSS, flatFDs, flatG)
	tr[20].Goroutines = -1
	if v = computeVerdict(tr, d, 16); !v.Checks[2].OK || v.Checks[2].Samples != 31 {
		t.Errorf("a missing goroutine figure: %+v", v.Checks[2])
	}

	// Errors and a proxy that did not drain fail a flat run.
	v = computeVerdict(trace(61, 10*time.Second, flatRSS, flatFDs, flatG), d, 16)
	v.Ops, v.Errors, v.ErrorsOK = 1000, 5, false
	v.Drain = soakDrain{Checked: true, Tunnels: 3, IdleFDs: 18, FDs: 24}
	v.finish()
	if v.Pass || !strings.HasPrefix(v.Summary, "FAILED: 5 client errors") || !strings.Contains(v.Summary, "3 tunnels") {
		t.Errorf("errors and no drain: %q", v.Summary)
	}

	// Too short to judge.
	v = computeVerdict(trace(3, 10*time.Second, flatRSS, flatFDs, flatG), 20*time.Second, 16)
	if v.NoVerdict == "" {
		t.Errorf("3 lines over 20s judged: %+v", v)
	}
	v.ErrorsOK = true
	v.finish()
	if v.Pass {
		t.Error("a run without a verdict passed")
	}
}

func TestSoakWarmup(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		10 * time.Minute:  2 * time.Minute,
		time.Hour:         12 * time.Minute,
		100 * time.Second: 30 * time.Second,
		40 * time.Second:  20 * time.Second,
		8 * time.Second:   4 * time.Second,
	} {
		if got := soakWarmup(d); got != want {
			t.Errorf("soakWarmup(%v) = %v, want %v", d, got, want)
		}
	}
}

func TestParseGoroutineProfile(t *testing.T) {
	prof := `goroutine profile: total 5
2 @ 0x4cdd19 0x790f2f 0x7fb7c8 0x814967 0x493681
#	0x4cdd18	syscall.Syscall6+0x38						/usr/local/go/src/syscall/syscall_linux.go:96
#	0x790f2e	golang.org/x/sys/unix.EpollWait+0x4e				/x/zsyscall_linux.go:710
#	0x7fb7c7	github.com/panjf2000/gnet/v2/pkg/netpoll.(*Poller).Polling+0xa7	/x/poller_epoll_default.go:121
#	0x814966	github.com/fastsocks/fastsocks/engine.(*loop).run+0xa6		/work/main/engine/loop_linux.go:184

1 @ 0x421069 0x48df78 0x54a913 0x493681
#	0x48df77	os/signal.signal_recv+0x97	/usr/local/go/src/runtime/sigqueue.go:152
#	0x54a912	os/signal.loop+0x12		/usr/local/go/src/os/signal/signal_unix.go:23

1 @ 0x493681

1 @ 0x48bc8e 0x41aaee
#	0x48bc8d	runtime.gopark+0xce	/usr/local/go/src/runtime/proc.go:435
#	0x41aaed	github.com/fastsocks/fastsocks/dial.(*Pool).worker+0x8d	/work/main/dial/dial.go:300
`
	m := parseGoroutineProfile([]byte(prof))
	want := map[string]int{
		"github.com/panjf2000/gnet/v2/pkg/netpoll.(*Poller).Polling < github.com/fastsocks/fastsocks/engine.(*loop).run": 2,
		"os/signal.signal_recv < os/signal.loop":             1,
		"(no frames outside the runtime)":                    1,
		"github.com/fastsocks/fastsocks/dial.(*Pool).worker": 1,
	}
	if len(m) != len(want) {
		t.Errorf("got %v", m)
	}
	for k, n := range want {
		if m[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, m[k], n, m)
		}
	}
	d := stackDiff(map[string]int{"a": 1, "b": 2}, map[string]int{"a": 1, "b": 3, "c": 1})
	if strings.Join(d, ";") != "+1 in b;+1 in c" {
		t.Errorf("stackDiff = %q", d)
	}
}

func TestReadHTTPHead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		b.Write([]byte("HTTP/1.1 403 Forbidden\r\nX-Proxy-Error: blocked-by-allowlist\r\n"))
		b.Write([]byte("Connection: close\r\n\r\nbody"))
		b.Close()
	}()
	code, head, rest, err := readHTTPHead(a)
	if err != nil || code != 403 || !strings.Contains(head, "X-Proxy-Error: blocked-by-allowlist") || string(rest) != "body" {
		t.Errorf("readHTTPHead = %d, %q, %q, %v", code, head, rest, err)
	}
	a2, b2 := net.Pipe()
	defer a2.Close()
	go func() { b2.Write([]byte("HTTP/1.1 200 Conn")); b2.Close() }()
	if _, _, _, err := readHTTPHead(a2); err == nil {
		t.Error("a head cut by EOF was read without error")
	}
}

func TestParseSoakFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseSoakFlags(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 10*time.Minute || c.Interval != 10*time.Second || c.Tunnels != 2000 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = parseSoakFlags([]string{"--duration", "8s", "--interval", "2s", "--tunnels", "50", "--churn", "0.1", "--clients", "3"}, &stderr)
	if err != nil || c.Duration != 8*time.Second || c.Tunnels != 50 || c.Churn != 0.1 || c.Clients != 3 {
		t.Errorf("flags: %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"--interval", "20m"},
		{"--churn", "2"},
		{"--tunnels", "-1"},
		{"extra"},
	} {
		if _, err := parseSoakFlags(args, &stderr); err == nil {
			t.Errorf("parseSoakFlags(%q) accepted", args)
		}
	}
	if code := benchMain([]string{"soak", "--churn", "2"}, &stderr, &stderr); code != 2 {
		t.Errorf("bench soak with a bad flag: exit %d, want 2", code)
	}
}

func TestTCPCounters(t *testing.T) {
	m := map[string]int64{}
	parseProcNetCounters([]byte("TcpExt: SyncookiesSent ListenOverflows TW\nTcpExt: 0 3 10\nIpExt: InNoRoutes\nIpExt: 1\n"), m)
	parseProcNetCounters([]byte("Tcp: RtoAlgorithm AttemptFails\nTcp: 1 7\n"), m)
	if m["TcpExt:ListenOverflows"] != 3 || m["TcpExt:TW"] != 10 || m["Tcp:AttemptFails"] != 7 || m["IpExt:InNoRoutes"] != 1 {
		t.Fatalf("parsed %v", m)
	}
	b := map[string]int64{"TcpExt:ListenOverflows": 5, "TcpExt:TW": 10, "Tcp:AttemptFails": 9}
	if got := strings.Join(tcpDeltas(m, b), ", "); got != "TcpExt:ListenOverflows +2, Tcp:AttemptFails +2" {
		t.Errorf("tcpDeltas = %q", got)
	}
	if len(readTCPCounters()) == 0 {
		t.Error("no counters read from /proc/net")
	}
}
