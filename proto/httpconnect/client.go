package httpconnect

// This file is the client side: the dial pool chains through a corporate
// HTTP proxy by sending AppendConnect's request and parsing the answer with
// ParseResponse.

// AppendConnect appends a CONNECT request head (RFC 9110 §9.3.6,
// RFC 9112 §3.2.3):
//
//	CONNECT <authority> HTTP/1.1\r\n
//	Host: <authority>\r\n
//	Proxy-Authorization: <proxyAuthorization>\r\n   (only if non-empty)
//	\r\n
//
// authority is "host:port"; the caller writes an IPv6 address in brackets.
// proxyAuthorization is the whole field value, e.g. "Basic dXNlcjpwYXNz".
// Both are written as given, without validation: they must hold no CR, LF
// or other control byte, and authority no SP (hosts that [ParseRequest] or
// the socks5 package accepted never do). It does not allocate when b has
// room.
func AppendConnect(b []byte, authority, proxyAuthorization string) []byte {
	b = append(b, "CONNECT "...)
	b = append(b, authority...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, authority...)
	b = append(b, "\r\n"...)
	if proxyAuthorization != "" {
		b = append(b, "Proxy-Authorization: "...)
		b = append(b, proxyAuthorization...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// Response is a parsed response head: the status line
// "HTTP/1.Minor Status Reason" (RFC 9112 §4) and header lines up to the
// empty line, which are framed but not kept: a tunnel needs none of them.
type Response struct {
	// Minor is the minor version, HTTP/1.Minor: any digit 0..9.
	Minor int
	// Status is the three-digit status code, 100..599 (RFC 9110 §15).
	Status int
	// Reason is the reason phrase as sent, possibly empty (RFC 9112 §4:
	// a client should ignore it; it is kept for logs). It aliases the
	// parsed input, capacity cut.
	Reason []byte
}

// Established reports whether the upstream proxy has switched to tunnel
// mode: any 2xx answers a CONNECT with success (RFC 9110 §9.3.6), and the
// bytes after the head are the tunnel's. Anything else is a refusal; its
// body, if any, is not the tunnel's and the connection should be closed.
func (r Response) Established() bool { return r.Status >= 200 && r.Status <= 299 }

// ParseResponse parses an upstream proxy's response head from the start of
// b (RFC 9112 §4, §2.2). It is the client side of a chained CONNECT.
//
// The status line must be "HTTP/1." DIGIT SP 3DIGIT, then SP and a reason
// phrase (bytes other than controls) or nothing, then CRLF or a bare LF,
// with the status in 100..599. The first byte that breaks this gives
// [ErrResponse] at once, with n the number of bytes examined, so an
// upstream that is not an HTTP proxy is found out without waiting. Header
// lines are not validated, only framed: the result is [ErrShort] until the
// empty line that ends the head, and [ErrTooLarge] (n = [MaxHeadSize]) if
// none comes within MaxHeadSize bytes. A 1xx response is returned like any
// other; it is not a 2xx (see [Response.Established]). Bytes after the head
// belong to the tunnel and are left in b[n:]. It does not allocate.
func ParseResponse(b []byte) (r Response, n int, err error) {
	w := b
	if len(w) > MaxHeadSize {
		w = w[:MaxHeadSize]
	}
	const prefix = "HTTP/1."
	// Walk the status line byte by byte; end is the index just past its LF.
	end := 0
scan:
	for i, c := range w {
		switch {
		case i < len(prefix):
			if c != prefix[i] {
				return Response{}, i + 1, ErrResponse
			}
		case i == 7: // minor version
			if c < '0' || c > '9' {
				return Response{}, i + 1, ErrResponse
			}
		case i == 8: // SP before the status
			if c != ' ' {
				return Response{}, i + 1, ErrResponse
			}
		case i == 9: // status, first digit: 1..5
			if c < '1' || c > '5' {
				return Response{}, i + 1, ErrResponse
			}
		case i < 12: // status, other digits
			if c < '0' || c > '9' {
				return Response{}, i + 1, ErrResponse
			}
		case i == 12 && c == ' ':
			// SP before the reason phrase.
		case c == '\n':
			end = i + 1
			break scan
		case w[i-1] == '\r' && i > 12:
			// A CR not followed by LF (the LF case is above).
			return Response{}, i + 1, ErrResponse
		case c == '\r':
			// Wait for the next byte: it must be LF.
		case i == 12 || !isFieldByte(c):
			// After the status only SP, CR or LF; in the reason no controls.
			return Response{}, i + 1, ErrResponse
		}
	}
	if end == 0 {
		if len(w) == MaxHeadSize {
			return Response{}, MaxHeadSize, ErrTooLarge
		}
		return Response{}, 0, ErrShort
	}
	// The status line is not empty, so the first empty line frameHead finds
	// comes after it.
	n, err = frameHead(b)
	if err != nil {
		return Response{}, n, err
	}
	r.Minor = int(w[7] - '0')
	r.Status = int(w[9]-'0')*100 + int(w[10]-'0')*10 + int(w[11]-'0')
	reasonEnd := end - 1
	if w[reasonEnd-1] == '\r' {
		reasonEnd--
	}
	if reasonEnd > 13 {
		r.Reason = b[13:reasonEnd:reasonEnd]
	} else {
		r.Reason = b[reasonEnd:reasonEnd:reasonEnd]
	}
	return r, n, nil
}
