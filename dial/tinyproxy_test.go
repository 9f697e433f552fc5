package dial

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/internal/testutil"
)

func tpUpstream(t *testing.T, tp *testutil.Tinyproxy, userinfo string) *Upstream {
	t.Helper()
	u, err := ParseUpstream("http://" + userinfo + tp.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func closedPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func connectLine(port uint16) string {
	return "CONNECT 127.0.0.1:" + strconv.Itoa(int(port)) + " HTTP/1.1"
}

// TestTinyproxyChain: a tunnel through a real tinyproxy to an in-process
// echo target works end to end, and tinyproxy's refusals map to kinds.
// The target is the literal "127.0.0.1": tinyproxy resolves names itself,
// and "localhost" never goes upstream.
func TestTinyproxyChain(t *testing.T) {
	target := startEchoTarget(t)
	dead := closedPort(t)
	tp := testutil.StartTinyproxy(t, []uint16{target.port(), dead})
	p := New(Config{Upstream: tpUpstream(t, tp, "")})
	defer p.Close()

	r := dialWait(t, p, "127.0.0.1", target.port())
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer unix.Close(r.c.FD)
	if !r.c.Upstream || r.c.Remote.String() != tp.Addr {
		t.Errorf("Upstream %v, Remote %v; want the tunnel through %s", r.c.Upstream, r.c.Remote, tp.Addr)
	}
	if peer := target.peer(t); peer == r.c.Local {
		t.Errorf("target saw the dialing socket %v itself: not chained", peer)
	}
	checkEcho(t, r.c)
	checkEcho(t, r.c)
	tp.WaitLog(t, connectLine(target.port()))

	t.Run("port not in ConnectPort", func(t *testing.T) {
		port := target.port() + 1
		for port == 0 || port == dead {
			port++
		}
		r := dialWait(t, p, "127.0.0.1", port)
		if KindOf(r.err) != KindUpstreamDenied {
			t.Fatalf("%v, want upstream-denied (tinyproxy's 403)", r.err)
		}
	})
	t.Run("target refuses", func(t *testing.T) {
		// tinyproxy answers "500 Unable to connect" for any connect
		// failure, which is neither 502 nor 504.
		r := dialWait(t, p, "127.0.0.1", dead)
		if KindOf(r.err) != KindUpstreamProtocol || !strings.Contains(r.err.Error(), "status 500") {
			t.Fatalf("%v, want upstream-protocol: status 500", r.err)
		}
	})
}

// TestTinyproxyNoProxy: a target the NO_PROXY list names goes direct
// although an upstream is set, shown by tinyproxy's log: it records only
// the chained dial that follows.
func TestTinyproxyNoProxy(t *testing.T) {
	direct, chained := startEchoTarget(t), startEchoTarget(t)
	tp := testutil.StartTinyproxy(t, []uint16{direct.port(), chained.port()})
	p := New(Config{
		Upstream: tpUpstream(t, tp, ""),
		NoProxy:  ParseNoProxy("example.test, 127.0.0.1:" + strconv.Itoa(int(direct.port()))),
	})
	defer p.Close()

	for _, host := range []string{"127.0.0.1", "localhost"} {
		r := dialWait(t, p, host, direct.port())
		if r.err != nil {
			t.Fatalf("%s: %v", host, r.err)
		}
		if r.c.Upstream {
			t.Errorf("%s: went upstream", host)
		}
		if peer := direct.peer(t); peer != r.c.Local {
			t.Errorf("%s: target saw %v, the dial's socket is %v", host, peer, r.c.Local)
		}
		checkEcho(t, r.c)
		unix.Close(r.c.FD)
	}
	r := dialWait(t, p, "127.0.0.1", chained.port())
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.c.Upstream {
		t.Error("a target not on the list went direct")
	}
	checkEcho(t, r.c)
	unix.Close(r.c.FD)

	log := tp.WaitLog(t, connectLine(chained.port()))
	if strings.Contains(log, connectLine(direct.port())) {
		t.Errorf("tinyproxy saw the bypassed target:\n%s", log)
	}
	if n := strings.Count(log, "Request (file descriptor"); n != 1 {
		t.Errorf("tinyproxy logged %d requests, want 1 (the chained dial):\n%s", n, log)
	}
}

// TestTinyproxyBasicAuth: tinyproxy with BasicAuth refuses a CONNECT
// without credentials (407) or with wrong ones (tinyproxy answers 401),
// both KindUpstreamAuth, and tunnels with the right ones, given
// percent-encoded in the URL.
func TestTinyproxyBasicAuth(t *testing.T) {
	target := startEchoTarget(t)
	// tinyproxy's config grammar takes only a few characters in
	// BasicAuth: letters, digits, '.', '-', '_'.
	tp := testutil.StartTinyproxy(t, []uint16{target.port()}, "BasicAuth fastsocks p.ss-w_rd")

	cases := []struct {
		name, userinfo string
		text           string
	}{
		{"none", "", "set user:pass in the upstream URL"},
		{"wrong", "fastsocks:nope@", "check the user:pass"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := New(Config{Upstream: tpUpstream(t, tp, c.userinfo)})
			defer p.Close()
			r := dialWait(t, p, "127.0.0.1", target.port())
			if r.err == nil {
				unix.Close(r.c.FD)
				t.Fatal("tunnel opened without the right credentials")
			}
			var de *Error
			if !errors.As(r.err, &de) || de.Kind != KindUpstreamAuth || !de.Upstream {
				t.Fatalf("%v, want upstream-auth", r.err)
			}
			if !strings.Contains(r.err.Error(), c.text) || strings.Contains(r.err.Error(), "nope") {
				t.Errorf("error %q, want %q and no password", r.err, c.text)
			}
		})
	}
	t.Run("right", func(t *testing.T) {
		p := New(Config{Upstream: tpUpstream(t, tp, "fastsocks:p%2Ess-w_rd@")})
		defer p.Close()
		r := dialWait(t, p, "127.0.0.1", target.port())
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer unix.Close(r.c.FD)
		if !r.c.Upstream {
			t.Error("not chained")
		}
		checkEcho(t, r.c)
	})
}
