package socks5

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// checkFraming asserts the parsing contract every parser shares, for any
// input b:
//   - 0 <= n <= len(b);
//   - ErrShort comes with n == 0, and every prefix of a short input is
//     short too;
//   - any other error is one of the parser's sentinel *Error values, with
//     n >= 1;
//   - a framed result (nil or *Error) depends on b[:n] alone: b[:n] gives
//     the same result, b[:n] plus other trailing bytes gives the same result,
//     and every strict prefix of b[:n] is ErrShort.
func checkFraming(t *testing.T, parse func([]byte) (int, error), b []byte, sentinels ...*Error) (int, error) {
	t.Helper()
	n, err := parse(b)
	if n < 0 || n > len(b) {
		t.Fatalf("parse(% x): n = %d, outside 0..%d", b, n, len(b))
	}
	if err == ErrShort {
		if n != 0 {
			t.Fatalf("parse(% x): ErrShort with n = %d", b, n)
		}
		for k := range len(b) {
			if n, err := parse(b[:k]); err != ErrShort || n != 0 {
				t.Fatalf("parse(% x) is ErrShort but its %d-byte prefix gives %d, %v", b, k, n, err)
			}
		}
		return n, err
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !slices.Contains(sentinels, e) {
			t.Fatalf("parse(% x): err %#v is not one of this parser's sentinels", b, err)
		}
	}
	if n < 1 {
		t.Fatalf("parse(% x): framed result (err %v) with n = %d", b, err, n)
	}
	if n2, err2 := parse(b[:n]); n2 != n || err2 != err {
		t.Fatalf("parse(% x) = %d, %v but parse(b[:n]) = %d, %v", b, n, err, n2, err2)
	}
	for _, tail := range [][]byte{{0x00}, {0x05, 0x01, 0x00, 0x03}, bytes.Repeat([]byte{0xFF}, 300)} {
		if n2, err2 := parse(append(b[:n:n], tail...)); n2 != n || err2 != err {
			t.Fatalf("parse(% x) = %d, %v but with other trailing bytes %d, %v", b, n, err, n2, err2)
		}
	}
	for k := range n {
		if n2, err2 := parse(b[:k]); err2 != ErrShort || n2 != 0 {
			t.Fatalf("parse(% x) frames %d bytes but its %d-byte prefix gives %d, %v", b, n, k, n2, err2)
		}
	}
	return n, err
}

// withRSV returns a copy of msg with byte 2 (RSV) set to rsv.
func withRSV(msg []byte, rsv byte) []byte {
	c := slices.Clone(msg)
	c[2] = rsv
	return c
}

func FuzzParseGreeting(f *testing.F) {
	f.Add(AppendGreeting(nil))
	f.Add(AppendGreeting(nil, MethodNoAuth))
	f.Add(AppendGreeting(nil, MethodGSSAPI, MethodUserPass, MethodNoAuth, MethodNoAcceptable))
	f.Add(append(AppendGreeting(nil, MethodNoAuth), AppendRequest(nil, CmdConnect, "example.com", 443)...))
	f.Add([]byte{0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, n, err := ParseGreeting(b); return n, err }
		n, err := checkFraming(t, parse, b, ErrVersion)
		g, _, _ := ParseGreeting(b)
		switch err {
		case nil:
			methods := make([]Method, len(g.Methods))
			for i, m := range g.Methods {
				methods[i] = Method(m)
			}
			if enc := AppendGreeting(nil, methods...); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoded greeting % x != consumed % x", enc, b[:n])
			}
			if g.Offers(MethodNoAuth) != (bytes.IndexByte(g.Methods, 0x00) >= 0) {
				t.Fatalf("Offers(MethodNoAuth) disagrees with Methods % x", g.Methods)
			}
		case ErrVersion:
			if b[0] == Version || n != 1 {
				t.Fatalf("ErrVersion for % x with n %d", b, n)
			}
		}
	})
}

// appendLiteralRequest encodes a request with an IPv4 or IPv6 address, which
// AppendRequest (DOMAIN only) does not.
func appendLiteralRequest(b []byte, cmd Command, atyp AddrType, addr netip.Addr, port uint16) []byte {
	b = append(b, Version, byte(cmd), 0x00, byte(atyp))
	b = append(b, addr.AsSlice()...)
	return append(b, byte(port>>8), byte(port))
}

