package engine

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// The tests named after koda's are ports of the seed's socks5.rs tests.

func TestGreetingAcceptsNoAuth(t *testing.T) {
	p := startProxy(t, nil, nil)
	c := dialProxy(t, p)
	greet(t, c)
}

func TestGreetingRejectsNoAcceptableAuth(t *testing.T) {
	p := startProxy(t, nil, nil)
	c := dialProxy(t, p)
	// Offer only username/password (0x02); this listener takes no-auth.
	write(t, c, []byte{0x05, 0x01, 0x02})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0xFF}) {
		t.Fatalf("reply % x, want 05 ff", got)
	}
	expectClosed(t, c, 5*time.Second)
}

func TestGreetingVersionNot5ClosesWithoutReply(t *testing.T) {
	p := startProxy(t, nil, nil)
	c := dialProxy(t, p)
	write(t, c, []byte{0x05 + 1, 0x01, 0x00})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) != 0 {
		t.Fatalf("got % x (err %v), want nothing then close", b, err)
	}
}

func TestConnectDomainBlockedByFilter(t *testing.T) {
	p := startProxy(t, []string{"github.com"}, nil)
	c := dialProxy(t, p)
	if rep := connect(t, c, "evil.example.com", 443); rep != socks5.RepNotAllowed {
		t.Fatalf("REP %v, want %v", rep, socks5.RepNotAllowed)
	}
	expectClosed(t, c, 5*time.Second)
	if !waitFor(time.Second, func() bool { return strings.Contains(p.log.String(), "host=evil.example.com") }) {
		t.Errorf("no log line naming the refused host:\n%s", p.log)
	}
}

func TestDenyWinsOverAllow(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) {
		c.Policy = mustPolicy(t, []string{"localhost"}, []string{"localhost"})
	})
	c := dialProxy(t, p)
	if rep := connect(t, c, "localhost", tg.port); rep != socks5.RepNotAllowed {
		t.Fatalf("REP %v, want not allowed", rep)
	}
}

func TestIPv4LiteralRejectedWithAddrTypeUnsupported(t *testing.T) {
	p := startProxy(t, []string{"github.com"}, nil)
	c := dialProxy(t, p)
	greet(t, c)
	// CONNECT 1.2.3.4:443 with ATYP=0x01.
	write(t, c, []byte{0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0x01, 0xBB})
	if rep := readReply(t, c); rep != socks5.RepAddrTypeNotSupported {
		t.Fatalf("REP %v", rep)
	}
}

func TestIPv6LiteralRejectedWithAddrTypeUnsupported(t *testing.T) {
	p := startProxy(t, []string{"github.com"}, nil)
	c := dialProxy(t, p)
	greet(t, c)
	req := []byte{0x05, 0x01, 0x00, 0x04}
	req = append(req, make([]byte, 16)...)
	req = append(req, 0x01, 0xBB)
	write(t, c, req)
	if rep := readReply(t, c); rep != socks5.RepAddrTypeNotSupported {
		t.Fatalf("REP %v", rep)
	}
}

func TestBindCommandRefused(t *testing.T) {
	p := startProxy(t, nil, nil)
	for _, cmd := range []byte{0x02, 0x03, 0x7f} {
		c := dialProxy(t, p)
		greet(t, c)
		// CMD, ATYP=DOMAIN, 1-byte name "x", port 80.
		write(t, c, []byte{0x05, cmd, 0x00, 0x03, 0x01, 'x', 0x00, 0x50})
		if rep := readReply(t, c); rep != socks5.RepCommandNotSupported {
			t.Fatalf("cmd %#x: REP %v", cmd, rep)
		}
	}
}

func TestBadDomainGeneralFailure(t *testing.T) {
	p := startProxy(t, []string{"**.com"}, nil)
	for _, host := range []string{"", "a b.com", "a\x00.com", "caf\xc3\xa9.com"} {
		c := dialProxy(t, p)
		greet(t, c)
		write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, host, 80))
		if rep := readReply(t, c); rep != socks5.RepGeneralFailure {
			t.Fatalf("host %q: REP %v, want general failure", host, rep)
		}
	}
}

func TestUnknownAddrTypeRefusedAndClosed(t *testing.T) {
	p := startProxy(t, nil, nil)
	c := dialProxy(t, p)
	greet(t, c)
	write(t, c, []byte{0x05, 0x01, 0x00, 0x09, 1, 2, 3})
	if rep := readReply(t, c); rep != socks5.RepAddrTypeNotSupported {
		t.Fatalf("REP %v", rep)
	}
	expectClosed(t, c, 5*time.Second)
}

