package engine

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// startFarm starts an engine with explicit listeners and tenants.
func startFarm(t *testing.T, ls []Listener, ts []*Tenant, tweak func(*Config)) *testProxy {
	t.Helper()
	return startProxy(t, nil, func(c *Config) {
		c.Listeners, c.Tenants = ls, ts
		if tweak != nil {
			tweak(c)
		}
	})
}

func tenant(name string, allow ...string) *Tenant {
	return &Tenant{Name: name, Policy: policy.MustNew(allow, nil), AllowPrivateDest: loopbackOK}
}

// unixConn connects to a unix socket listener.
func unixConn(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTwoTenantsOnUnixSockets: each sandbox's socket applies its own
// tenant's allow list, checked with the x/net client and with curl.
func TestTwoTenantsOnUnixSockets(t *testing.T) {
	web := startTarget(t, func(c *net.TCPConn) {
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	dir := t.TempDir()
	a, b := filepath.Join(dir, "sbx-a.sock"), filepath.Join(dir, "sbx-b.sock")
	p := startFarm(t, []Listener{
		{Address: "unix:" + a, Tenant: "a"},
		{Address: "unix:" + b, Tenant: "b"},
	}, []*Tenant{tenant("a", "localhost"), tenant("b", "example.org")}, nil)

	for path, wantOK := range map[string]bool{a: true, b: false} {
		d, err := proxy.SOCKS5("unix", path, nil, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Dial("tcp", net.JoinHostPort("localhost", strconv.Itoa(int(web.port))))
		if (err == nil) != wantOK {
			t.Fatalf("%s: dial localhost: err %v, want success %v", path, err, wantOK)
		}
		if c != nil {
			c.Close()
		}
	}
	if !waitFor(2*time.Second, func() bool { return strings.Contains(p.log.String(), "tenant=b") }) {
		t.Errorf("refusal log line does not name tenant b:\n%s", p.log)
	}

	curl := curlPath(t)
	url := "http://localhost:" + strconv.Itoa(int(web.port)) + "/"
	// curl takes a unix-socket SOCKS proxy as socks5h://localhost/PATH
	// (curl 7.84 and later; Debian 12 has 7.88).
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "-x", "socks5h://localhost"+a, url).CombinedOutput()
	if err != nil || string(out) != "ok" {
		t.Fatalf("curl via tenant a's socket: %v: %s", err, out)
	}
	if out, err := exec.Command(curl, "-sS", "--max-time", "10", "-x", "socks5h://localhost"+b, url).CombinedOutput(); err == nil {
		t.Fatalf("curl via tenant b's socket reached a host b may not: %s", out)
	}
}

func TestUnixSocketFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	// A stale socket: bound once, nobody accepting now.
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	live := filepath.Join(dir, "live.sock")
	liveLn, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer liveLn.Close()
	plain := filepath.Join(dir, "plain.file")
	os.WriteFile(plain, []byte("not a socket"), 0o644)

	for _, c := range []struct {
		path, want string
	}{
		{live, "in use"},
		{plain, "not a socket"},
		{filepath.Join(dir, "missing", "x.sock"), "does " + filepath.Join(dir, "missing") + " exist"},
	} {
		_, err := Start(Config{Listeners: []Listener{{Address: "unix:" + c.path, Tenant: "a"}}, Tenants: []*Tenant{tenant("a")}, Logger: discardLogger()})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("listen on %s: err %v, want it to say %q", c.path, err, c.want)
		}
	}
	if b, _ := os.ReadFile(plain); string(b) != "not a socket" {
		t.Fatal("a regular file was replaced")
	}

	p := startFarm(t, []Listener{{Address: "unix:" + stale, Tenant: "a", Mode: 0o660}}, []*Tenant{tenant("a")}, nil)
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file: %v, mode %v; want a socket with mode 0660", err, fi.Mode())
	}
	greet(t, unixConn(t, stale))
	p.e.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 { // live.sock, plain.file
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("files left in the socket directory: %v", names)
	}
}