func FuzzParseRequest(f *testing.F) {
	f.Add(AppendRequest(nil, CmdConnect, "example.com", 443))
	f.Add(AppendRequest(nil, CmdConnect, host255, 65535))
	f.Add(AppendRequest(nil, CmdBind, "example.com", 80))
	f.Add(AppendRequest(nil, CmdUDPAssociate, "", 0))
	f.Add(AppendRequest(nil, CmdConnect, "", 443))
	f.Add(AppendRequest(nil, CmdConnect, "a b\x00\x7f\x80", 443))
	f.Add(withRSV(AppendRequest(nil, CmdConnect, "x", 1), 0xFF))
	f.Add(append(AppendRequest(nil, CmdConnect, "github.com", 443), "\x16\x03\x01"...))
	f.Add(appendLiteralRequest(nil, CmdConnect, AddrIPv4, netip.MustParseAddr("1.2.3.4"), 443))
	f.Add(appendLiteralRequest(nil, CmdConnect, AddrIPv6, netip.MustParseAddr("2001:db8::1"), 443))
	for _, tt := range requestTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, n, err := ParseRequest(b); return n, err }
		n, err := checkFraming(t, parse, b,
			ErrRequestVersion, ErrAddrType, ErrCommandNotSupported, ErrIPLiteral, ErrEmptyDomain, ErrDomainByte)
		if err == ErrShort {
			return
		}
		r, _, _ := ParseRequest(b)
		printable := !slices.ContainsFunc(r.Host, func(c byte) bool { return c < 0x21 || c > 0x7e })
		// The error agrees with the documented order of checks.
		var want error
		switch {
		case b[0] != Version:
			want = ErrRequestVersion
		case r.AddrType != AddrIPv4 && r.AddrType != AddrIPv6 && r.AddrType != AddrDomain:
			want = ErrAddrType
		case r.Cmd != CmdConnect:
			want = ErrCommandNotSupported
		case r.AddrType != AddrDomain:
			want = ErrIPLiteral
		case len(r.Host) == 0:
			want = ErrEmptyDomain
		case !printable:
			want = ErrDomainByte
		}
		if err != want {
			t.Fatalf("ParseRequest(% x) = %v, want %v", b, err, want)
		}
		if err == ErrRequestVersion || err == ErrAddrType {
			return // not framed: nothing to re-encode
		}
		// Re-encode what parsed; RSV is ignored, so compare with it zeroed.
		var enc []byte
		if r.AddrType == AddrDomain {
			enc = AppendRequest(nil, r.Cmd, string(r.Host), r.Port)
		} else {
			enc = appendLiteralRequest(nil, r.Cmd, r.AddrType, r.Addr, r.Port)
		}
		if consumed := withRSV(b[:n], 0); !bytes.Equal(enc, consumed) {
			t.Fatalf("re-encoded request % x != consumed % x (RSV zeroed)", enc, consumed)
		}
	})
}

func FuzzParseUserPass(f *testing.F) {
	f.Add(AppendUserPass(nil, "alice", "s3cr3t"))
	f.Add(AppendUserPass(nil, "", "p"))
	f.Add(AppendUserPass(nil, "u", ""))
	f.Add(append(AppendUserPass(nil, "u", "p"), AppendRequest(nil, CmdConnect, "example.com", 443)...))
	f.Add([]byte{0x05, 0x01, 0x00, 0x03})
	for _, tt := range userPassTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, n, err := ParseUserPass(b); return n, err }
		n, err := checkFraming(t, parse, b, ErrUserPassVersion, ErrEmptyUser, ErrEmptyPass)
		u, _, _ := ParseUserPass(b)
		switch err {
		case ErrShort:
			return
		case ErrUserPassVersion:
			if b[0] == UserPassVersion || n != 1 {
				t.Fatalf("ErrUserPassVersion for % x with n %d", b, n)
			}
			return
		case ErrEmptyUser:
			if len(u.User) != 0 {
				t.Fatalf("ErrEmptyUser with user %q", u.User)
			}
		case ErrEmptyPass:
			if len(u.User) == 0 || len(u.Pass) != 0 {
				t.Fatalf("ErrEmptyPass with user %q, pass %q", u.User, u.Pass)
			}
		case nil:
			if len(u.User) == 0 || len(u.Pass) == 0 {
				t.Fatalf("accepted an empty field: user %q, pass %q", u.User, u.Pass)
			}
		}
		if enc := AppendUserPass(nil, string(u.User), string(u.Pass)); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded userpass % x != consumed % x", enc, b[:n])
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add(AppendReply(nil, RepSucceeded, netip.MustParseAddrPort("10.0.0.1:54321")))
	f.Add(AppendReply(nil, RepSucceeded, netip.MustParseAddrPort("[2001:db8::1]:443")))
	f.Add(AppendReply(nil, RepNotAllowed, netip.AddrPort{}))
	f.Add(append(AppendReply(nil, RepSucceeded, netip.MustParseAddrPort("127.0.0.1:1")), "HTTP/1.1 200 OK"...))
	for _, tt := range replyTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, _, n, err := ParseReply(b); return n, err }
		n, err := checkFraming(t, parse, b, ErrReplyVersion, ErrReplyAddrType)
		if err != nil {
			return
		}
		rep, bound, _, _ := ParseReply(b)
		switch AddrType(b[3]) {
		case AddrDomain:
			if bound.IsValid() || n != 4+1+int(b[4])+2 {
				t.Fatalf("DOMAIN reply % x: bound %v, n %d", b, bound, n)
			}
		case AddrIPv4, AddrIPv6:
			enc := AppendReply(nil, rep, bound)
			if bound.Addr().Is4In6() {
				// AppendReply writes a mapped address as IPv4; it must
				// still name the same endpoint.
				_, back, _, err := ParseReply(enc)
				if err != nil || AddrType(enc[3]) != AddrIPv4 ||
					back != netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()) {
					t.Fatalf("mapped %v re-encoded as % x", bound, enc)
				}
				return
			}
			if consumed := withRSV(b[:n], 0); !bytes.Equal(enc, consumed) {
				t.Fatalf("re-encoded reply % x != consumed % x (RSV zeroed)", enc, consumed)
			}
		default:
			t.Fatalf("reply % x with ATYP %#x parsed", b, b[3])
		}
	})
}
