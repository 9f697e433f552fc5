// Package socks5 parses and encodes SOCKS5 messages (RFC 1928, with the
// RFC 1929 username/password sub-negotiation) from and to byte slices.
//
// It does no I/O, no policy and no dialing: the engine reads bytes into its
// own buffer, hands them to a Parse function, acts on the result, and writes
// what an Append function produced. Deciding whether a host is allowed,
// resolving it and connecting to it are left to the policy and dial packages.
//
// # Subset
//
// fastsocks is an egress proxy that checks every target hostname, so only
// the part of RFC 1928 that keeps hostnames visible is accepted:
//
//   - METHOD 0x00 (no authentication). The engine picks it with
//     [Greeting.Offers]; if it is not offered it replies 05 FF
//     ([AppendMethod] with [MethodNoAcceptable]) and closes. The RFC 1929
//     username/password messages are here too, for an engine that wants them.
//   - CMD CONNECT only. BIND and UDP ASSOCIATE would let traffic in or out
//     around the hostname policy; they and unknown commands get REP 0x07.
//   - ATYP DOMAIN only (socks5h://). An IPv4 or IPv6 literal was resolved by
//     the client, so it would bypass hostname policy; it gets REP 0x08 with a
//     message telling the user to use socks5h:// or a hostname.
//
// # Parsing contract
//
// Every parser has the shape Parse(b) (msg, n, err):
//
//   - err == nil: msg is valid and n is exactly its length on the wire. Bytes
//     after b[:n] (a client's early data, or its next message) are not
//     looked at and are left to the caller.
//   - err == [ErrShort]: b is a strict prefix of a message; read more and
//     call again with the longer buffer. n is 0 and msg is zero. ErrShort is
//     never returned for a complete message.
//   - err is an [*Error]: the message is malformed or refused. The error
//     carries the reply code to send (or NoReply), and is always one of the
//     package's sentinel values, so callers may compare with == or
//     [errors.Is], or use [errors.As] for the code. n is the message's full
//     length when the parser could frame it, otherwise the number of bytes it
//     examined before giving up (at least 1). msg holds the fields decoded so
//     far, for logs.
//
// Parsed messages alias b (Greeting.Methods, Request.Host, UserPass.User and
// UserPass.Pass); they are valid until the caller reuses b. Parsing never
// allocates, on success or on error.
//
// # Request precedence
//
// A request is checked in this order; the first failing check decides:
//
//  1. VER != 5: [ErrRequestVersion] (REP 0x01) at once, n = 1.
//  2. Unknown ATYP: [ErrAddrType] (REP 0x08) at once, n = 4, whatever the
//     command, because the address length, and so the end of the message,
//     is unknown; the engine replies and closes.
//  3. Otherwise the parser returns ErrShort until the whole address and port
//     are present; every later error has n = full request length.
//  4. CMD != CONNECT: [ErrCommandNotSupported] (REP 0x07), whatever the
//     address (a BIND to an IPv4 literal is 0x07, not 0x08).
//  5. ATYP IPv4 or IPv6: [ErrIPLiteral] (REP 0x08).
//  6. Empty domain: [ErrEmptyDomain] (REP 0x01); a domain byte outside
//     printable ASCII 0x21..0x7E: [ErrDomainByte] (REP 0x01).
//
// RSV is not checked: RFC 1928 says it is reserved and the robustness
// principle says to accept a non-zero value; it is ignored.
package socks5

import (
	"errors"
)

// Version is the SOCKS protocol version, the VER field of every RFC 1928
// message (RFC 1928 §3, §4, §6).
const Version = 0x05

// UserPassVersion is the VER field of the RFC 1929 username/password
// sub-negotiation (RFC 1929 §2); it is not the SOCKS version.
const UserPassVersion = 0x01

// MaxDomainLen is the longest DOMAIN address the wire can carry: its length
// is one octet (RFC 1928 §5).
const MaxDomainLen = 255

// ErrShort means the input is a strict prefix of a message: read more and
// call again. It is not an [*Error]: nothing is wrong yet.
var ErrShort = errors.New("socks5: need more bytes")

