package engine

import (
	"crypto/subtle"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
)

// Tenant is one sandbox (or group of sandboxes) served by the engine: a
// named policy and the route its tunnels take.
type Tenant struct {
	// Name identifies the tenant in logs and, on credentials listeners, is
	// the username a client gives.
	Name string
	// Policy decides which hostnames the tenant may reach. Nil denies
	// everything.
	Policy *policy.Policy
	// Route overrides the dial pool's default route (upstream proxy and
	// NO_PROXY) for this tenant; nil uses the default.
	Route *dial.Route
	// Token is the password that selects this tenant on a credentials
	// listener; empty means the tenant cannot be selected that way.
	Token string
	// MaxTunnels bounds the tenant's tunnels open at once (dialing or
	// relaying); zero means no bound but the engine's.
	MaxTunnels int
	// AllowPrivateDest opens address ranges the resolved-address guard
	// refuses by default (loopback, private, link-local, CGNAT,
	// multicast...) for this tenant's direct dials.
	AllowPrivateDest []netip.Prefix

	c     *tenantCounters // set by the engine that serves the tenant
	guard dial.Guard
}

// checkToken compares a client's password with the tenant's token in time
// that does not depend on where they differ.
func (t *Tenant) checkToken(pass []byte) bool {
	if t == nil || t.Token == "" {
		// Still compare, so a wrong tenant name costs what a wrong
		// password does.
		subtle.ConstantTimeCompare(pass, pass)
		return false
	}
	return subtle.ConstantTimeCompare(pass, []byte(t.Token)) == 1
}

// Listener is one address the engine accepts on and who its clients are.
type Listener struct {
	// Address is "host:port" for TCP (port 0 picks one), "unix:/path"
	// for a unix socket, or "fd:N" for a listening socket inherited as
	// descriptor N (systemd socket activation).
	Address string
	// Tenant names the tenant of every client of this listener. It is
	// ignored when Credentials is set.
	Tenant string
	// Credentials makes clients name their tenant: RFC 1929
	// username/password for SOCKS5 (username = tenant, password = its
	// token), Proxy-Authorization Basic for HTTP CONNECT.
	Credentials bool
	// Mode is the file mode of a unix socket; zero means 0600.
	Mode os.FileMode
}

func (l Listener) isUnix() bool { return strings.HasPrefix(l.Address, "unix:") }

// singleSocket reports whether l is served by one socket on one loop (a
// unix socket or an inherited one) rather than one per loop.
func (l Listener) singleSocket() bool {
	_, inh := l.inherited()
	return l.isUnix() || inh
}

// inherited returns the descriptor of an "fd:N" listener.
func (l Listener) inherited() (int, bool) {
	n, ok := strings.CutPrefix(l.Address, "fd:")
	if !ok {
		return -1, false
	}
	fd, err := strconv.Atoi(n)
	if err != nil || fd < 3 {
		return -1, false
	}
	return fd, true
}

func (l Listener) unixPath() string { return strings.TrimPrefix(l.Address, "unix:") }

// tenantSet is an immutable set of tenants by name, swapped whole on
// reload.
type tenantSet struct {
	byName map[string]*Tenant
}

func newTenantSet(tenants []*Tenant) (*tenantSet, error) {
	ts := &tenantSet{byName: make(map[string]*Tenant, len(tenants))}
	for _, t := range tenants {
		if t == nil || t.Name == "" {
			return nil, fmt.Errorf("engine: a tenant has no name")
		}
		if _, dup := ts.byName[t.Name]; dup {
			return nil, fmt.Errorf("engine: tenant %q defined twice", t.Name)
		}
		ts.byName[t.Name] = t
	}
	return ts, nil
}

// checkListeners validates listeners against the tenants they name.
func checkListeners(ls []Listener, ts *tenantSet) error {
	seen := make(map[string]bool, len(ls))
	for _, l := range ls {
		if l.Address == "" {
			return fmt.Errorf("engine: a listener has no address")
		}
		if seen[l.Address] && !strings.HasSuffix(l.Address, ":0") {
			return fmt.Errorf("engine: listener %q given twice", l.Address)
		}
		seen[l.Address] = true
		if strings.HasPrefix(l.Address, "fd:") {
			if _, ok := l.inherited(); !ok {
				return fmt.Errorf("engine: listener %q: want fd:N with N >= 3, an inherited descriptor", l.Address)
			}
		}
		if l.isUnix() && !strings.HasPrefix(l.unixPath(), "/") {
			return fmt.Errorf("engine: listener %q: a unix socket path must be absolute", l.Address)
		}
		if !l.Credentials {
			if _, ok := ts.byName[l.Tenant]; !ok {
				return fmt.Errorf("engine: listener %q names tenant %q, which is not defined", l.Address, l.Tenant)
			}
		}
	}
	return nil
}