// TestCredentialsSelectTenant: on a credentials listener the RFC 1929
// username names the tenant and the password is its token.
func TestCredentialsSelectTenant(t *testing.T) {
	tg := startTarget(t, echoHandler)
	a := &Tenant{Name: "sbx-a", Policy: policy.MustNew([]string{"localhost"}, nil), Token: "tok-a"}
	b := &Tenant{Name: "sbx-b", Policy: policy.MustNew([]string{"example.org"}, nil), Token: "tok-b"}
	p := startFarm(t, []Listener{{Address: "127.0.0.1:0", Credentials: true}}, []*Tenant{a, b}, nil)

	auth := func(user, pass string) (net.Conn, []byte) {
		c := dialProxy(t, p)
		write(t, c, []byte{0x05, 0x01, 0x02})
		if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0x02}) {
			t.Fatalf("method %x, want 05 02", got)
		}
		write(t, c, socks5.AppendUserPass(nil, user, pass))
		return c, readN(t, c, 2)
	}
	c, st := auth("sbx-a", "tok-a")
	if !bytes.Equal(st, []byte{0x01, 0x00}) {
		t.Fatalf("right credentials: status % x", st)
	}
	write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, "localhost", tg.port))
	if rep := readReply(t, c); rep != socks5.RepSucceeded {
		t.Fatalf("tenant a to localhost: REP %v", rep)
	}
	write(t, c, []byte("a"))
	readN(t, c, 1)

	c, st = auth("sbx-b", "tok-b")
	if !bytes.Equal(st, []byte{0x01, 0x00}) {
		t.Fatalf("tenant b: status % x", st)
	}
	write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, "localhost", tg.port))
	if rep := readReply(t, c); rep != socks5.RepNotAllowed {
		t.Fatalf("tenant b to localhost: REP %v, want not allowed (b's policy)", rep)
	}

	for _, bad := range [][2]string{{"sbx-a", "tok-b"}, {"sbx-a", ""}, {"nobody", "tok-a"}, {"sbx-b", "tok-b-but-longer"}} {
		if bad[1] == "" {
			continue // RFC 1929 has no empty password; the codec refuses it
		}
		c, st := auth(bad[0], bad[1])
		if !bytes.Equal(st, []byte{0x01, 0x01}) {
			t.Fatalf("%v: status % x, want 01 01", bad, st)
		}
		expectClosed(t, c, 5*time.Second)
	}

	// No-auth only, on a credentials listener: 05 FF.
	c = dialProxy(t, p)
	write(t, c, []byte{0x05, 0x01, 0x00})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0xFF}) {
		t.Fatalf("no-auth on a credentials listener: % x, want 05 ff", got)
	}

	// HTTP CONNECT names the tenant with Proxy-Authorization: Basic.
	h := dialProxy(t, p)
	cred := base64.StdEncoding.EncodeToString([]byte("sbx-a:tok-a"))
	write(t, h, []byte(fmt.Sprintf("CONNECT localhost:%d HTTP/1.1\r\nProxy-Authorization: Basic %s\r\n\r\n", tg.port, cred)))
	want := "HTTP/1.1 200 Connection Established\r\n\r\n"
	if got := readN(t, h, len(want)); string(got) != want {
		t.Fatalf("HTTP with credentials: %q", got)
	}
	r := httpExchange(t, p, fmt.Sprintf("CONNECT localhost:%d HTTP/1.1\r\n\r\n", tg.port))
	if r.StatusCode != http.StatusProxyAuthRequired || r.Header.Get("Proxy-Authenticate") == "" {
		t.Fatalf("HTTP without credentials: %d %v, want 407 with Proxy-Authenticate", r.StatusCode, r.Header)
	}
}

// TestReloadKeepsTunnels: with 100 tunnels open, a reload changes the
// allow list and adds a listener; every tunnel keeps working, new requests
// see the new policy, and a reload that cannot apply changes nothing.
func TestReloadKeepsTunnels(t *testing.T) {
	tg := startTarget(t, echoHandler)
	ls := []Listener{{Address: "127.0.0.1:0", Tenant: "a"}}
	p := startFarm(t, ls, []*Tenant{tenant("a", "localhost")}, nil)
	ls[0].Address = p.addr // keep this listener across the reload

	var conns []*net.TCPConn
	for i := 0; i < 100; i++ {
		conns = append(conns, tunnelTo(t, p, tg.port))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	stop := make(chan struct{})
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *net.TCPConn) {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("tunnel %03d", i))
			buf := make([]byte, len(msg))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
					errs <- fmt.Errorf("tunnel %d: %q %v", i, buf, err)
					return
				}
			}
		}(i, c)
	}

	// A reload that cannot apply: a listener naming a missing tenant.
	bad := append([]Listener{}, ls...)
	bad = append(bad, Listener{Address: "127.0.0.1:0", Tenant: "ghost"})
	if err := p.e.Reload(bad, []*Tenant{tenant("a", "example.org")}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("bad reload: %v", err)
	}
	if rep := connect(t, dialProxy(t, p), "localhost", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("after a failed reload the old policy must still apply: REP %v", rep)
	}
	if len(p.e.Addrs()) != 1 {
		t.Fatalf("a failed reload added listeners: %v", p.e.Addrs())
	}

	// The real reload: localhost is no longer allowed, a second listener
	// appears for tenant b.
	dir := t.TempDir()
	sock := filepath.Join(dir, "b.sock")
	next := append([]Listener{}, ls...)
	next = append(next, Listener{Address: "unix:" + sock, Tenant: "b"})
	if err := p.e.Reload(next, []*Tenant{tenant("a", "example.org"), tenant("b", "localhost")}); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if rep := connect(t, dialProxy(t, p), "localhost", tg.port); rep != socks5.RepNotAllowed {
		t.Fatalf("new request after reload: REP %v, want not allowed", rep)
	}
	c := unixConn(t, sock)
	if rep := connect(t, c, "localhost", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("new listener for tenant b: REP %v", rep)
	}
	if n := len(p.e.Addrs()); n != 2 {
		t.Fatalf("%d listeners after reload, want 2", n)
	}
	// The old tunnels keep flowing for a while after the reload.
	time.Sleep(200 * time.Millisecond) // a measured interval of traffic, not a readiness wait
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a tunnel broke across the reload: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}

	// Removing the unix listener closes it and removes its file.
	if err := p.e.Reload(ls, []*Tenant{tenant("a", "example.org")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("removed listener's socket file still there: %v", err)
	}
}
