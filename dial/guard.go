package dial

import "net/netip"

// The resolved-address guard. An allowed hostname must not become a way
// into the proxy host's own services, its private networks or the cloud
// metadata endpoint: whatever a name resolves to, a direct dial refuses
// these destinations unless the operator opened a range on purpose.

// guardedRange is one range the guard refuses, with the name logs give it.
type guardedRange struct {
	prefix netip.Prefix
	name   string
}

var guarded = func() []guardedRange {
	var out []guardedRange
	add := func(name string, prefixes ...string) {
		for _, p := range prefixes {
			out = append(out, guardedRange{netip.MustParsePrefix(p), name})
		}
	}
	add("unspecified", "0.0.0.0/8", "::/128")
	add("loopback", "127.0.0.0/8", "::1/128")
	add("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
	add("link-local", "169.254.0.0/16", "fe80::/10")
	add("cgnat", "100.64.0.0/10")
	add("multicast", "224.0.0.0/4", "ff00::/8")
	add("reserved", "240.0.0.0/4") // includes 255.255.255.255
	return out
}()

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach
// the IPv4 address in their last 32 bits through a translator.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Guard decides which resolved addresses a direct dial may connect to.
// The zero value refuses every guarded range.
type Guard struct {
	// Allow lists ranges opened on purpose (--allow-private-dest); an
	// address in one of them is never refused.
	Allow []netip.Prefix
	// Off turns the guard off entirely.
	Off bool
}

// Check returns "" if ip may be dialed, else the name of the guarded range
// it is in ("loopback", "private", "link-local", ...). IPv4-mapped IPv6
// and NAT64 addresses are judged by the IPv4 address they carry.
func (g *Guard) Check(ip netip.Addr) string {
	if g != nil && g.Off {
		return ""
	}
	ip = ip.Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	ip = ip.WithZone("")
	if g != nil {
		for _, p := range g.Allow {
			if p.Contains(ip) {
				return ""
			}
		}
	}
	for _, r := range guarded {
		if r.prefix.Contains(ip) {
			return r.name
		}
	}
	return ""
}
