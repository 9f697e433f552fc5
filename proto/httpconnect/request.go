package httpconnect

import "bytes"

// Request is a client's CONNECT request head (RFC 9110 §9.3.6,
// RFC 9112 §3). A request [ParseRequest] accepts is always CONNECT to a
// hostname and a port 1..65535; on an [*Error] the fields hold what was
// decoded before the failing check, for logs. Byte slices alias the parsed
// input (capacity cut, so appending copies) and are valid until the caller
// reuses that buffer.
type Request struct {
	// Method is the method token as sent (RFC 9110 §9.1). Only CONNECT
	// parses without error; on [ErrMethod] it says what was asked.
	Method []byte
	// Host is the target's host (RFC 9112 §3.2.3), without a trailing
	// port; an IPv6 literal's brackets are removed (it is refused anyway).
	// A trailing dot is kept.
	Host []byte
	// Port is the target's port, 1..65535; 0 when it is missing or bad.
	Port uint16
	// Minor is the minor version of HTTP/1.Minor: 0 or 1.
	Minor int
	// ProxyAuthorization is the trimmed value of the Proxy-Authorization
	// header field (RFC 9110 §11.7.2) if present (possibly empty but not
	// nil), nil otherwise. It is not checked here.
	ProxyAuthorization []byte
}

// ParseRequest parses a CONNECT request head from the start of b
// (RFC 9110 §9.3.6, RFC 9112 §2-§5).
//
// The result is [ErrShort] until the empty line that ends the head has
// arrived, and [ErrTooLarge] (n = [MaxHeadSize]) as soon as MaxHeadSize
// bytes have arrived without one. Only then is the head judged, in the
// order the package doc gives, so a refusal (even [ErrMethod] for
// "GET http://...") is answered only after the client has sent its whole
// head and n is always that head's length. Bytes after the head (an
// optimistic TLS ClientHello) are left in b[n:]. It does not allocate.
func ParseRequest(b []byte) (r Request, n int, err error) {
	n, err = frameHead(b)
	if err != nil {
		return Request{}, n, err
	}
	line, rest := nextLine(b[:n])

	// request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return r, n, ErrMalformed
	}
	r.Method = line[:sp:sp]
	if !isToken(r.Method) {
		return r, n, ErrMalformed
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return r, n, ErrMalformed
	}
	target, version := line[:sp:sp], line[sp+1:]
	for _, c := range target {
		if c < 0x21 || c > 0x7e { // request-target is visible ASCII
			return r, n, ErrMalformed
		}
	}
	// HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3)
	switch string(version) {
	case "HTTP/1.1":
		r.Minor = 1
	case "HTTP/1.0":
		r.Minor = 0
	default:
		return r, n, ErrMalformed
	}

	// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5)
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the empty line that ends the head
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return r, n, ErrMalformed
		}
		// A name that is not a token includes whitespace before the colon
		// (RFC 9112 §5.1) and a line starting with SP or HTAB: obsolete
		// line folding (RFC 9112 §5.2).
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !isToken(name) {
			return r, n, ErrMalformed
		}
		for _, c := range value {
			if !isFieldByte(c) {
				return r, n, ErrMalformed
			}
		}
		if equalFold(name, "Proxy-Authorization") {
			if r.ProxyAuthorization != nil {
				// Two credentials: which one would a later check see?
				return r, n, ErrMalformed
			}
			r.ProxyAuthorization = value[:len(value):len(value)]
		}
	}

	if string(r.Method) != "CONNECT" {
		return r, n, ErrMethod
	}
	return parseTarget(r, target, n)
}

