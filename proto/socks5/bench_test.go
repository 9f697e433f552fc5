package socks5

import (
	"net/netip"
	"testing"
)

func BenchmarkParseGreeting(b *testing.B) {
	msg := AppendGreeting(nil, MethodGSSAPI, MethodUserPass, MethodNoAuth)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		g, _, err := ParseGreeting(msg)
		if err != nil || !g.Offers(MethodNoAuth) {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  []byte
	}{
		{"domain", AppendRequest(nil, CmdConnect, "registry.npmjs.org", 443)},
		{"domain255", AppendRequest(nil, CmdConnect, host255, 443)},
		{"refused", appendLiteralRequest(nil, CmdConnect, AddrIPv4, netip.MustParseAddr("192.0.2.1"), 443)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseRequest(bc.msg); err != nil && err != ErrIPLiteral {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseUserPass(b *testing.B) {
	msg := AppendUserPass(nil, "sandbox-42", "correct horse battery staple")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseUserPass(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendReply(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rep   ReplyCode
		bound netip.AddrPort
	}{
		{"ipv4", RepSucceeded, netip.MustParseAddrPort("10.1.2.3:54321")},
		{"ipv6", RepSucceeded, netip.MustParseAddrPort("[2001:db8::7]:54321")},
		{"failure", RepNotAllowed, netip.AddrPort{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 32)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendReply(buf[:0], bc.rep, bc.bound)
			}
		})
	}
}
