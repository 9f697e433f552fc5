package dial

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// NoProxy is a parsed NO_PROXY list: the targets that go direct even when
// an upstream proxy is set. The zero value bypasses nothing but localhost
// (see Bypass).
type NoProxy struct {
	all     bool
	entries []noProxyEntry
}

type noProxyEntry struct {
	name string     // lowercased, no leading or trailing dot
	port uint16     // 0: any port
	ip   netip.Addr // valid if the entry is an IP literal: matched exactly
}

// ParseNoProxy parses a comma-separated NO_PROXY list. Entries are trimmed
// and lowercased; empty entries are ignored; "*" bypasses everything.
//
//   - "example.com", ".example.com" and "*.example.com" all match
//     example.com and every name under it, but not evilexample.com.
//   - "host:port" (or "[v6]:port") matches that port only.
//   - IP literals ("10.1.2.3", "::1") match that literal target only.
//     CIDR entries ("10.0.0.0/8") are accepted but kept as literal names:
//     targets here are host names, so such an entry matches nothing.
//
// One trailing dot on an entry is ignored. Nothing in the list is an error:
// an entry that cannot match anything is kept and never matches.
func ParseNoProxy(s string) NoProxy {
	var n NoProxy
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if f == "*" {
			n.all = true
			continue
		}
		e := noProxyEntry{name: f}
		if h, p, err := net.SplitHostPort(f); err == nil {
			if pn, err := strconv.ParseUint(p, 10, 16); err == nil && pn > 0 {
				e.name, e.port = h, uint16(pn)
			}
		} else if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			e.name = f[1 : len(f)-1]
		}
		e.name = strings.TrimSuffix(e.name, ".")
		if a, err := netip.ParseAddr(e.name); err == nil {
			e.name, e.ip = a.String(), a.Unmap()
		} else {
			e.name = strings.TrimPrefix(e.name, "*")
			e.name = strings.TrimLeft(e.name, ".")
		}
		if e.name == "" {
			continue
		}
		n.entries = append(n.entries, e)
	}
	return n
}

// NoProxyFromEnv parses the first non-empty of NO_PROXY and no_proxy.
// getenv is os.Getenv in production.
func NoProxyFromEnv(getenv func(string) string) NoProxy {
	for _, name := range noProxyEnv {
		if v := getenv(name); strings.TrimSpace(v) != "" {
			return ParseNoProxy(v)
		}
	}
	return NoProxy{}
}

// Bypass reports whether a dial to host:port goes direct rather than
// through the upstream proxy. "localhost" and names under ".localhost"
// always go direct, whatever the list says. Matching is case-insensitive
// and ignores one trailing dot on host.
func (n NoProxy) Bypass(host string, port uint16) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || n.all {
		return true
	}
	ip, ipErr := netip.ParseAddr(h)
	for _, e := range n.entries {
		if e.port != 0 && e.port != port {
			continue
		}
		if e.ip.IsValid() {
			if ipErr == nil && ip.Unmap() == e.ip {
				return true
			}
			continue
		}
		if h == e.name || strings.HasSuffix(h, e.name) && h[len(h)-len(e.name)-1] == '.' {
			return true
		}
	}
	return false
}

// String returns the list as parsed, for logs.
func (n NoProxy) String() string {
	var b strings.Builder
	if n.all {
		b.WriteString("*")
	}
	for _, e := range n.entries {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if e.port != 0 {
			b.WriteString(net.JoinHostPort(e.name, strconv.Itoa(int(e.port))))
		} else {
			b.WriteString(e.name)
		}
	}
	return b.String()
}
