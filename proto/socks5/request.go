package socks5

import (
	"encoding/binary"
	"net/netip"
)

// Request is a client's request: VER CMD RSV ATYP DST.ADDR DST.PORT
// (RFC 1928 §4). A request [ParseRequest] accepts is always CONNECT to a
// DOMAIN address; on an [*Error] the fields hold what was decoded, for logs.
type Request struct {
	// Cmd is CMD (RFC 1928 §4).
	Cmd Command
	// AddrType is ATYP (RFC 1928 §5).
	AddrType AddrType
	// Host is DST.ADDR for ATYP DOMAIN, without its length octet; nil for
	// other address types. It aliases the parsed input (capacity cut, so
	// appending copies) and is valid until the caller reuses that buffer.
	Host []byte
	// Addr is DST.ADDR for ATYP IPv4 or IPv6; it is only set on a refused
	// request (ErrIPLiteral, or ErrCommandNotSupported with a literal), so
	// the refusal can be logged. Zero for DOMAIN.
	Addr netip.Addr
	// Port is DST.PORT (RFC 1928 §4), host byte order.
	Port uint16
}

// ParseRequest parses a request from the start of b (RFC 1928 §4, §5).
//
// It accepts CONNECT to a DOMAIN address whose name is 1..255 bytes of
// printable ASCII (0x21..0x7E); RSV is ignored. Everything else is an
// [*Error] carrying its REP; see the package doc for the order of checks.
// Until the whole address and port are present the result is [ErrShort],
// even when the command is already known to be refused, so that n of a
// refusal is the full request length. Bytes after the request (a client's
// early data) are left in b[n:]. It does not allocate.
func ParseRequest(b []byte) (r Request, n int, err error) {
	if len(b) < 1 {
		return Request{}, 0, ErrShort
	}
	if b[0] != Version {
		return Request{}, 1, ErrRequestVersion
	}
	if len(b) < 4 {
		return Request{}, 0, ErrShort
	}
	// b[2] is RSV: reserved, ignored whatever its value.
	cmd, atyp := Command(b[1]), AddrType(b[3])
	var alen int
	switch atyp {
	case AddrIPv4:
		alen = 4
	case AddrIPv6:
		alen = 16
	case AddrDomain:
		if len(b) < 5 {
			return Request{}, 0, ErrShort
		}
		alen = 1 + int(b[4])
	default:
		return Request{Cmd: cmd, AddrType: atyp}, 4, ErrAddrType
	}
	n = 4 + alen + 2
	if len(b) < n {
		return Request{}, 0, ErrShort
	}
	r = Request{Cmd: cmd, AddrType: atyp, Port: binary.BigEndian.Uint16(b[n-2:])}
	switch atyp {
	case AddrIPv4:
		r.Addr = netip.AddrFrom4([4]byte(b[4:8]))
	case AddrIPv6:
		r.Addr = netip.AddrFrom16([16]byte(b[4:20]))
	default:
		r.Host = b[5 : n-2 : n-2]
	}
	if cmd != CmdConnect {
		return r, n, ErrCommandNotSupported
	}
	if atyp != AddrDomain {
		return r, n, ErrIPLiteral
	}
	if len(r.Host) == 0 {
		return r, n, ErrEmptyDomain
	}
	for _, c := range r.Host {
		if c-0x21 > 0x7e-0x21 { // c < 0x21 || c > 0x7e, in one unsigned compare
			return r, n, ErrDomainByte
		}
	}
	return r, n, nil
}

// AppendRequest appends a request with a DOMAIN address:
// 05 CMD 00 03 LEN HOST PORT (RFC 1928 §4, §5). It is the client side, for
// tests, fuzz seeds and the bench client. host is written as given (an empty
// or non-printable host encodes, so tests can build refused requests); it
// panics if host is longer than [MaxDomainLen], since the length is one
// octet.
func AppendRequest(b []byte, cmd Command, host string, port uint16) []byte {
	if len(host) > MaxDomainLen {
		panic("socks5: AppendRequest: host longer than 255 bytes")
	}
	b = append(b, Version, byte(cmd), 0x00, byte(AddrDomain), byte(len(host)))
	b = append(b, host...)
	return binary.BigEndian.AppendUint16(b, port)
}
