package dial

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/proto/httpconnect"
	"golang.org/x/sys/unix"
)

// fakeUpstream is an in-process HTTP proxy with a scripted answer: for each
// connection it reads the request head, records it, then runs script.
type fakeUpstream struct {
	ln      net.Listener
	heads   chan string
	accepts atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startFakeUpstream(t *testing.T, script func(c *net.TCPConn)) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{ln: ln, heads: make(chan string, 64)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				head, ok := readHead(c)
				if !ok {
					return
				}
				f.heads <- head
				script(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeUpstream) port() uint16 { return uint16(f.ln.Addr().(*net.TCPAddr).Port) }

func (f *fakeUpstream) upstream(t *testing.T, userinfo string) *Upstream {
	t.Helper()
	u, err := ParseUpstream("http://" + userinfo + f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// head returns the next request head the upstream received.
func (f *fakeUpstream) head(t *testing.T) string {
	t.Helper()
	select {
	case h := <-f.heads:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream received no request")
	}
	return ""
}

// readHead reads byte by byte up to the blank line, so nothing after the
// head is consumed.
func readHead(c net.Conn) (string, bool) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 64<<10 {
		if _, err := c.Read(one); err != nil {
			return string(b), false
		}
		b = append(b, one[0])
		if strings.HasSuffix(string(b), "\r\n\r\n") {
			return string(b), true
		}
	}
	return string(b), false
}

// answer returns a script that writes s and closes.
func answer(s string) func(*net.TCPConn) {
	return func(c *net.TCPConn) { c.Write([]byte(s)) }
}

// silent is a script that never answers: it waits for the client to go.
func silent(c *net.TCPConn) { io.Copy(io.Discard, c) }

// noResolver fails the test if a dial through the upstream resolves the
// target (or anything): the name must go upstream unresolved.
func noResolver(t *testing.T, calls *atomic.Int32) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		calls.Add(1)
		return nil, errors.New("resolver used")
	}}
}

// readFD reads exactly n bytes from a non-blocking descriptor.
func readFD(t *testing.T, fd, n int) string {
	t.Helper()
	var got []byte
	buf := make([]byte, n)
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(pfd, 1000)
		m, err := unix.Read(fd, buf[:n-len(got)])
		if err == unix.EAGAIN {
			continue
		}
		if err != nil || m == 0 {
			t.Fatalf("read from fd after %q: %d, %v", got, m, err)
		}
		got = append(got, buf[:m]...)
	}
	return string(got)
}

func writeFD(t *testing.T, fd int, s string) {
	t.Helper()
	if n, err := unix.Write(fd, []byte(s)); err != nil || n != len(s) {
		t.Fatalf("write to fd: %d, %v", n, err)
	}
}

