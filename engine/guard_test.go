package engine

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/internal/testutil"
	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

const netnsChildEnv = "FASTSOCKS_NETNS_CHILD"

// TestResolvedAddressGuard runs in a network namespace of its own (a
// re-run of this test binary with CLONE_NEWNET): only loopback exists
// there, so even if the guard failed, no packet could reach the metadata
// address it is asked for.
func TestResolvedAddressGuard(t *testing.T) {
	if os.Getenv(netnsChildEnv) == "1" {
		upLoopback(t)
		guardChecks(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestResolvedAddressGuard$", "-test.v")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("a network namespace needs root (CLONE_NEWNET): %v", err)
		}
		t.Fatalf("guard checks in a network namespace: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// upLoopback brings up lo in a new network namespace.
func upLoopback(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
}

func guardChecks(t *testing.T) {
	tg := startTarget(t, echoHandler)
	var queries atomic.Int64
	res := testutil.Resolver(map[string][]netip.Addr{
		"loop.test":   {netip.MustParseAddr("127.0.0.1")},
		"meta.test":   {netip.MustParseAddr("169.254.169.254")},
		"mapped.test": {netip.MustParseAddr("::ffff:169.254.169.254")},
		"nat64.test":  {netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
		"ula.test":    {netip.MustParseAddr("fd12::1")},
	}, &queries)
	pool := newPool(t, dial.Config{Resolver: res})
	tenants := []*Tenant{
		// The default: every guarded range refused.
		{Name: "closed", Policy: policy.MustNew([]string{"**.test"}, nil), AllowPrivateDest: []netip.Prefix{}},
		// Loopback opened on purpose (what tests and the bench do).
		{Name: "lo", Policy: policy.MustNew([]string{"**.test"}, nil), AllowPrivateDest: loopbackOK},
	}
	p := startFarm(t, []Listener{{Address: "127.0.0.1:0", Tenant: "closed"}, {Address: "127.0.0.1:0", Tenant: "lo"}}, tenants,
		func(c *Config) { c.Dialer = pool })
	closed := &testProxy{e: p.e, addr: p.e.Addrs()[0].String(), log: p.log}
	lo := &testProxy{e: p.e, addr: p.e.Addrs()[1].String(), log: p.log}

	for _, host := range []string{"loop.test", "meta.test", "mapped.test", "nat64.test", "ula.test"} {
		if rep := connect(t, dialProxy(t, closed), host, tg.port); rep != socks5.RepNotAllowed {
			t.Errorf("%s with the guard closed: REP %v, want not allowed", host, rep)
		}
	}
	r := httpExchange(t, closed, fmt.Sprintf("CONNECT meta.test:%d HTTP/1.1\r\n\r\n", tg.port))
	if r.StatusCode != http.StatusForbidden || r.Header.Get("X-Proxy-Error") != "blocked-destination" {
		t.Errorf("HTTP to the metadata address: %d %q, want 403 blocked-destination", r.StatusCode, r.Header.Get("X-Proxy-Error"))
	}
	if !waitFor(2e9, func() bool { return contains(p.log.String(), "reason=blocked-destination") }) {
		t.Errorf("no decision-log line for the guard:\n%s", p.log)
	}

	// Loopback opened: the loopback name works, metadata stays shut.
	before := queries.Load()
	c := dialProxy(t, lo)
	if rep := connect(t, c, "loop.test", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("loop.test with 127/8 open: REP %v", rep)
	}
	write(t, c, []byte("ok"))
	if got := readN(t, c, 2); string(got) != "ok" {
		t.Fatalf("echo %q", got)
	}
	// One lookup (A and AAAA) per request: the address checked is the
	// address dialed, with no second lookup to rebind between them.
	if n := queries.Load() - before; n != 2 {
		t.Errorf("%d DNS questions for one request, want 2 (A and AAAA, once)", n)
	}
	for _, host := range []string{"meta.test", "mapped.test", "nat64.test"} {
		if rep := connect(t, dialProxy(t, lo), host, tg.port); rep != socks5.RepNotAllowed {
			t.Errorf("%s with only 127/8 open: REP %v, want not allowed", host, rep)
		}
	}
}
