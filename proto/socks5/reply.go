package socks5

import (
	"encoding/binary"
	"net/netip"
)

// AppendReply appends a reply: VER REP RSV ATYP BND.ADDR BND.PORT
// (RFC 1928 §6), with VER 5 and RSV 0.
//
// On success pass the upstream socket's bound (local) address: an IPv4
// address is written as ATYP 0x01 with 4 octets, an IPv6 address as ATYP 0x04
// with 16 octets, and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4.
// A zone is dropped; the wire has no place for it. For failures pass the
// zero netip.AddrPort{}: an invalid address always encodes as 0.0.0.0:0 with
// ATYP 0x01, whatever the port says. It does not allocate when b has room.
func AppendReply(b []byte, rep ReplyCode, bound netip.AddrPort) []byte {
	addr := bound.Addr().Unmap()
	switch {
	case addr.Is4():
		a := addr.As4()
		b = append(b, Version, byte(rep), 0x00, byte(AddrIPv4))
		b = append(b, a[:]...)
	case addr.Is6():
		a := addr.As16()
		b = append(b, Version, byte(rep), 0x00, byte(AddrIPv6))
		b = append(b, a[:]...)
	default:
		return append(b, Version, byte(rep), 0x00, byte(AddrIPv4), 0, 0, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, bound.Port())
}

// ParseReply parses a server's reply from the start of b (RFC 1928 §6). It
// is the client side, for tests and the bench client.
//
// A reply whose REP is a failure parses without error: rep says what went
// wrong. bound is BND.ADDR:BND.PORT for ATYP IPv4 and IPv6 (an IPv4-mapped
// IPv6 address is kept as sent), and zero for ATYP DOMAIN, whose name is
// skipped. RSV is ignored. VER != 5 is [ErrReplyVersion] (n = 1) and an
// unknown ATYP is [ErrReplyAddrType] (n = 4); on the latter rep is set.
// Bytes after the reply (the start of the tunnelled stream) are left in
// b[n:]. It does not allocate.
func ParseReply(b []byte) (rep ReplyCode, bound netip.AddrPort, n int, err error) {
	if len(b) < 1 {
		return 0, netip.AddrPort{}, 0, ErrShort
	}
	if b[0] != Version {
		return 0, netip.AddrPort{}, 1, ErrReplyVersion
	}
	if len(b) < 4 {
		return 0, netip.AddrPort{}, 0, ErrShort
	}
	rep = ReplyCode(b[1])
	// b[2] is RSV: ignored.
	atyp := AddrType(b[3])
	var alen int
	switch atyp {
	case AddrIPv4:
		alen = 4
	case AddrIPv6:
		alen = 16
	case AddrDomain:
		if len(b) < 5 {
			return 0, netip.AddrPort{}, 0, ErrShort
		}
		alen = 1 + int(b[4])
	default:
		return rep, netip.AddrPort{}, 4, ErrReplyAddrType
	}
	n = 4 + alen + 2
	if len(b) < n {
		return 0, netip.AddrPort{}, 0, ErrShort
	}
	port := binary.BigEndian.Uint16(b[n-2:])
	switch atyp {
	case AddrIPv4:
		bound = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case AddrIPv6:
		bound = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[4:20])), port)
	}
	return rep, bound, n, nil
}