// Error is a malformed or refused message (RFC 1928 §6). Reply is the REP to
// send (with [AppendReply] and a zero address) before closing. NoReply is
// true when nothing must be sent, e.g. a greeting whose VER is not 5 comes
// from something that is not a SOCKS5 client.
//
// Errors from [ParseUserPass] are answered with the sub-negotiation's own
// status, [AppendUserPassStatus](b, false), not with a request reply; their
// Reply is [RepGeneralFailure] for callers that only log it. Errors from
// [ParseReply] (client side) have NoReply set.
type Error struct {
	Reply   ReplyCode
	NoReply bool
	Msg     string
}

// Error returns "socks5: " followed by Msg.
func (e *Error) Error() string { return "socks5: " + e.Msg }

// Sentinel errors. Every *Error a parser returns is one of these, so
// returning one never allocates and callers may compare with == or
// [errors.Is].
var (
	// ErrVersion: greeting VER is not 5 (RFC 1928 §3). Not a SOCKS5
	// client; close without a reply.
	ErrVersion = &Error{NoReply: true, Msg: "greeting version is not 5: not a SOCKS5 client"}

	// ErrRequestVersion: request VER is not 5 (RFC 1928 §4).
	ErrRequestVersion = &Error{Reply: RepGeneralFailure, Msg: "request version is not 5"}

	// ErrCommandNotSupported: CMD is BIND, UDP ASSOCIATE or unknown; only
	// CONNECT is served (RFC 1928 §4, §6 REP 0x07).
	ErrCommandNotSupported = &Error{Reply: RepCommandNotSupported, Msg: "command not supported: only CONNECT is served (no BIND, no UDP ASSOCIATE)"}

	// ErrIPLiteral: the destination is an IPv4 or IPv6 literal (RFC 1928 §5
	// ATYP 0x01, 0x04). The proxy checks hostnames, and an address the
	// client resolved would bypass that (REP 0x08).
	ErrIPLiteral = &Error{Reply: RepAddrTypeNotSupported, Msg: "IP address destinations are refused: the proxy checks hostnames; use socks5h:// (proxy-side resolution) or a hostname"}

	// ErrAddrType: ATYP is not one RFC 1928 §5 defines (REP 0x08). The
	// address length is unknown, so the request cannot be framed.
	ErrAddrType = &Error{Reply: RepAddrTypeNotSupported, Msg: "unknown address type"}

	// ErrEmptyDomain: the DOMAIN address has length 0 (RFC 1928 §5).
	ErrEmptyDomain = &Error{Reply: RepGeneralFailure, Msg: "empty domain name"}

	// ErrDomainByte: the DOMAIN address has a byte outside printable ASCII
	// 0x21..0x7E (space, control, DEL, NUL, non-ASCII). No hostname policy
	// could match it safely (RFC 1928 §5).
	ErrDomainByte = &Error{Reply: RepGeneralFailure, Msg: "domain name has a byte outside printable ASCII"}

	// ErrUserPassVersion: the sub-negotiation VER is not 1 (RFC 1929 §2).
	ErrUserPassVersion = &Error{Reply: RepGeneralFailure, Msg: "username/password version is not 1"}

	// ErrEmptyUser: ULEN is 0; RFC 1929 §2 requires 1..255.
	ErrEmptyUser = &Error{Reply: RepGeneralFailure, Msg: "empty username"}

	// ErrEmptyPass: PLEN is 0; RFC 1929 §2 requires 1..255.
	ErrEmptyPass = &Error{Reply: RepGeneralFailure, Msg: "empty password"}

	// ErrReplyVersion: a server reply's VER is not 5 (RFC 1928 §6).
	ErrReplyVersion = &Error{NoReply: true, Msg: "reply version is not 5"}

	// ErrReplyAddrType: a server reply's ATYP is unknown (RFC 1928 §5, §6).
	ErrReplyAddrType = &Error{NoReply: true, Msg: "reply has an unknown address type"}
)

// Method is an authentication method, the METHOD field of the greeting and
// of the method-selection message (RFC 1928 §3).
type Method byte

