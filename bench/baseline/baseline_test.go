package baseline

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// startProxy serves a baseline proxy allowing only "localhost" on
// 127.0.0.1:0 for the test's lifetime.
func startProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ln, AllowList("localhost")) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startEcho serves an echo server on 127.0.0.1:0 that half-closes after
// the client's EOF, and returns its port.
func startEcho(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// readReply reads one SOCKS5 reply from c.
func readReply(t *testing.T, c net.Conn) socks5.ReplyCode {
	t.Helper()
	var buf []byte
	tmp := make([]byte, 64)
	for {
		rep, _, n, err := socks5.ParseReply(buf)
		if err == nil {
			if n != len(buf) {
				t.Fatalf("reply followed by %d unexpected bytes", len(buf)-n)
			}
			return rep
		}
		if err != socks5.ErrShort {
			t.Fatalf("ParseReply(% x): %v", buf, err)
		}
		k, err := c.Read(tmp)
		if k == 0 && err != nil {
			t.Fatalf("reading reply after % x: %v", buf, err)
		}
		buf = append(buf, tmp[:k]...)
	}
}

// connect dials the proxy, greets with no-auth, and sends CONNECT host:port.
func connect(t *testing.T, proxy, host string, port uint16) (net.Conn, socks5.ReplyCode) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(socks5.AppendGreeting(nil, socks5.MethodNoAuth)); err != nil {
		t.Fatal(err)
	}
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		t.Fatal(err)
	}
	if m != [2]byte{5, byte(socks5.MethodNoAuth)} {
		t.Fatalf("method selection = % x, want 05 00", m)
	}
	if _, err := c.Write(socks5.AppendRequest(nil, socks5.CmdConnect, host, port)); err != nil {
		t.Fatal(err)
	}
	return c, readReply(t, c)
}

func TestAllowedHostRelaysBothWaysWithHalfClose(t *testing.T) {
	proxy := startProxy(t)
	port := startEcho(t)
	c, rep := connect(t, proxy, "localhost", port)
	if rep != socks5.RepSucceeded {
		t.Fatalf("REP = %v, want succeeded", rep)
	}
	msg := bytes.Repeat([]byte("fastsocks "), 100_000) // 1 MB: more than any socket buffer
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, want the %d sent", len(got), len(msg))
	}
}

func TestEarlyDataAfterRequestIsRelayed(t *testing.T) {
	proxy := startProxy(t)
	port := startEcho(t)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Greeting, request and data in one write, as an eager client sends them.
	b := socks5.AppendGreeting(nil, socks5.MethodNoAuth)
	b = socks5.AppendRequest(b, socks5.CmdConnect, "localhost", port)
	b = append(b, "ping"...)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		t.Fatal(err)
	}
	if rep := readReplyPrefix(t, c); rep != socks5.RepSucceeded {
		t.Fatalf("REP = %v, want succeeded", rep)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo of early data = %q, %v; want \"ping\"", got, err)
	}
}

// readReplyPrefix reads exactly one IPv4-bound reply (10 bytes), leaving
// whatever follows in the socket.
func readReplyPrefix(t *testing.T, c net.Conn) socks5.ReplyCode {
	t.Helper()
	b := make([]byte, 10)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	rep, _, n, err := socks5.ParseReply(b)
	if err != nil || n != 10 {
		t.Fatalf("ParseReply(% x) = n %d, %v", b, n, err)
	}
	return rep
}

func TestRefusals(t *testing.T) {
	proxy := startProxy(t)
	port := startEcho(t)
	tests := []struct {
		name    string
		request []byte
		want    socks5.ReplyCode
	}{
		{"denied host", socks5.AppendRequest(nil, socks5.CmdConnect, "example.com", port), socks5.RepNotAllowed},
		{"suffix of allowed is not allowed", socks5.AppendRequest(nil, socks5.CmdConnect, "evil-localhost", port), socks5.RepNotAllowed},
		{"bind", socks5.AppendRequest(nil, socks5.CmdBind, "localhost", port), socks5.RepCommandNotSupported},
		{"IPv4 literal", binary.BigEndian.AppendUint16(
			[]byte{5, byte(socks5.CmdConnect), 0, byte(socks5.AddrIPv4), 127, 0, 0, 1}, port),
			socks5.RepAddrTypeNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", proxy)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b := socks5.AppendGreeting(nil, socks5.MethodNoAuth)
			if _, err := c.Write(append(b, tt.request...)); err != nil {
				t.Fatal(err)
			}
			var m [2]byte
			if _, err := io.ReadFull(c, m[:]); err != nil {
				t.Fatal(err)
			}
			if rep := readReply(t, c); rep != tt.want {
				t.Fatalf("REP = %v, want %v", rep, tt.want)
			}
			// The proxy closes after a refusal.
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatalf("after refusal: read %d bytes, err %v; want EOF", n, err)
			}
		})
	}
}

func TestNoAcceptableMethod(t *testing.T) {
	proxy := startProxy(t)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(socks5.AppendGreeting(nil, socks5.MethodUserPass)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{5, 0xFF}) {
		t.Fatalf("reply = % x, want 05 ff then EOF", got)
	}
}

func TestRefusedTargetGetsConnectionRefused(t *testing.T) {
	proxy := startProxy(t)
	// A port with nothing listening: bind one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if _, rep := connect(t, proxy, "localhost", port); rep != socks5.RepConnectionRefused {
		t.Fatalf("REP = %v, want connection refused", rep)
	}
}

func TestAllowList(t *testing.T) {
	allow := AllowList("localhost")
	for host, want := range map[string]bool{
		"localhost":      true,
		"LOCALHOST":      true,
		"localhost.":     true,
		"localhost..":    false,
		"a.localhost":    false,
		"localhost.com":  false,
		"":               false,
		"evil-localhost": false,
	} {
		if got := allow(host); got != want {
			t.Errorf("allow(%q) = %v, want %v", host, got, want)
		}
	}
}
