package engine

import (
	"fmt"
	"io"
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

// TestMaxHandshakes: connections past the handshake bound are closed at
// accept, the ones in their handshake and the open tunnels are not, and
// new clients get in again once handshakes finish.
func TestMaxHandshakes(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.MaxHandshakes = 5 })
	open := tunnelTo(t, p, tg.port)
	var silent []*net.TCPConn
	for i := 0; i < 5; i++ {
		silent = append(silent, dialProxy(t, p))
	}
	mustWait(t, 5*time.Second, "5 handshakes", func() bool { return p.e.Stats().Handshakes == 5 })
	extra := dialProxy(t, p)
	expectClosed(t, extra, 5*time.Second)
	write(t, open, []byte("still"))
	if got := readN(t, open, 5); string(got) != "still" {
		t.Fatalf("open tunnel: %q", got)
	}
	// A handshake finishing frees a slot.
	greet(t, silent[0])
	write(t, silent[0], socks5.AppendRequest(nil, socks5.CmdConnect, "localhost", tg.port))
	if rep := readReply(t, silent[0]); rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	mustWait(t, 5*time.Second, "a free handshake slot", func() bool { return p.e.Stats().Handshakes == 4 })
	tunnelTo(t, p, tg.port)
	if !strings.Contains(p.log.String(), "handshake-limit") {
		t.Errorf("no log line for the connections closed at accept:\n%s", p.log)
	}
}

// TestMaxConnsPerClient: one address may hold N connections; others are
// not affected.
func TestMaxConnsPerClient(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.MaxConnsPerClient = 3 })
	from := func(ip string) *net.TCPConn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	var mine []*net.TCPConn
	for i := 0; i < 3; i++ {
		c := from("127.0.0.2")
		if rep := connect(t, c, "localhost", tg.port); rep != socks5.RepSucceeded {
			t.Fatalf("REP %v", rep)
		}
		mine = append(mine, c)
	}
	expectClosed(t, from("127.0.0.2"), 5*time.Second)
	if rep := connect(t, from("127.0.0.3"), "localhost", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("another address: REP %v", rep)
	}
	mine[0].Close()
	mustWait(t, 5*time.Second, "the address's count to drop", func() bool {
		c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, p.e.Addrs()[0].(*net.TCPAddr))
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(socks5.AppendRequest([]byte{5, 1, 0}, socks5.CmdConnect, "localhost", tg.port))
		b := make([]byte, 12)
		_, err = io.ReadFull(c, b)
		return err == nil && b[3] == 0
	})
}

// TestRefusalClosesCleanlyOverUnreadBytes: a refused client that
// pipelined more than its request (early data the proxy never reads) gets
// its answer and then an orderly end of stream. Closing at once with those
// bytes unread would make the kernel send a reset, which destroys an
// answer still in flight and shows the client a reset instead of EOF; the
// proxy shuts its write side and lingers instead.
func TestRefusalClosesCleanlyOverUnreadBytes(t *testing.T) {
	p := startProxy(t, []string{"localhost"}, nil)
	for i := 0; i < 20; i++ {
		c := dialProxy(t, p)
		msg := socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, "blocked.example", 443)
		msg = append(msg, make([]byte, 200<<10)...) // early data the refusal never reads
		go c.Write(msg)
		if got := readN(t, c, 2); got[0] != 5 || got[1] != 0 {
			t.Fatalf("round %d: method % x", i, got)
		}
		if rep := readReply(t, c); rep != socks5.RepNotAllowed {
			t.Fatalf("round %d: REP %v", i, rep)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("round %d: after the answer: %d bytes, %v; want EOF (a reset means the proxy closed over unread bytes)", i, n, err)
		}
		c.Close()
	}
}

// TestLingerBoundsARefusedClient: a refused client that neither reads to
// the end nor closes is closed once Linger passes.
func TestLingerBoundsARefusedClient(t *testing.T) {
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.Linger = 300 * time.Millisecond })
	c := dialProxy(t, p)
	if rep := connect(t, c, "blocked.example", 443); rep != socks5.RepNotAllowed {
		t.Fatalf("REP %v", rep)
	}
	// The client keeps its socket open and silent.
	mustWait(t, 5*time.Second, "the lingering connection to close", func() bool { return p.e.Stats().Active == 0 })
	expectClosed(t, c, time.Second)
}