func TestAllowedDomainSucceedsThenRelays(t *testing.T) {
	tg := startTarget(t, func(c *net.TCPConn) {
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(b)
		}
	})
	p := startProxy(t, []string{"localhost"}, nil)
	c := dialProxy(t, p)
	greet(t, c)
	write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, "localhost", tg.port))
	head := readN(t, c, 4)
	if head[1] != byte(socks5.RepSucceeded) {
		t.Fatalf("REP %#x", head[1])
	}
	// The success reply carries the upstream socket's bound address:
	// 127.0.0.1 (ATYP 1) and a non-zero port.
	if head[3] != 0x01 {
		t.Fatalf("bound ATYP %#x, want 1", head[3])
	}
	bnd := readN(t, c, 6)
	if !bytes.Equal(bnd[:4], []byte{127, 0, 0, 1}) || (bnd[4] == 0 && bnd[5] == 0) {
		t.Fatalf("bound address % x", bnd)
	}
	write(t, c, []byte{0x42})
	if got := readN(t, c, 1); got[0] != 0x42 {
		t.Fatalf("echo %#x", got[0])
	}
}

func TestSocksRepMapping(t *testing.T) {
	cases := map[dial.Kind]socks5.ReplyCode{
		dial.KindRefused:         socks5.RepConnectionRefused,
		dial.KindNetUnreachable:  socks5.RepNetworkUnreachable,
		dial.KindHostUnreachable: socks5.RepHostUnreachable,
		dial.KindNoSuchHost:      socks5.RepHostUnreachable,
		dial.KindTimeout:         socks5.RepHostUnreachable,
		dial.KindOther:           socks5.RepGeneralFailure,
		dial.KindQueueFull:       socks5.RepGeneralFailure,
		// Through an upstream proxy: 403, 407, 502-504, anything else.
		dial.KindUpstreamDenied:      socks5.RepNotAllowed,
		dial.KindUpstreamAuth:        socks5.RepGeneralFailure,
		dial.KindUpstreamUnavailable: socks5.RepHostUnreachable,
		dial.KindUpstreamProtocol:    socks5.RepGeneralFailure,
	}
	for k, want := range cases {
		if got := socksRep(k); got != want {
			t.Errorf("socksRep(%v) = %v, want %v", k, got, want)
		}
	}
}

func TestConnectionRefusedMapsToRep05(t *testing.T) {
	// A port nobody listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	p := startProxy(t, []string{"localhost"}, nil)
	c := dialProxy(t, p)
	if rep := connect(t, c, "localhost", port); rep != socks5.RepConnectionRefused {
		t.Fatalf("REP %v, want connection refused", rep)
	}
}

func TestUnresolvableNameMapsToRep04(t *testing.T) {
	pool := newPool(t, dial.Config{Resolver: failingResolver(), Timeout: 5 * time.Second})
	p := startProxy(t, []string{"**.test"}, func(c *Config) { c.Dialer = pool })
	c := dialProxy(t, p)
	if rep := connect(t, c, "nowhere.test", 80); rep != socks5.RepHostUnreachable {
		t.Fatalf("REP %v, want host unreachable", rep)
	}
}

func TestPipelinedHandshakeWithEarlyData(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	c := dialProxy(t, p)
	// Greeting, request and early data in one segment.
	msg := []byte{0x05, 0x01, 0x00}
	msg = socks5.AppendRequest(msg, socks5.CmdConnect, "localhost", tg.port)
	msg = append(msg, "early bytes"...)
	write(t, c, msg)
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0x00}) {
		t.Fatalf("method % x", got)
	}
	if rep := readReply(t, c); rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	if got := readN(t, c, len("early bytes")); string(got) != "early bytes" {
		t.Fatalf("echo %q", got)
	}
}

func TestByteAtATimeHandshake(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	c := dialProxy(t, p)
	msg := []byte{0x05, 0x02, 0x02, 0x00}
	msg = socks5.AppendRequest(msg, socks5.CmdConnect, "localhost", tg.port)
	for i := range msg {
		write(t, c, msg[i:i+1])
		// Let each byte travel as its own segment.
		if i == 3 {
			if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0x00}) {
				t.Fatalf("method % x", got)
			}
		}
	}
	if rep := readReply(t, c); rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	write(t, c, []byte("ping"))
	if got := readN(t, c, 4); string(got) != "ping" {
		t.Fatalf("echo %q", got)
	}
}

// TestXNetProxyClient uses golang.org/x/net/proxy as an independent SOCKS5
// client fetching from an httptest server by host name.
func TestXNetProxyClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello through fastsocks")
	}))
	defer srv.Close()
	p := startProxy(t, []string{"localhost"}, nil)
	d, err := proxy.SOCKS5("tcp", p.addr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Dial: d.Dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello through fastsocks" {
		t.Fatalf("body %q", body)
	}
	// A name the policy refuses fails in the client.
	if _, err := d.Dial("tcp", "blocked.example:80"); err == nil {
		t.Fatal("dial to a refused name succeeded")
	}
}
