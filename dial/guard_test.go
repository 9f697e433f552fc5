package dial

import (
	"net/netip"
	"testing"
)

func TestGuard(t *testing.T) {
	cases := []struct {
		ip, want string
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"fc00::1", "private"},
		{"169.254.169.254", "link-local"}, // cloud metadata
		{"fe80::1", "link-local"},
		{"100.64.0.1", "cgnat"},
		{"100.127.255.255", "cgnat"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "reserved"},
		{"::ffff:127.0.0.1", "loopback"},         // IPv4-mapped
		{"::ffff:169.254.169.254", "link-local"}, // IPv4-mapped
		{"::ffff:10.0.0.1", "private"},
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of 169.254.169.254
		{"64:ff9b::7f00:1", "loopback"},      // NAT64 of 127.0.0.1
		// Public addresses pass.
		{"93.184.216.34", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"2606:4700::1111", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
	}
	var g Guard
	for _, c := range cases {
		if got := g.Check(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Check(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
	open := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.20.0.0/16")}}
	for ip, want := range map[string]string{
		"127.0.0.1":        "",
		"::ffff:127.0.0.1": "",
		"10.20.1.1":        "",
		"10.21.1.1":        "private",
		"169.254.169.254":  "link-local",
		"::1":              "loopback",
	} {
		if got := open.Check(netip.MustParseAddr(ip)); got != want {
			t.Errorf("with 127/8 and 10.20/16 open: Check(%s) = %q, want %q", ip, got, want)
		}
	}
	if (&Guard{Off: true}).Check(netip.MustParseAddr("127.0.0.1")) != "" {
		t.Error("Off guard refused an address")
	}
}
