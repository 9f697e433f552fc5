package admin

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastsocks/fastsocks/engine"
)

const namespace = "fastsocks"

// tenantHelp is appended to the HELP of every metric labelled by tenant.
const tenantHelp = ` Tenants are those named in the configuration, plus tenant="" (label value kept empty): requests refused before a credentials listener learned their tenant (bad or missing credentials).`

// verdicts are the values of the verdict label, always exported for each
// tenant so that rate() has a series from the first scrape.
var verdicts = [...]string{
	engine.VerdictAllow.String(),
	engine.VerdictDeny.String(),
	engine.VerdictError.String(),
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// collector turns one engine.Stats snapshot per scrape into const metrics.
// Label values are bounded: tenant names come from the operator's
// configuration, verdicts, reasons and kinds from small fixed token sets.
type collector struct {
	src Source

	connsActive      *prometheus.Desc
	handshakesActive *prometheus.Desc
	tunnelsActive    *prometheus.Desc
	tenantTunnels    *prometheus.Desc
	accepted         *prometheus.Desc
	requests         *prometheus.Desc
	refused          *prometheus.Desc
	dialErrors       *prometheus.Desc
	dialDuration     *prometheus.Desc
	dialQueue        *prometheus.Desc
	bytes            *prometheus.Desc
	tenantBytes      *prometheus.Desc
	openFDs          *prometheus.Desc
	maxFDs           *prometheus.Desc
}

func newCollector(src Source) *collector {
	return &collector{
		src: src,
		connsActive: desc("connections_active",
			"Client connections open now, in any state: handshaking, dialing, relaying or being refused."),
		handshakesActive: desc("handshakes_active",
			"Client connections open now that have not finished their request yet (SOCKS5 greeting and request, or HTTP CONNECT head)."),
		tunnelsActive: desc("tunnels_active",
			"Tunnels open now: requests past the policy check that are dialing their target or relaying bytes. This is what the --max-tunnels limit counts."),
		tenantTunnels: desc("tenant_tunnels_active",
			"Tunnels open now (dialing or relaying) by tenant; what a tenant's tunnel limit counts."+tenantHelp,
			"tenant"),
		accepted: desc("connections_accepted_total",
			"Client connections accepted on the proxy listeners since start, whatever became of them."),
		requests: desc("requests_total",
			"Proxy requests by tenant and outcome: verdict=\"allow\" was relayed, \"deny\" was refused by policy (hostname rules, credentials, a blocked destination address), \"error\" failed (malformed request, dial error, tunnel limit, timeout)."+tenantHelp,
			"tenant", "verdict"),
		refused: desc("requests_refused_total",
			"Requests answered with a failure (verdict deny or error), by tenant and the reason token the decision log gives (e.g. blocked-by-allowlist, dial-refused, tunnel-limit)."+tenantHelp,
			"tenant", "reason"),
		dialErrors: desc("dial_errors_total",
			"Dials to allowed targets that failed, by kind (refused, timeout, no-such-host, upstream-denied, ...); a kind appears once it has happened.",
			"kind"),
		dialDuration: desc("dial_duration_seconds",
			"Time to reach an allowed target, from the start of the name lookup until connected or failed (through the upstream proxy when one is used); successful and failed dials alike."),
		dialQueue: desc("dial_queue_depth",
			"Dials (or name lookups) waiting now for a free dial-pool worker. Steadily above zero means the pool is too small or the resolver too slow."),
		bytes: desc("bytes_total",
			"Bytes relayed through tunnels since start: direction=\"up\" from clients to targets, \"down\" from targets to clients. Handshake bytes are not counted.",
			"direction"),
		tenantBytes: desc("tenant_bytes_total",
			"Bytes relayed through tunnels since start by tenant: direction=\"up\" from clients to targets, \"down\" from targets to clients."+tenantHelp,
			"tenant", "direction"),
		openFDs: desc("open_fds",
			"File descriptors the proxy process has open now (entries of /proc/self/fd); each tunnel holds two. Compare with fastsocks_max_fds."),
		maxFDs: desc("max_fds",
			"The process's open file descriptor limit (RLIMIT_NOFILE soft limit). New connections fail once fastsocks_open_fds reaches it."),
	}
}

// Describe sends every metric's description (the collector is "checked").
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connsActive, c.handshakesActive, c.tunnelsActive, c.tenantTunnels,
		c.accepted, c.requests, c.refused, c.dialErrors, c.dialDuration,
		c.dialQueue, c.bytes, c.tenantBytes, c.openFDs, c.maxFDs,
	} {
		ch <- d
	}
}

// Collect reads the source once and emits its values.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	e := emitter{ch}

	e.gauge(c.connsActive, float64(st.Active))
	e.gauge(c.handshakesActive, float64(st.Handshakes))
	e.gauge(c.tunnelsActive, float64(st.Tunnels))
	e.counter(c.accepted, float64(st.Accepted))
	e.gauge(c.dialQueue, float64(st.DialQueue))
	e.counter(c.bytes, float64(st.BytesUp), "up")
	e.counter(c.bytes, float64(st.BytesDown), "down")

	for _, kind := range sortedKeys(st.DialErrors) {
		e.counter(c.dialErrors, float64(st.DialErrors[kind]), kind)
	}
	h := st.DialLatency
	if h.Buckets == nil && h.Count == 0 {
		// No snapshot taken yet: show the empty buckets, so the series
		// set does not change with the first dial.
		h.Buckets = make(map[float64]uint64, len(engine.DialBuckets))
		for _, b := range engine.DialBuckets {
			h.Buckets[b] = 0
		}
	}
	m, err := prometheus.NewConstHistogram(c.dialDuration, h.Count, h.Sum, h.Buckets)
	e.send(c.dialDuration, m, err)

	for _, ts := range st.Tenants {
		e.gauge(c.tenantTunnels, float64(ts.Tunnels), ts.Name)
		for _, v := range verdicts {
			e.counter(c.requests, float64(ts.Requests[v]), ts.Name, v)
		}
		for _, v := range sortedKeys(ts.Requests) {
			if !isVerdict(v) { // a verdict this package does not know yet: keep it
				e.counter(c.requests, float64(ts.Requests[v]), ts.Name, v)
			}
		}
		for _, reason := range sortedKeys(ts.Refused) {
			e.counter(c.refused, float64(ts.Refused[reason]), ts.Name, reason)
		}
		e.counter(c.tenantBytes, float64(ts.BytesUp), ts.Name, "up")
		e.counter(c.tenantBytes, float64(ts.BytesDown), ts.Name, "down")
	}

	if n, ok := openFDs(); ok {
		e.gauge(c.openFDs, float64(n))
	}
	if n, ok := maxFDs(); ok {
		e.gauge(c.maxFDs, float64(n))
	}
}

// emitter sends const metrics. A value that cannot be made (a label value
// that is not valid UTF-8, say) becomes an invalid metric, which fails
// that one series in the scrape instead of panicking in the collector.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	e.send(d, m, err)
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...)
	e.send(d, m, err)
}

func (e emitter) send(d *prometheus.Desc, m prometheus.Metric, err error) {
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func isVerdict(v string) bool {
	for _, k := range verdicts {
		if v == k {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
