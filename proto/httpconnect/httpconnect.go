// Package httpconnect parses and encodes HTTP/1.x CONNECT request and
// response heads (RFC 9110 §9.3.6, RFC 9112) from and to byte slices.
//
// It does no I/O, no policy and no dialing: the engine reads bytes into its
// own buffer, hands them to [ParseRequest], acts on the result and writes
// what an Append function produced; the dial package chains through an
// upstream proxy with [AppendConnect] and [ParseResponse]. Deciding whether
// a host is allowed, resolving it and connecting to it are left to the
// policy and dial packages; bodies, chunked coding, keep-alive and every
// method but CONNECT are left to nobody: a fastsocks tunnel has none.
//
// # Subset
//
// fastsocks checks every target hostname, so [ParseRequest] accepts only
//
//   - the CONNECT method with an authority-form target host:port
//     (RFC 9112 §3.2.3), where host is a plausible DNS name: labels of
//     letters, digits, '-' and '_', at most 63 bytes each and 253 in all, one
//     trailing dot allowed. An IPv4 literal, or anything a resolver could
//     take for one (a last label that is a number: "127.1", "2130706433",
//     "0x7f.1"), and a bracketed IPv6 literal are refused with 403
//     ([ErrIPLiteral]): an address the client chose would bypass the
//     hostname policy;
//   - HTTP/1.0 and HTTP/1.1 (RFC 9112 §2.3);
//   - header lines "name: value" (RFC 9112 §5) with case-insensitive names;
//     only Proxy-Authorization is kept. Host is not required and not
//     compared with the target: for CONNECT the target is the authority.
//     Content-Length and Transfer-Encoding are ignored: a CONNECT request
//     has no content (RFC 9110 §9.3.6), bytes after the head are tunnel
//     data.
//
// Lines may end in CRLF or a bare LF (RFC 9112 §2.2). A bare CR inside a
// line, obsolete line folding and whitespace between a field name and its
// colon are malformed (RFC 9112 §2.2, §5.1, §5.2).
//
// # Parsing contract
//
// Both parsers have the shape Parse(b) (msg, n, err):
//
//   - err == nil: msg is valid and n is exactly the head's length, up to
//     and including the empty line that ends it. Bytes after b[:n] (a
//     client's optimistic TLS ClientHello, or the first tunnelled bytes from
//     an upstream proxy) are not looked at and are left to the caller.
//   - err == [ErrShort]: b is a strict prefix of a head within
//     [MaxHeadSize]; read more and call again with the longer buffer. n is 0
//     and msg is zero. ErrShort is never returned for a complete head.
//   - err is an [*Error]: the head is malformed, too large or refused. The
//     error carries the status to answer with, and is always one of the
//     package's sentinel values, so callers may compare with == or
//     [errors.Is], or use [errors.As] for the status. n is the head's full
//     length when the parser could frame it, [MaxHeadSize] for
//     [ErrTooLarge], and for [ErrResponse] the number of bytes examined
//     (at least 1). msg holds the fields decoded so far, for logs.
//
// [ParseRequest] judges a request only once its whole head is present
// (within [MaxHeadSize]): even a request line that is already known to be
// refused is ErrShort until the empty line, so the proxy never answers
// while the client is still sending, and n of a refusal is the full head.
// [ParseResponse] rejects a malformed status line at its first bad byte: an
// upstream that is not an HTTP proxy is found out at once.
//
// Parsed messages alias b (their capacity cut, so appending copies); they
// are valid until the caller reuses b. Parsing never allocates, on success
// or on error.
//
// # Request precedence
//
// A complete request head is checked in this order; the first failing check
// decides:
//
//  1. Request line syntax (method token, one SP, a target of visible ASCII,
//     one SP, "HTTP/1.0" or "HTTP/1.1"): [ErrMalformed] (400).
//  2. Header line syntax, or two Proxy-Authorization fields:
//     [ErrMalformed] (400).
//  3. Method other than CONNECT (methods are case-sensitive, RFC 9110
//     §9.1): [ErrMethod] (405, answered with "Allow: CONNECT").
//  4. Host empty, unterminated '[', or not a plausible hostname:
//     [ErrBadHost] (400).
//  5. Host an IP literal (bracketed, unbracketed IPv6, or numeric as
//     above): [ErrIPLiteral] (403), whatever the port.
//  6. Port missing, empty, not decimal digits, 0 or over 65535:
//     [ErrBadPort] (400).
//
// # Answers
//
// [AppendEstablished] and [AppendError] write the server's answers. Every
// error answer is HTTP/1.1 with "Connection: close", a text/plain body of
// one line and its Content-Length; the engine flushes it and closes.
package httpconnect

import (
	"bytes"
	"errors"
)

// MaxHeadSize caps a request or response head: the request line or status
// line, the header lines and the empty line that ends them. A head with no
// empty line within its first MaxHeadSize bytes is [ErrTooLarge]; this
// bounds the bytes the proxy buffers for a client (or an upstream) that
// never finishes its head. Real CONNECT heads are a few hundred bytes.
const MaxHeadSize = 8 << 10

// X-Proxy-Error tokens the proxy sends with refusals, in the convention
// sandbox proxies use, so tools and users can tell a policy refusal from a
// network failure.
const (
	// ProxyErrorBlockedByAllowlist: the host matches no allow rule.
	ProxyErrorBlockedByAllowlist = "blocked-by-allowlist"
	// ProxyErrorBlockedByDenylist: the host matches a deny rule.
	ProxyErrorBlockedByDenylist = "blocked-by-denylist"
	// ProxyErrorBlockedIPLiteral: the target is an IP literal, not a
	// hostname ([ErrIPLiteral]).
	ProxyErrorBlockedIPLiteral = "blocked-ip-literal"
)