// TestChainEarlyBytes: a 200 whose first tunnel bytes share the answer's
// segment. They come back in Conn.Early, not on the fd, and the fd carries
// the rest of the stream in both directions. The target goes upstream as
// the name the caller gave, unresolved.
func TestChainEarlyBytes(t *testing.T) {
	f := startFakeUpstream(t, func(c *net.TCPConn) {
		c.Write([]byte("HTTP/1.1 200 Connection established\r\nProxy-Agent: fake\r\n\r\nEARLY-BYTES"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			return
		}
		c.Write([]byte("pong"))
	})
	var lookups atomic.Int32
	p := New(Config{Upstream: f.upstream(t, ""), Resolver: noResolver(t, &lookups)})
	defer p.Close()
	r := dialWait(t, p, "registry.example.test", 443)
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer unix.Close(r.c.FD)
	if h := f.head(t); h != "CONNECT registry.example.test:443 HTTP/1.1\r\nHost: registry.example.test:443\r\n\r\n" {
		t.Errorf("request head %q", h)
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d DNS lookups for a chained dial", n)
	}
	if !r.c.Upstream {
		t.Error("Conn.Upstream false for a chained dial")
	}
	if string(r.c.Early) != "EARLY-BYTES" {
		t.Errorf("Early = %q", r.c.Early)
	}
	if r.c.Remote.String() != f.ln.Addr().String() {
		t.Errorf("Remote = %v, want the upstream %v", r.c.Remote, f.ln.Addr())
	}
	if !r.c.Local.Addr().IsLoopback() || r.c.Local.Port() == 0 {
		t.Errorf("Local = %v", r.c.Local)
	}
	fl, err := unix.FcntlInt(uintptr(r.c.FD), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("descriptor not non-blocking (flags %#x, %v)", fl, err)
	}
	if fdfl, _ := unix.FcntlInt(uintptr(r.c.FD), unix.F_GETFD, 0); fdfl&unix.FD_CLOEXEC == 0 {
		t.Error("descriptor not close-on-exec")
	}
	writeFD(t, r.c.FD, "ping")
	if got := readFD(t, r.c.FD, 4); got != "pong" {
		t.Errorf("read %q from the tunnel, want pong (early bytes must not repeat)", got)
	}
}

// TestChainAnswers maps each upstream answer to success or a Kind.
func TestChainAnswers(t *testing.T) {
	cases := []struct {
		name   string
		answer string
		kind   Kind   // KindOther with ok: success
		ok     bool   //
		text   string // the error must contain this
	}{
		{"200", "HTTP/1.1 200 Connection established\r\n\r\n", 0, true, ""},
		{"200 HTTP/1.0 bare LF", "HTTP/1.0 200 OK\nVia: x\n\n", 0, true, ""},
		{"204 is 2xx", "HTTP/1.1 204 No Content\r\n\r\n", 0, true, ""},
		{"403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied", KindUpstreamDenied, false, `403 "Forbidden"`},
		{"407", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n", KindUpstreamAuth, false, "set user:pass in the upstream URL"},
		{"401", "HTTP/1.0 401 Unauthorized\r\n\r\n", KindUpstreamAuth, false, "credentials"},
		{"502", "HTTP/1.1 502 Bad Gateway\r\n\r\n", KindUpstreamUnavailable, false, "502"},
		{"503", "HTTP/1.1 503 Service Unavailable\r\n\r\n", KindUpstreamUnavailable, false, "503"},
		{"504", "HTTP/1.1 504 Gateway Timeout\r\n\r\n", KindUpstreamUnavailable, false, "504"},
		{"418", "HTTP/1.1 418 I'm a teapot\r\n\r\n", KindUpstreamProtocol, false, `status 418 "I'm a teapot"`},
		{"500", "HTTP/1.1 500 Unable to connect\r\n\r\n", KindUpstreamProtocol, false, "status 500"},
		{"100", "HTTP/1.1 100 Continue\r\n\r\n", KindUpstreamProtocol, false, "status 100"},
		{"301", "HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n", KindUpstreamProtocol, false, "status 301"},
		{"not http", "SSH-2.0-OpenSSH_9.6\r\n", KindUpstreamProtocol, false, `malformed answer to the CONNECT: "SSH-2.0`},
		{"bad status", "HTTP/1.1 2000 OK\r\n\r\n", KindUpstreamProtocol, false, "malformed"},
		{"control bytes in reason", "HTTP/1.1 403 \x1b[31mred\r\n\r\n", KindUpstreamProtocol, false, "malformed"},
		{"eof before answer", "", KindUpstreamProtocol, false, "closed the connection"},
		{"eof mid status line", "HTTP/1.1 20", KindUpstreamProtocol, false, "closed the connection"},
		{"eof mid headers", "HTTP/1.1 200 OK\r\nVia: x\r\n", KindUpstreamProtocol, false, "after 25 bytes of answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFakeUpstream(t, answer(c.answer))
			p := New(Config{Upstream: f.upstream(t, "")})
			defer p.Close()
			r := dialWait(t, p, "target.test", 443)
			if c.ok {
				if r.err != nil {
					t.Fatal(r.err)
				}
				unix.Close(r.c.FD)
				if !r.c.Upstream || r.c.Early != nil {
					t.Errorf("Upstream %v, Early %q", r.c.Upstream, r.c.Early)
				}
				return
			}
			if r.err == nil {
				unix.Close(r.c.FD)
				t.Fatalf("success, want %v", c.kind)
			}
			if r.c.FD != -1 {
				t.Errorf("fd %d on failure", r.c.FD)
			}
			var de *Error
			if !errors.As(r.err, &de) || de.Kind != c.kind || !de.Upstream {
				t.Fatalf("%v (kind %v), want %v via upstream", r.err, KindOf(r.err), c.kind)
			}
			if msg := r.err.Error(); !strings.Contains(msg, c.text) || !strings.Contains(msg, "upstream proxy "+f.ln.Addr().String()) {
				t.Errorf("error %q, want it to name the upstream and say %q", msg, c.text)
			}
		})
	}
}

// TestChainSplitAnswer: an answer trickled a byte at a time, in separate
// segments, is put together.
func TestChainSplitAnswer(t *testing.T) {
	const ans = "HTTP/1.1 200 Connection established\r\nVia: 1.1 fake\r\n\r\n"
	f := startFakeUpstream(t, func(c *net.TCPConn) {
		c.SetNoDelay(true)
		for i := 0; i < len(ans); i++ {
			if _, err := c.Write([]byte{ans[i]}); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // separate segments, not readiness
		}
		io.Copy(io.Discard, c)
	})
	p := New(Config{Upstream: f.upstream(t, "")})
	defer p.Close()
	r := dialWait(t, p, "target.test", 443)
	if r.err != nil {
		t.Fatal(r.err)
	}
	unix.Close(r.c.FD)
	if len(r.c.Early) != 0 {
		t.Errorf("Early = %q", r.c.Early)
	}
}

// TestChainHeadSize: a head of exactly MaxHeadSize bytes is accepted; one
// byte more, or a head that never ends, is KindUpstreamProtocol at once
// (not a timeout).
func TestChainHeadSize(t *testing.T) {
	head := func(size int, end string) string {
		s := "HTTP/1.1 200 OK\r\n"
		pad := size - len(s) - len("X: \r\n") - len(end)
		return s + "X: " + strings.Repeat("a", pad) + "\r\n" + end
	}
	if h := head(httpconnect.MaxHeadSize, "\r\n"); len(h) != httpconnect.MaxHeadSize {
		t.Fatalf("head helper: %d bytes", len(h))
	}
	cases := []struct {
		name   string
		answer string
		ok     bool
	}{
		{"exactly the cap", head(httpconnect.MaxHeadSize, "\r\n") + "tail", true},
		{"one over", head(httpconnect.MaxHeadSize+1, "\r\n"), false},
		{"never ends", head(3*httpconnect.MaxHeadSize, ""), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFakeUpstream(t, func(conn *net.TCPConn) {
				conn.Write([]byte(c.answer))
				io.Copy(io.Discard, conn) // stay open: the cap, not EOF, must end it
			})
			p := New(Config{Upstream: f.upstream(t, ""), Timeout: time.Minute})
			defer p.Close()
			r := dialWait(t, p, "target.test", 443)
			if c.ok {
				if r.err != nil {
					t.Fatal(r.err)
				}
				defer unix.Close(r.c.FD)
				// The read buffer holds one byte past the cap: what of
				// the tunnel did not fit is still on the socket.
				if got := string(r.c.Early) + readFD(t, r.c.FD, 4-len(r.c.Early)); got != "tail" {
					t.Errorf("Early %q, tunnel %q, want tail", r.c.Early, got)
				}
				return
			}
			if KindOf(r.err) != KindUpstreamProtocol || !strings.Contains(r.err.Error(), "over 8192 bytes") {
				t.Fatalf("%v, want upstream-protocol: head over 8192 bytes", r.err)
			}
		})
	}
}