// parseTarget checks a CONNECT request-target, authority-form
// uri-host ":" port (RFC 9112 §3.2.3), and completes r.
func parseTarget(r Request, target []byte, n int) (Request, int, error) {
	var host, port []byte
	hasPort, bracketed := false, false
	if target[0] == '[' {
		// IP-literal = "[" ( IPv6address / IPvFuture ) "]" (RFC 3986 §3.2.2)
		end := bytes.IndexByte(target, ']')
		if end < 0 {
			return r, n, ErrBadHost
		}
		host, bracketed = target[1:end:end], true
		switch after := target[end+1:]; {
		case len(after) == 0:
		case after[0] == ':':
			port, hasPort = after[1:], true
		default:
			r.Host = host
			return r, n, ErrBadHost
		}
	} else if c := bytes.LastIndexByte(target, ':'); c >= 0 {
		host, port, hasPort = target[:c:c], target[c+1:], true
	} else {
		host = target
	}
	r.Host = host
	p, portOK := parsePort(port)
	if hasPort && portOK {
		r.Port = p
	}
	switch {
	case len(host) == 0:
		return r, n, ErrBadHost
	case bracketed:
		return r, n, ErrIPLiteral
	case bytes.IndexByte(host, ':') >= 0:
		// Only an unbracketed IPv6 address has a colon in its host.
		if isIPv6ish(host) {
			return r, n, ErrIPLiteral
		}
		return r, n, ErrBadHost
	}
	switch checkHostname(host) {
	case hostBad:
		return r, n, ErrBadHost
	case hostNumeric:
		return r, n, ErrIPLiteral
	}
	if !hasPort || !portOK {
		return r, n, ErrBadPort
	}
	return r, n, nil
}

// parsePort parses port = 1*DIGIT (RFC 3986 §3.2.3) with a value in
// 1..65535; leading zeros are allowed.
func parsePort(s []byte) (uint16, bool) {
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
		if v > 65535 {
			return 0, false
		}
	}
	return uint16(v), v > 0
}

// isIPv6ish reports whether s has only the bytes of an IPv6 address (hex
// digits, ':' and '.' for an embedded IPv4 part). It does not check the
// address's shape: such a host is no hostname either way.
func isIPv6ish(s []byte) bool {
	for _, c := range s {
		if !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	return true
}

// Results of checkHostname.
const (
	hostOK      = iota
	hostBad     // not a plausible DNS name
	hostNumeric // ends in a number: a resolver may take it for IPv4
)

// checkHostname judges a host without a colon. A plausible hostname
// (RFC 1123 §2.1, loosened to allow '_', which real names carry) is 1..253
// bytes, or 254 with one trailing dot, of dot-separated labels of 1..63
// letters, digits, '-' and '_'. A plausible name whose last label is a
// number (all decimal digits, or "0x" and hex digits) is hostNumeric: that
// is how the WHATWG URL standard's "ends in a number" check tells IPv4
// hosts, and it catches what inet_aton accepts ("127.1", "2130706433",
// "0x7f.0.0.1"), which getaddrinfo would turn into an address without
// asking DNS.
func checkHostname(h []byte) int {
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if len(h) == 0 || len(h) > 253 {
		return hostBad
	}
	labelStart := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != '.' {
			if !isHostByte(h[i]) {
				return hostBad
			}
			continue
		}
		if l := i - labelStart; l == 0 || l > 63 {
			return hostBad
		}
		labelStart = i + 1
	}
	last := h[bytes.LastIndexByte(h, '.')+1:]
	if isNumber(last) {
		return hostNumeric
	}
	return hostOK
}

// isNumber reports whether a label reads as an IPv4 number part: decimal
// (or octal) digits, or "0x"/"0X" followed by zero or more hex digits.
func isNumber(l []byte) bool {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for _, c := range l[2:] {
			if !isHex(c) {
				return false
			}
		}
		return true
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(l) > 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isHostByte reports the bytes a hostname label may hold.
func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// trimOWS removes leading and trailing SP and HTAB (OWS, RFC 9110 §5.6.3).
func trimOWS(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// equalFold reports whether the token s equals the ASCII name, ignoring
// case (field names are case-insensitive, RFC 9110 §5.1).
func equalFold(s []byte, name string) bool {
	if len(s) != len(name) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := name[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
