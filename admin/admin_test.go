package admin

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fastsocks/fastsocks/engine"
	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// quiet is a logger that drops everything.
var quiet = slog.New(slog.DiscardHandler)

// fixedSource returns the same Stats at every scrape.
type fixedSource struct{ st engine.Stats }

func (f fixedSource) Stats() engine.Stats { return f.st }

// startServer starts an admin server on 127.0.0.1:0 and closes it at cleanup.
func startServer(t *testing.T, src Source) *Server {
	t.Helper()
	s, err := Start(Config{Addr: "127.0.0.1:0", Source: src, Logger: quiet})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var client = &http.Client{Timeout: 10 * time.Second}

// get fetches path from s and returns the status and body.
func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + s.Addr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, s, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body:\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// seriesKey writes name{a="x",b="y"} with the labels sorted by name, as an
// operator would write the series in a query.
func seriesKey(name string, labels []*dto.LabelPair, extra ...string) string {
	var kv []string
	for _, l := range labels {
		kv = append(kv, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		kv = append(kv, extra[i]+"="+strconv.Quote(extra[i+1]))
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// series flattens the fastsocks_ families (but the fd gauges, whose values
// are the process's own) to series key -> value. A histogram gives its
// _bucket (one per finite le), _count and _sum series; its +Inf bucket is
// checked against _count here. It also returns each family's type.
func series(t *testing.T, mfs map[string]*dto.MetricFamily) (map[string]float64, map[string]dto.MetricType) {
	t.Helper()
	out := map[string]float64{}
	types := map[string]dto.MetricType{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "fastsocks_") || name == "fastsocks_open_fds" || name == "fastsocks_max_fds" {
			continue
		}
		types[name] = mf.GetType()
		for _, m := range mf.GetMetric() {
			add := func(key string, v float64) {
				if _, dup := out[key]; dup {
					t.Errorf("series %s appears twice", key)
				}
				out[key] = v
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(seriesKey(name, m.GetLabel()), m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(seriesKey(name, m.GetLabel()), m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						if b.GetCumulativeCount() != h.GetSampleCount() {
							t.Errorf("%s: +Inf bucket %d, count %d", name, b.GetCumulativeCount(), h.GetSampleCount())
						}
						continue
					}
					le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
					add(seriesKey(name+"_bucket", m.GetLabel(), "le", le), float64(b.GetCumulativeCount()))
				}
				add(seriesKey(name+"_count", m.GetLabel()), float64(h.GetSampleCount()))
				add(seriesKey(name+"_sum", m.GetLabel()), h.GetSampleSum())
			default:
				t.Errorf("%s: unexpected type %v", name, mf.GetType())
			}
		}
	}
	return out, types
}

// compareSeries reports every series missing, extra or different.
func compareSeries(t *testing.T, got, want map[string]float64) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, inGot := got[k]
		w, inWant := want[k]
		switch {
		case !inGot:
			t.Errorf("missing series %s (want %v)", k, w)
		case !inWant:
			t.Errorf("unexpected series %s = %v", k, g)
		case g != w:
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
}

// wantTypes is the type of every fastsocks_ family but the fd gauges.
var wantTypes = map[string]dto.MetricType{
	"fastsocks_connections_active":         dto.MetricType_GAUGE,
	"fastsocks_handshakes_active":          dto.MetricType_GAUGE,
	"fastsocks_tunnels_active":             dto.MetricType_GAUGE,
	"fastsocks_tenant_tunnels_active":      dto.MetricType_GAUGE,
	"fastsocks_connections_accepted_total": dto.MetricType_COUNTER,
	"fastsocks_requests_total":             dto.MetricType_COUNTER,
	"fastsocks_requests_refused_total":     dto.MetricType_COUNTER,
	"fastsocks_dial_errors_total":          dto.MetricType_COUNTER,
	"fastsocks_dial_duration_seconds":      dto.MetricType_HISTOGRAM,
	"fastsocks_dial_queue_depth":           dto.MetricType_GAUGE,
	"fastsocks_bytes_total":                dto.MetricType_COUNTER,
	"fastsocks_tenant_bytes_total":         dto.MetricType_COUNTER,
}

func TestMetricsFromStats(t *testing.T) {
	// Cumulative counts for engine.DialBuckets (13 bounds), 10 dials in all.
	cum := []uint64{0, 1, 1, 3, 5, 6, 8, 9, 9, 9, 10, 10, 10}
	buckets := map[float64]uint64{}
	for i, b := range engine.DialBuckets {
		buckets[b] = cum[i]
	}
	st := engine.Stats{
		Active:     7,
		Handshakes: 2,
		Tunnels:    5,
		Accepted:   1234,
		Refused:    15,
		BytesUp:    1<<40 + 3, // exact in a float64
		BytesDown:  987654321,
		DialErrors: map[string]uint64{"refused": 4, "timeout": 2, "no-such-host": 1},
		DialLatency: engine.Histogram{
			Count:   10,
			Sum:     1.75,
			Buckets: buckets,
		},
		DialQueue: 3,
		Tenants: []engine.TenantStats{
			{
				Name:     "", // refused before a credentials listener knew the tenant
				Requests: map[string]uint64{"allow": 0, "deny": 6, "error": 0},
				Refused:  map[string]uint64{"no-credentials": 4, "bad-credentials": 2},
			},
			{
				Name:      "alpha",
				Tunnels:   3,
				Requests:  map[string]uint64{"allow": 10, "deny": 2, "error": 5},
				Refused:   map[string]uint64{"blocked-by-allowlist": 2, "dial-refused": 4, "dial-timeout": 1},
				BytesUp:   1<<40 + 1,
				BytesDown: 987654000,
			},
			{
				Name:      "beta",
				Tunnels:   2,
				Requests:  map[string]uint64{"allow": 7}, // deny and error missing: exported as 0
				Refused:   map[string]uint64{"tenant-tunnel-limit": 0},
				BytesUp:   2,
				BytesDown: 321,
			},
		},
	}
	s := startServer(t, fixedSource{st})
	mfs := scrape(t, s)

	want := map[string]float64{
		`fastsocks_connections_active{}`:          7,
		`fastsocks_handshakes_active{}`:           2,
		`fastsocks_tunnels_active{}`:              5,
		`fastsocks_connections_accepted_total{}`:  1234,
		`fastsocks_dial_queue_depth{}`:            3,
		`fastsocks_bytes_total{direction="up"}`:   1<<40 + 3,
		`fastsocks_bytes_total{direction="down"}`: 987654321,

		`fastsocks_dial_errors_total{kind="refused"}`:      4,
		`fastsocks_dial_errors_total{kind="timeout"}`:      2,
		`fastsocks_dial_errors_total{kind="no-such-host"}`: 1,

		`fastsocks_dial_duration_seconds_bucket{le="0.001"}`:  0,
		`fastsocks_dial_duration_seconds_bucket{le="0.0025"}`: 1,
		`fastsocks_dial_duration_seconds_bucket{le="0.005"}`:  1,
		`fastsocks_dial_duration_seconds_bucket{le="0.01"}`:   3,
		`fastsocks_dial_duration_seconds_bucket{le="0.025"}`:  5,
		`fastsocks_dial_duration_seconds_bucket{le="0.05"}`:   6,
		`fastsocks_dial_duration_seconds_bucket{le="0.1"}`:    8,
		`fastsocks_dial_duration_seconds_bucket{le="0.25"}`:   9,
		`fastsocks_dial_duration_seconds_bucket{le="0.5"}`:    9,
		`fastsocks_dial_duration_seconds_bucket{le="1"}`:      9,
		`fastsocks_dial_duration_seconds_bucket{le="2.5"}`:    10,
		`fastsocks_dial_duration_seconds_bucket{le="5"}`:      10,
		`fastsocks_dial_duration_seconds_bucket{le="10"}`:     10,
		`fastsocks_dial_duration_seconds_count{}`:             10,
		`fastsocks_dial_duration_seconds_sum{}`:               1.75,

		`fastsocks_tenant_tunnels_active{tenant=""}`:      0,
		`fastsocks_tenant_tunnels_active{tenant="alpha"}`: 3,
		`fastsocks_tenant_tunnels_active{tenant="beta"}`:  2,

		`fastsocks_requests_total{tenant="",verdict="allow"}`:      0,
		`fastsocks_requests_total{tenant="",verdict="deny"}`:       6,
		`fastsocks_requests_total{tenant="",verdict="error"}`:      0,
		`fastsocks_requests_total{tenant="alpha",verdict="allow"}`: 10,
		`fastsocks_requests_total{tenant="alpha",verdict="deny"}`:  2,
		`fastsocks_requests_total{tenant="alpha",verdict="error"}`: 5,
		`fastsocks_requests_total{tenant="beta",verdict="allow"}`:  7,
		`fastsocks_requests_total{tenant="beta",verdict="deny"}`:   0,
		`fastsocks_requests_total{tenant="beta",verdict="error"}`:  0,

		`fastsocks_requests_refused_total{reason="no-credentials",tenant=""}`:            4,
		`fastsocks_requests_refused_total{reason="bad-credentials",tenant=""}`:           2,
		`fastsocks_requests_refused_total{reason="blocked-by-allowlist",tenant="alpha"}`: 2,
		`fastsocks_requests_refused_total{reason="dial-refused",tenant="alpha"}`:         4,
		`fastsocks_requests_refused_total{reason="dial-timeout",tenant="alpha"}`:         1,
		`fastsocks_requests_refused_total{reason="tenant-tunnel-limit",tenant="beta"}`:   0,

		`fastsocks_tenant_bytes_total{direction="up",tenant=""}`:        0,
		`fastsocks_tenant_bytes_total{direction="down",tenant=""}`:      0,
		`fastsocks_tenant_bytes_total{direction="up",tenant="alpha"}`:   1<<40 + 1,
		`fastsocks_tenant_bytes_total{direction="down",tenant="alpha"}`: 987654000,
		`fastsocks_tenant_bytes_total{direction="up",tenant="beta"}`:    2,
		`fastsocks_tenant_bytes_total{direction="down",tenant="beta"}`:  321,
	}
	got, types := series(t, mfs)
	compareSeries(t, got, want)
	for name, typ := range wantTypes {
		if types[name] != typ {
			t.Errorf("%s: type %v, want %v", name, types[name], typ)
		}
	}

	// Every family says what it counts; those labelled by tenant say what
	// tenant="" is.
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "fastsocks_") {
			continue
		}
		if len(mf.GetHelp()) < 40 {
			t.Errorf("%s: HELP too short: %q", name, mf.GetHelp())
		}
		if strings.Contains(name, "tenant") || name == "fastsocks_requests_total" || name == "fastsocks_requests_refused_total" {
			if !strings.Contains(mf.GetHelp(), `tenant=""`) {
				t.Errorf("%s: HELP does not explain tenant=\"\": %q", name, mf.GetHelp())
			}
		}
	}

	// The fd gauges are the process's own.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got := gaugeOf(t, mfs, "fastsocks_max_fds"); got != float64(lim.Cur) {
		t.Errorf("fastsocks_max_fds = %v, want RLIMIT_NOFILE soft limit %d", got, lim.Cur)
	}
	open := gaugeOf(t, mfs, "fastsocks_open_fds")
	if proc := gaugeOf(t, mfs, "process_open_fds"); open < 3 || math.Abs(open-proc) > 4 {
		t.Errorf("fastsocks_open_fds = %v, process_open_fds = %v: want them (nearly) equal and at least 3", open, proc)
	}

	// The Go and process collectors are on the same registry.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_max_fds"} {
		if mfs[name] == nil {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

func gaugeOf(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil || len(mf.GetMetric()) != 1 || mf.GetType() != dto.MetricType_GAUGE {
		t.Fatalf("%s: want one gauge, got %v", name, mf)
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// A Stats with nothing in it (no tenants, nil maps) scrapes cleanly.
func TestMetricsZeroStats(t *testing.T) {
	s := startServer(t, fixedSource{})
	got, _ := series(t, scrape(t, s))
	if v, ok := got[`fastsocks_connections_accepted_total{}`]; !ok || v != 0 {
		t.Errorf("accepted = %v (present %v), want 0", v, ok)
	}
	for _, key := range []string{`fastsocks_dial_duration_seconds_count{}`, `fastsocks_dial_duration_seconds_bucket{le="0.001"}`, `fastsocks_dial_duration_seconds_bucket{le="10"}`} {
		if v, ok := got[key]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", key, v, ok)
		}
	}
}

// A tenant name that is not valid UTF-8 cannot be a label value: the scrape
// still answers (the collector must not panic) and the other series are
// there.
func TestMetricsBadTenantName(t *testing.T) {
	s := startServer(t, fixedSource{engine.Stats{
		Accepted: 9,
		Tenants:  []engine.TenantStats{{Name: "bad\xff"}, {Name: "good", BytesUp: 5}},
	}})
	code, body := get(t, s, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200 (ContinueOnError)", code)
	}
	for _, want := range []string{"fastsocks_connections_accepted_total 9", `fastsocks_tenant_bytes_total{direction="up",tenant="good"} 5`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// targetResult is what the test target saw on one connection.
type targetResult struct {
	up  int
	err error
}

// startTarget is the tunnels' target on 127.0.0.1:0. On each connection it
// reads the client's bytes until EOF, then answers with down[up] bytes and
// closes, and reports what it read.
func startTarget(t *testing.T, down map[int]int) (port uint16, results <-chan targetResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res := make(chan targetResult, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				n, err := io.Copy(io.Discard, c)
				if err == nil {
					d, ok := down[int(n)]
					if !ok {
						err = fmt.Errorf("target: got %d bytes, not a planned size", n)
					} else {
						_, err = c.Write(bytes.Repeat([]byte{'d'}, d))
					}
				}
				res <- targetResult{up: int(n), err: err}
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port), res
}

// socksConnect sends a pipelined greeting (no auth) and CONNECT request for
// host:port and returns the REP of the reply, reading no byte past it.
func socksConnect(t *testing.T, proxy, host string, port uint16) (net.Conn, socks5.ReplyCode) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte{0x05, 0x01, 0x00} // VER 5, NMETHODS 1, NO AUTH
	msg = socks5.AppendRequest(msg, socks5.CmdConnect, host, port)
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write request: %v", err)
	}
	var method [2]byte
	if _, err := io.ReadFull(c, method[:]); err != nil {
		t.Fatalf("read method reply: %v", err)
	}
	if method != [2]byte{0x05, 0x00} {
		t.Fatalf("method reply % x, want 05 00", method)
	}
	var reply []byte
	for {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("read connect reply (have % x): %v", reply, err)
		}
		reply = append(reply, b[0])
		rep, _, n, err := socks5.ParseReply(reply)
		if err == socks5.ErrShort {
			continue
		}
		if err != nil || n != len(reply) {
			t.Fatalf("connect reply % x: n %d, err %v", reply, n, err)
		}
		return c, rep
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricsMatchTraffic runs known traffic through a real engine and
// checks the scraped counters against it exactly.
func TestMetricsMatchTraffic(t *testing.T) {
	// Up and down sizes differ per tunnel and between directions, so a
	// swapped or dropped direction shows. 70000 and 150000 pass the
	// engine's 64 KiB read buffer.
	plan := []struct{ up, down int }{{1000, 2000}, {70000, 3}, {5, 150000}}
	down := map[int]int{}
	var wantUp, wantDown int
	for _, p := range plan {
		down[p.up] = p.down
		wantUp += p.up
		wantDown += p.down
	}
	port, results := startTarget(t, down)

	e, err := engine.Start(engine.Config{
		Listen: []string{"127.0.0.1:0"},
		Policy: policy.MustNew([]string{"localhost"}, nil),
		// The target is on loopback, which the resolved-address guard
		// refuses unless opened.
		AllowPrivateDest: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:           quiet,
	})
	if err != nil {
		t.Fatalf("engine.Start: %v", err)
	}
	t.Cleanup(e.Close)
	proxy := e.Addrs()[0].String()
	s := startServer(t, e)

	// 3 tunnels: allowed, relayed both ways, closed.
	for _, p := range plan {
		c, rep := socksConnect(t, proxy, "localhost", port)
		if rep != socks5.RepSucceeded {
			t.Fatalf("CONNECT localhost:%d: REP %v, want succeeded", port, rep)
		}
		if _, err := c.Write(bytes.Repeat([]byte{'u'}, p.up)); err != nil {
			t.Fatalf("write %d bytes up: %v", p.up, err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || len(got) != p.down {
			t.Fatalf("read down: %d bytes, err %v; want %d", len(got), err, p.down)
		}
		c.Close()
		r := <-results
		if r.err != nil || r.up != p.up {
			t.Fatalf("target got %d bytes (err %v), want %d", r.up, r.err, p.up)
		}
	}
	// 2 requests for a name not in the allow list.
	for range 2 {
		c, rep := socksConnect(t, proxy, "blocked.example", 443)
		if rep != socks5.RepNotAllowed {
			t.Fatalf("CONNECT blocked.example: REP %v, want not allowed", rep)
		}
		c.Close()
	}
	// 1 request to a closed port on localhost.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := uint16(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	c, rep := socksConnect(t, proxy, "localhost", closedPort)
	if rep != socks5.RepConnectionRefused {
		t.Fatalf("CONNECT localhost:%d (closed): REP %v, want connection refused", closedPort, rep)
	}
	c.Close()

	waitFor(t, "every connection closed", func() bool {
		st := e.Stats()
		return st.Active == 0 && st.Handshakes == 0 && st.Tunnels == 0
	})
	if st := e.Stats(); st.Refused != 3 {
		// Not exported as a metric; logged for whoever reads the engine's counters.
		t.Logf("note: engine Stats.Refused = %d after 3 refused requests", st.Refused)
	}

	mfs := scrape(t, s)
	got, _ := series(t, mfs)
	want := map[string]float64{
		`fastsocks_connections_active{}`:          0,
		`fastsocks_handshakes_active{}`:           0,
		`fastsocks_tunnels_active{}`:              0,
		`fastsocks_connections_accepted_total{}`:  6,
		`fastsocks_dial_queue_depth{}`:            0,
		`fastsocks_bytes_total{direction="up"}`:   float64(wantUp),
		`fastsocks_bytes_total{direction="down"}`: float64(wantDown),

		`fastsocks_tenant_tunnels_active{tenant="default"}`:                                0,
		`fastsocks_requests_total{tenant="default",verdict="allow"}`:                       3,
		`fastsocks_requests_total{tenant="default",verdict="deny"}`:                        2,
		`fastsocks_requests_total{tenant="default",verdict="error"}`:                       1,
		`fastsocks_requests_refused_total{reason="blocked-by-allowlist",tenant="default"}`: 2,
		`fastsocks_requests_refused_total{reason="dial-refused",tenant="default"}`:         1,
		`fastsocks_dial_errors_total{kind="refused"}`:                                      1,
		`fastsocks_tenant_bytes_total{direction="up",tenant="default"}`:                    float64(wantUp),
		`fastsocks_tenant_bytes_total{direction="down",tenant="default"}`:                  float64(wantDown),
		`fastsocks_dial_duration_seconds_count{}`:                                          4,
	}
	// The histogram's buckets and sum depend on timing: check their shape
	// (cumulative, ending at the count) and take them as they are.
	prev := 0.0
	for _, b := range engine.DialBuckets {
		key := fmt.Sprintf(`fastsocks_dial_duration_seconds_bucket{le="%s"}`, strconv.FormatFloat(b, 'g', -1, 64))
		v, ok := got[key]
		if !ok {
			t.Errorf("missing %s", key)
			continue
		}
		if v < prev || v > 4 {
			t.Errorf("%s = %v: not cumulative within 0..4 (previous bucket %v)", key, v, prev)
		}
		prev = v
		want[key] = v
	}
	sum := got[`fastsocks_dial_duration_seconds_sum{}`]
	if !(sum > 0 && sum < 40) {
		t.Errorf("fastsocks_dial_duration_seconds_sum = %v, want in (0, 40) for 4 local dials", sum)
	}
	want[`fastsocks_dial_duration_seconds_sum{}`] = sum
	compareSeries(t, got, want)
}

func TestHealthz(t *testing.T) {
	s := startServer(t, fixedSource{})
	check := func(wantCode int, wantBody string) {
		t.Helper()
		code, body := get(t, s, "/healthz")
		if code != wantCode || body != wantBody {
			t.Errorf("/healthz: %d %q, want %d %q", code, body, wantCode, wantBody)
		}
	}
	check(http.StatusServiceUnavailable, "starting\n")
	s.SetReady(true, "")
	check(http.StatusOK, "ok\n")
	s.SetReady(false, "draining")
	check(http.StatusServiceUnavailable, "draining\n")
	s.SetReady(false, "two\nlines ")
	check(http.StatusServiceUnavailable, "two lines\n")
	s.SetReady(false, "")
	check(http.StatusServiceUnavailable, "not ready\n")
}

func TestRoutes(t *testing.T) {
	s := startServer(t, fixedSource{})
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/debug/pprof/", http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", http.StatusOK},
		{"/debug/pprof/cmdline", http.StatusOK},
		{"/metrics", http.StatusOK},
		{"/nope", http.StatusNotFound},
		{"/", http.StatusNotFound},
		{"/metrics/extra", http.StatusNotFound},
		{"/healthzz", http.StatusNotFound},
	} {
		if code, _ := get(t, s, tc.path); code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, code, tc.code)
		}
	}
}

func TestStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if _, err := Start(Config{Addr: addr, Source: fixedSource{}, Logger: quiet}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Start on a busy %s: err %v, want one naming the address", addr, err)
	}
	if _, err := Start(Config{Addr: "127.0.0.1:0", Logger: quiet}); err == nil {
		t.Error("Start with no Source: no error")
	}
}

func TestCloseStopsServing(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", Source: fixedSource{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after Close", addr)
	}
}