// Methods (RFC 1928 §3).
const (
	MethodNoAuth       Method = 0x00 // NO AUTHENTICATION REQUIRED
	MethodGSSAPI       Method = 0x01 // GSSAPI (RFC 1961)
	MethodUserPass     Method = 0x02 // USERNAME/PASSWORD (RFC 1929)
	MethodNoAcceptable Method = 0xFF // NO ACCEPTABLE METHODS
)

// String names the method as RFC 1928 §3 does.
func (m Method) String() string {
	switch m {
	case MethodNoAuth:
		return "no authentication required"
	case MethodGSSAPI:
		return "GSSAPI"
	case MethodUserPass:
		return "username/password"
	case MethodNoAcceptable:
		return "no acceptable methods"
	}
	if m >= 0x80 {
		return "private method " + hexByte(byte(m))
	}
	return "method " + hexByte(byte(m))
}

// Command is the CMD field of a request (RFC 1928 §4).
type Command byte

// Commands (RFC 1928 §4).
const (
	CmdConnect      Command = 0x01 // CONNECT
	CmdBind         Command = 0x02 // BIND
	CmdUDPAssociate Command = 0x03 // UDP ASSOCIATE
)

// String names the command as RFC 1928 §4 does.
func (c Command) String() string {
	switch c {
	case CmdConnect:
		return "CONNECT"
	case CmdBind:
		return "BIND"
	case CmdUDPAssociate:
		return "UDP ASSOCIATE"
	}
	return "command " + hexByte(byte(c))
}

// AddrType is the ATYP field of a request or reply (RFC 1928 §5).
type AddrType byte

// Address types (RFC 1928 §5).
const (
	AddrIPv4   AddrType = 0x01 // IP V4 address: 4 octets
	AddrDomain AddrType = 0x03 // DOMAINNAME: 1 length octet, then the name
	AddrIPv6   AddrType = 0x04 // IP V6 address: 16 octets
)

// String names the address type as RFC 1928 §5 does.
func (a AddrType) String() string {
	switch a {
	case AddrIPv4:
		return "IPv4"
	case AddrDomain:
		return "domain name"
	case AddrIPv6:
		return "IPv6"
	}
	return "address type " + hexByte(byte(a))
}

// ReplyCode is the REP field of a reply (RFC 1928 §6).
type ReplyCode byte

// Reply codes (RFC 1928 §6).
const (
	RepSucceeded            ReplyCode = 0x00 // succeeded
	RepGeneralFailure       ReplyCode = 0x01 // general SOCKS server failure
	RepNotAllowed           ReplyCode = 0x02 // connection not allowed by ruleset
	RepNetworkUnreachable   ReplyCode = 0x03 // network unreachable
	RepHostUnreachable      ReplyCode = 0x04 // host unreachable
	RepConnectionRefused    ReplyCode = 0x05 // connection refused
	RepTTLExpired           ReplyCode = 0x06 // TTL expired
	RepCommandNotSupported  ReplyCode = 0x07 // command not supported
	RepAddrTypeNotSupported ReplyCode = 0x08 // address type not supported
)

// String gives the reply code's meaning as RFC 1928 §6 words it, e.g.
// "connection not allowed by ruleset".
func (r ReplyCode) String() string {
	switch r {
	case RepSucceeded:
		return "succeeded"
	case RepGeneralFailure:
		return "general SOCKS server failure"
	case RepNotAllowed:
		return "connection not allowed by ruleset"
	case RepNetworkUnreachable:
		return "network unreachable"
	case RepHostUnreachable:
		return "host unreachable"
	case RepConnectionRefused:
		return "connection refused"
	case RepTTLExpired:
		return "TTL expired"
	case RepCommandNotSupported:
		return "command not supported"
	case RepAddrTypeNotSupported:
		return "address type not supported"
	}
	return "reply code " + hexByte(byte(r))
}

// hexByte formats v as "0x" and two lower-case hex digits.
func hexByte(v byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[v>>4], digits[v&0x0f]})
}
