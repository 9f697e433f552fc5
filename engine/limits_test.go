package engine

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// TestMaxTunnels: with a bound of 10, the 11th request is refused (SOCKS5
// 0x01, HTTP 503), the first 10 keep relaying, and a slot freed by a
// closing tunnel is usable again.
func TestMaxTunnels(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.MaxTunnels = 10 })
	var open []*net.TCPConn
	for i := 0; i < 10; i++ {
		open = append(open, tunnelTo(t, p, tg.port))
	}
	c := dialProxy(t, p)
	if rep := connect(t, c, "localhost", tg.port); rep != socks5.RepGeneralFailure {
		t.Fatalf("11th tunnel: REP %v, want general failure", rep)
	}
	r := httpExchange(t, p, fmt.Sprintf("CONNECT localhost:%d HTTP/1.1\r\n\r\n", tg.port))
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("11th tunnel over HTTP: %d, want 503", r.StatusCode)
	}
	for i, c := range open {
		msg := fmt.Sprintf("tunnel %d", i)
		write(t, c, []byte(msg))
		if got := readN(t, c, len(msg)); string(got) != msg {
			t.Fatalf("tunnel %d after the refusals: %q", i, got)
		}
	}
	if !strings.Contains(p.log.String(), "reason=tunnel-limit") {
		t.Errorf("no log line for the refusal:\n%s", p.log)
	}
	open[0].Close()
	mustWait(t, 5*time.Second, "a slot to free", func() bool { return p.e.Stats().Tunnels == 9 })
	tunnelTo(t, p, tg.port)
}

// TestTenantMaxTunnels: a tenant's bound refuses its own requests only.
func TestTenantMaxTunnels(t *testing.T) {
	tg := startTarget(t, echoHandler)
	a := &Tenant{Name: "a", Policy: policy.MustNew([]string{"localhost"}, nil), MaxTunnels: 2}
	b := &Tenant{Name: "b", Policy: policy.MustNew([]string{"localhost"}, nil)}
	p := startFarm(t, []Listener{{Address: "127.0.0.1:0", Tenant: "a"}, {Address: "127.0.0.1:0", Tenant: "b"}}, []*Tenant{a, b}, nil)
	addrs := p.e.Addrs()
	pa, pb := &testProxy{e: p.e, addr: addrs[0].String()}, &testProxy{e: p.e, addr: addrs[1].String()}
	tunnelTo(t, pa, tg.port)
	tunnelTo(t, pa, tg.port)
	if rep := connect(t, dialProxy(t, pa), "localhost", tg.port); rep != socks5.RepGeneralFailure {
		t.Fatalf("tenant a's 3rd tunnel: REP %v", rep)
	}
	for i := 0; i < 3; i++ {
		tunnelTo(t, pb, tg.port)
	}
	var sa, sb TenantStats
	for _, ts := range p.e.Stats().Tenants {
		switch ts.Name {
		case "a":
			sa = ts
		case "b":
			sb = ts
		}
	}
	if sa.Tunnels != 2 || sb.Tunnels != 3 || sa.Refused["tenant-tunnel-limit"] != 1 {
		t.Fatalf("stats a=%+v b=%+v", sa, sb)
	}
}
