package engine

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastsocks/fastsocks/dial"
)

// Verdict is the outcome of a request, as the decision log and the
// metrics give it.
type Verdict uint8

// Verdicts.
const (
	VerdictAllow Verdict = iota // relayed (logged when the tunnel closes)
	VerdictDeny                 // refused by policy or credentials
	VerdictError                // failed: protocol error, dial error, limit, timeout
)

func (v Verdict) String() string {
	switch v {
	case VerdictAllow:
		return "allow"
	case VerdictDeny:
		return "deny"
	}
	return "error"
}

// tenantCounters are one tenant's counters. They are kept by tenant name
// for the engine's life, so a reload does not reset them.
type tenantCounters struct {
	name       string
	tunnels    atomic.Int64 // dialing or relaying now
	verdicts   [3]atomic.Uint64
	bytesUp    atomic.Uint64
	bytesDown  atomic.Uint64
	mu         sync.Mutex
	refusedFor map[string]uint64 // by reason token
}

func (c *tenantCounters) refuse(v Verdict, reason string) {
	c.verdicts[v].Add(1)
	c.mu.Lock()
	if c.refusedFor == nil {
		c.refusedFor = make(map[string]uint64)
	}
	c.refusedFor[reason]++
	c.mu.Unlock()
}

// counters returns the counters of tenant name, making them on first use.
func (e *Engine) counters(name string) *tenantCounters {
	if c, ok := e.byTenant.Load(name); ok {
		return c.(*tenantCounters)
	}
	c, _ := e.byTenant.LoadOrStore(name, &tenantCounters{name: name})
	return c.(*tenantCounters)
}

// DialBuckets are the upper bounds of the dial-latency histogram in
// Stats.DialLatency, in seconds (Prometheus "le" buckets).
var DialBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// dialHist is a lock-free histogram of dial durations.
type dialHist struct {
	counts [14]atomic.Uint64 // len(DialBuckets)+1: the last is +Inf
	sumNs  atomic.Uint64
}

func (h *dialHist) observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(DialBuckets, s)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
}

// Histogram is a cumulative-bucket snapshot (Prometheus style).
type Histogram struct {
	Count   uint64
	Sum     float64            // seconds
	Buckets map[float64]uint64 // upper bound -> observations at or below it
}

func (h *dialHist) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(DialBuckets))}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if i < len(DialBuckets) {
			out.Buckets[DialBuckets[i]] = cum
		}
	}
	out.Count = cum
	out.Sum = float64(h.sumNs.Load()) / 1e9
	return out
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Active     int64 // connections open, in any state
	Handshakes int64 // of those, still in greeting or request
	Tunnels    int64 // of those, past their request: dialing or relaying
	Accepted   uint64
	Refused    uint64 // requests answered with a failure (policy, protocol, dial, limit)
	BytesUp    uint64 // client -> target
	BytesDown  uint64 // target -> client

	DialErrors  map[string]uint64 // by dial.Kind
	DialLatency Histogram         // successful and failed dials, lookup to connected
	DialQueue   int               // dials waiting for a pool worker

	Tenants []TenantStats // sorted by name; tenants seen since start
}

// TenantStats is one tenant's part of Stats.
type TenantStats struct {
	Name      string
	Tunnels   int64
	Requests  map[string]uint64 // by verdict: allow, deny, error
	Refused   map[string]uint64 // deny and error requests by reason token
	BytesUp   uint64
	BytesDown uint64
}

func (e *Engine) tenantStats() []TenantStats {
	var out []TenantStats
	e.byTenant.Range(func(_, v any) bool {
		c := v.(*tenantCounters)
		ts := TenantStats{
			Name:      c.name,
			Tunnels:   c.tunnels.Load(),
			Requests:  map[string]uint64{},
			Refused:   map[string]uint64{},
			BytesUp:   c.bytesUp.Load(),
			BytesDown: c.bytesDown.Load(),
		}
		for v := range c.verdicts {
			ts.Requests[Verdict(v).String()] = c.verdicts[v].Load()
		}
		c.mu.Lock()
		for r, n := range c.refusedFor {
			ts.Refused[r] = n
		}
		c.mu.Unlock()
		out = append(out, ts)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// dialKinds counts dial errors by kind.
type dialKinds [16]atomic.Uint64

func (d *dialKinds) add(k dial.Kind) {
	if int(k) < len(d) {
		d[k].Add(1)
	}
}

func (d *dialKinds) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	for k := range d {
		if n := d[k].Load(); n > 0 {
			out[dial.Kind(k).String()] = n
		}
	}
	return out
}

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is a monotonic clock reading in nanoseconds: 8 bytes where a
// time.Time takes 24.
func monoNow() int64 { return int64(time.Since(epoch)) }

// admit counts a tunnel against the global and the tenant's limits; it
// returns the reason token if a limit is reached (and counts nothing).
func (e *Engine) admit(t *Tenant) string {
	if n := e.tunnels.Add(1); e.cfg.MaxTunnels > 0 && n > int64(e.cfg.MaxTunnels) {
		e.tunnels.Add(-1)
		return "tunnel-limit"
	}
	if n := t.c.tunnels.Add(1); t.MaxTunnels > 0 && n > int64(t.MaxTunnels) {
		t.c.tunnels.Add(-1)
		e.tunnels.Add(-1)
		return "tenant-tunnel-limit"
	}
	return ""
}

// release undoes admit when a tunnel ends.
func (e *Engine) release(t *Tenant) {
	e.tunnels.Add(-1)
	t.c.tunnels.Add(-1)
}

// countersFor returns the counters a request of t is counted in: its
// tenant's, or, before a credentials listener knows the tenant, those of
// the unnamed tenant "".
func (e *Engine) countersFor(t *tunnel) *tenantCounters {
	if t.tenant != nil {
		return t.tenant.c
	}
	if conf := t.spec.conf.Load(); !conf.Credentials {
		return e.counters(conf.Tenant)
	}
	return e.counters("")
}