// TestChainSilentUpstream: an upstream that accepts and never answers
// ends in KindTimeout within the pool's Timeout.
func TestChainSilentUpstream(t *testing.T) {
	f := startFakeUpstream(t, silent)
	p := New(Config{Upstream: f.upstream(t, ""), Timeout: 300 * time.Millisecond})
	defer p.Close()
	start := time.Now()
	r := dialWait(t, p, "target.test", 443)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 300ms dial timeout took %v", d)
	}
	var de *Error
	if !errors.As(r.err, &de) || de.Kind != KindTimeout || !de.Upstream {
		t.Fatalf("%v, want a timeout via upstream", r.err)
	}
	if !strings.Contains(r.err.Error(), "upstream proxy "+f.ln.Addr().String()) {
		t.Errorf("error %q does not name the upstream", r.err)
	}
}

// TestChainResetMidAnswer: the upstream resets after part of a status
// line. The dial fails as a protocol error, never as a success.
func TestChainResetMidAnswer(t *testing.T) {
	f := startFakeUpstream(t, func(c *net.TCPConn) {
		c.Write([]byte("HTTP/1.1 20"))
		c.SetLinger(0)
		c.Close()
	})
	p := New(Config{Upstream: f.upstream(t, "")})
	defer p.Close()
	r := dialWait(t, p, "target.test", 443)
	if r.err == nil {
		unix.Close(r.c.FD)
		t.Fatal("success after a reset")
	}
	if KindOf(r.err) != KindUpstreamProtocol || !strings.Contains(r.err.Error(), "reset the connection") {
		t.Fatalf("%v, want upstream-protocol: reset", r.err)
	}
}