// ErrShort means the input is a strict prefix of a head within
// [MaxHeadSize]: read more and call again. It is not an [*Error]: nothing
// is wrong yet.
var ErrShort = errors.New("httpconnect: need more bytes")

// Error is a malformed or refused head. Status is the HTTP status to answer
// with on the server side (RFC 9110 §15); ProxyError is the X-Proxy-Error
// token to send, or "" for none; Msg is a one-line, human-readable text,
// used as the answer's body. [AppendErrorFor] writes the answer.
//
// Errors from [ParseResponse] (client side) are not answered by this
// package; their Status says what the proxy would tell its own client
// (502 for a bad upstream).
type Error struct {
	Status     int
	ProxyError string
	Msg        string
}

// Error returns "httpconnect: " followed by Msg.
func (e *Error) Error() string { return "httpconnect: " + e.Msg }

// Sentinel errors. Every *Error a parser returns is one of these, so
// returning one never allocates and callers may compare with == or
// [errors.Is].
var (
	// ErrTooLarge: no empty line within the first MaxHeadSize bytes
	// (431 Request Header Fields Too Large, RFC 6585 §5). [ParseResponse]
	// returns it too; there it means a bad upstream, which a proxy reports
	// to its own client as 502, not 431.
	ErrTooLarge = &Error{Status: 431, Msg: "head over 8 KiB: no empty line ends the request line and headers within 8192 bytes"}

	// ErrMalformed: the request line or a header line breaks RFC 9112 §3
	// or §5, or the version is not HTTP/1.0 or HTTP/1.1 (400 Bad Request).
	ErrMalformed = &Error{Status: 400, Msg: `malformed request: want "CONNECT host:port HTTP/1.1", header lines "Name: value", an empty line`}

	// ErrMethod: the method is not CONNECT (405 Method Not Allowed,
	// answered with "Allow: CONNECT", RFC 9110 §15.5.6). A plain
	// "GET http://..." comes from a client configured with this proxy as
	// HTTP_PROXY rather than HTTPS_PROXY.
	ErrMethod = &Error{Status: 405, Msg: "only CONNECT is served: this proxy tunnels, it does not fetch http:// URLs"}

	// ErrBadPort: the CONNECT target's port is missing, empty, not decimal
	// digits, 0 or over 65535 (RFC 9112 §3.2.3 requires host:port)
	// (400 Bad Request).
	ErrBadPort = &Error{Status: 400, Msg: "CONNECT target needs a port 1-65535: host:port"}

	// ErrBadHost: the CONNECT target's host is empty or not a plausible
	// hostname (a byte other than letters, digits, '-', '_' and '.', an
	// empty label, a label over 63 bytes, over 253 bytes in all)
	// (400 Bad Request).
	ErrBadHost = &Error{Status: 400, Msg: "CONNECT target host is not a valid hostname"}

	// ErrIPLiteral: the CONNECT target is an IP literal (403 Forbidden).
	// The proxy checks hostnames, and an address the client resolved would
	// bypass that.
	ErrIPLiteral = &Error{Status: 403, ProxyError: ProxyErrorBlockedIPLiteral, Msg: "IP address targets are refused: CONNECT to a hostname so the proxy can apply its hostname policy"}

	// ErrResponse: an upstream proxy's status line is not
	// "HTTP/1.x NNN reason" (RFC 9112 §4) with NNN in 100..599. Status is
	// 502 Bad Gateway, what the proxy tells its own client.
	ErrResponse = &Error{Status: 502, Msg: `upstream proxy sent a malformed status line: want "HTTP/1.x NNN reason"`}
)

// frameHead finds the end of the head at the start of b: the first empty
// line (LF or CRLF), looking at no more than MaxHeadSize bytes. It returns
// the head's length, or ErrShort, or ErrTooLarge with n = MaxHeadSize.
func frameHead(b []byte) (n int, err error) {
	w := b
	if len(w) > MaxHeadSize {
		w = w[:MaxHeadSize]
	}
	for s := 0; ; {
		i := bytes.IndexByte(w[s:], '\n')
		if i < 0 {
			break
		}
		if i == 0 || (i == 1 && w[s] == '\r') {
			return s + i + 1, nil
		}
		s += i + 1
	}
	if len(w) == MaxHeadSize {
		return MaxHeadSize, ErrTooLarge
	}
	return 0, ErrShort
}

// nextLine splits the first line off b: line is without its LF and without
// one CR before it; rest starts after the LF. b must contain an LF.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// isTchar reports the token characters of RFC 9110 §5.6.2.
var isTchar = [256]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true,
	'J': true, 'K': true, 'L': true, 'M': true, 'N': true, 'O': true, 'P': true, 'Q': true, 'R': true,
	'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true,
	'j': true, 'k': true, 'l': true, 'm': true, 'n': true, 'o': true, 'p': true, 'q': true, 'r': true,
	's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2).
func isToken(s []byte) bool {
	for _, c := range s {
		if !isTchar[c] {
			return false
		}
	}
	return len(s) > 0
}

// isFieldByte reports whether c may appear in a field value or reason
// phrase: HTAB, SP, VCHAR or obs-text (RFC 9110 §5.5, RFC 9112 §4); that
// is, anything but a control character or DEL.
func isFieldByte(c byte) bool {
	return c == '\t' || (c >= 0x20 && c != 0x7f)
}