// TestChainAuthHeader: user:pass from the URL, percent-decoded, goes in a
// Proxy-Authorization: Basic field; none is sent without userinfo. A 407
// with credentials configured says to check them, and never shows them.
func TestChainAuthHeader(t *testing.T) {
	f := startFakeUpstream(t, func(c *net.TCPConn) {
		c.Write([]byte("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"))
	})
	p := New(Config{Upstream: f.upstream(t, "alice:p%40ss@")})
	defer p.Close()
	r := dialWait(t, p, "target.test", 8443)
	want := "CONNECT target.test:8443 HTTP/1.1\r\nHost: target.test:8443\r\nProxy-Authorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte("alice:p@ss")) + "\r\n\r\n"
	if h := f.head(t); h != want {
		t.Errorf("request head %q, want %q", h, want)
	}
	if KindOf(r.err) != KindUpstreamAuth {
		t.Fatalf("%v, want upstream-auth", r.err)
	}
	msg := r.err.Error()
	if !strings.Contains(msg, "check the user:pass") || strings.Contains(msg, "p@ss") || strings.Contains(msg, "p%40ss") {
		t.Errorf("407 with credentials: %q", msg)
	}
}

// TestChainCancel: canceling a dial, or closing the pool, while the
// upstream has not answered ends it at once as canceled (closed).
func TestChainCancel(t *testing.T) {
	f := startFakeUpstream(t, silent)
	p := New(Config{Upstream: f.upstream(t, ""), Timeout: time.Minute})
	ch := make(chan result, 2)
	j, err := p.Dial("target.test", 443, func(c Conn, err error) { ch <- result{c, err} })
	if err != nil {
		t.Fatal(err)
	}
	f.head(t) // the exchange is under way
	j.Cancel()
	select {
	case r := <-ch:
		if KindOf(r.err) != KindCanceled {
			t.Fatalf("%v, want canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the exchange")
	}
	if _, err := p.Dial("target.test", 443, func(c Conn, err error) { ch <- result{c, err} }); err != nil {
		t.Fatal(err)
	}
	f.head(t)
	p.Close() // waits for the worker: the read must be interrupted
	if r := <-ch; KindOf(r.err) != KindClosed {
		t.Fatalf("%v, want closed", r.err)
	}
}

// TestChainUpstreamUnreachable: when the upstream itself refuses the
// connection, the kind is the usual one and the text blames the upstream.
func TestChainUpstreamUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	u, err := ParseUpstream("http://alice:" + secret + "@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Upstream: u})
	defer p.Close()
	r := dialWait(t, p, "target.test", 443)
	var de *Error
	if !errors.As(r.err, &de) || de.Kind != KindRefused || !de.Upstream {
		t.Fatalf("%v, want refused via upstream", r.err)
	}
	msg := r.err.Error()
	if !strings.Contains(msg, "upstream proxy "+addr+": connect: connection refused") || strings.Contains(msg, secret) {
		t.Errorf("error %q", msg)
	}
}

// TestChainBadTargetName: a name that could inject header lines is never
// sent upstream.
func TestChainBadTargetName(t *testing.T) {
	f := startFakeUpstream(t, answer("HTTP/1.1 200 OK\r\n\r\n"))
	p := New(Config{Upstream: f.upstream(t, "")})
	defer p.Close()
	for _, h := range []string{"", "a.test\r\nX-Evil: 1", "a b.test", "a.test/x"} {
		if r := dialWait(t, p, h, 443); KindOf(r.err) != KindNoSuchHost {
			t.Errorf("%q: %v, want no-such-host", h, r.err)
		}
	}
	if n := f.accepts.Load(); n != 0 {
		t.Errorf("upstream contacted %d times", n)
	}
}

// echoTarget is a target server that echoes and records the peer address
// of each connection it accepts.
type echoTarget struct {
	ln    net.Listener
	peers chan netip.AddrPort
}

func startEchoTarget(t *testing.T) *echoTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoTarget{ln: ln, peers: make(chan netip.AddrPort, 64)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return e
}

func (e *echoTarget) port() uint16 { return uint16(e.ln.Addr().(*net.TCPAddr).Port) }

func (e *echoTarget) peer(t *testing.T) netip.AddrPort {
	t.Helper()
	select {
	case p := <-e.peers:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the target accepted no connection")
	}
	return netip.AddrPort{}
}

// checkEcho sends a line through the tunnel and expects it back.
func checkEcho(t *testing.T, c Conn) {
	t.Helper()
	msg := "echo " + strconv.Itoa(c.FD)
	writeFD(t, c.FD, msg)
	if got := string(c.Early) + readFD(t, c.FD, len(msg)-len(c.Early)); got != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// TestChainNoProxyDirect: with an upstream set, a target NoProxy matches
// and "localhost" (always) go direct: the target sees the dialing socket
// itself, and the upstream is never contacted (a chained dial afterwards
// is the upstream's first connection).
func TestChainNoProxyDirect(t *testing.T) {
	f := startFakeUpstream(t, answer("HTTP/1.1 200 OK\r\n\r\n"))
	target := startEchoTarget(t)
	p := New(Config{Upstream: f.upstream(t, ""), NoProxy: ParseNoProxy("127.0.0.1:" + strconv.Itoa(int(target.port())))})
	defer p.Close()
	for _, host := range []string{"127.0.0.1", "localhost", "LocalHost"} {
		r := dialWait(t, p, host, target.port())
		if r.err != nil {
			t.Fatalf("%s: %v", host, r.err)
		}
		if r.c.Upstream || r.c.Early != nil {
			t.Errorf("%s: Upstream %v, Early %q for a bypassed dial", host, r.c.Upstream, r.c.Early)
		}
		if peer := target.peer(t); peer != r.c.Local {
			t.Errorf("%s: target saw %v, the dial's socket is %v: not direct", host, peer, r.c.Local)
		}
		checkEcho(t, r.c)
		unix.Close(r.c.FD)
	}
	// The list names the target's port only: another port goes upstream.
	r := dialWait(t, p, "127.0.0.1", target.port()+1)
	if r.err != nil {
		t.Fatal(r.err)
	}
	unix.Close(r.c.FD)
	if !r.c.Upstream {
		t.Error("a port the list does not name went direct")
	}
	if h := f.head(t); !strings.HasPrefix(h, "CONNECT 127.0.0.1:"+strconv.Itoa(int(target.port()+1))+" ") {
		t.Errorf("first CONNECT the upstream saw: %q", h)
	}
	if n := f.accepts.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections, want 1 (only the chained dial)", n)
	}
}

func TestKindStrings(t *testing.T) {
	want := map[Kind]string{
		KindClosed:               "closed",
		KindUpstreamDenied:       "upstream-denied",
		KindUpstreamAuth:         "upstream-auth",
		KindUpstreamUnavailable:  "upstream-unavailable",
		KindUpstreamProtocol:     "upstream-protocol",
		KindUpstreamProtocol + 1: "kind(" + strconv.Itoa(int(KindUpstreamProtocol+1)) + ")",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("%d: %q, want %q", k, k.String(), s)
		}
	}
	if KindClosed != 8 || KindUpstreamDenied != 9 {
		t.Error("existing kinds renumbered")
	}
}
