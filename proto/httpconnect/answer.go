package httpconnect

import "strconv"

// established is the whole success answer to a CONNECT (RFC 9110 §9.3.6):
// a 2xx with no content; the tunnel starts after the empty line.
const established = "HTTP/1.1 200 Connection Established\r\n\r\n"

// AppendEstablished appends the answer to a CONNECT whose target is
// connected, exactly "HTTP/1.1 200 Connection Established\r\n\r\n"
// (RFC 9110 §9.3.6: a 2xx switches the connection to tunnel mode; it
// carries no Content-Length or Transfer-Encoding). It does not allocate
// when b has room.
func AppendEstablished(b []byte) []byte { return append(b, established...) }

// AppendError appends an error answer (RFC 9112 §4, §6):
//
//	HTTP/1.1 <status> <StatusText(status)>\r\n
//	Allow: CONNECT\r\n                                 (405 only, RFC 9110 §15.5.6)
//	Proxy-Authenticate: Basic realm="fastsocks"\r\n    (407 only, RFC 9110 §11.7.1)
//	X-Proxy-Error: <proxyError>\r\n                    (only if proxyError != "")
//	Content-Type: text/plain; charset=utf-8\r\n
//	Content-Length: <len(body)>\r\n
//	Connection: close\r\n
//	\r\n
//	<body>
//
// body is one line of text for the user; a "\n" is added if it does not end
// in one, and an empty body becomes StatusText(status). The body is framed
// by Content-Length, so it is written as given. proxyError is a header
// value: a control byte or DEL in it (CR, LF: header injection) is written
// as '?'. A status unknown to [StatusText] gets an empty reason phrase,
// which RFC 9112 §4 allows. It panics if status is not three digits
// (100..999). It does not allocate when b has room.
func AppendError(b []byte, status int, proxyError, body string) []byte {
	if status < 100 || status > 999 {
		panic("httpconnect: AppendError: status " + strconv.Itoa(status) + " is not three digits")
	}
	if body == "" {
		body = StatusText(status)
	}
	nl := len(body) == 0 || body[len(body)-1] != '\n'
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, StatusText(status)...)
	b = append(b, "\r\n"...)
	switch status {
	case 405:
		b = append(b, "Allow: CONNECT\r\n"...)
	case 407:
		b = append(b, "Proxy-Authenticate: Basic realm=\"fastsocks\"\r\n"...)
	}
	if proxyError != "" {
		b = append(b, "X-Proxy-Error: "...)
		for i := 0; i < len(proxyError); i++ {
			c := proxyError[i]
			if c < 0x20 && c != '\t' || c == 0x7f {
				c = '?'
			}
			b = append(b, c)
		}
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	clen := len(body)
	if nl {
		clen++
	}
	b = strconv.AppendInt(b, int64(clen), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	b = append(b, body...)
	if nl {
		b = append(b, '\n')
	}
	return b
}

// AppendErrorFor appends the answer to a parse error:
// AppendError(b, e.Status, e.ProxyError, e.Msg).
func AppendErrorFor(b []byte, e *Error) []byte {
	return AppendError(b, e.Status, e.ProxyError, e.Msg)
}

// StatusText returns the reason phrase RFC 9110 §15 (and RFC 6585 for 428,
// 429, 431, 511) gives status, e.g. "Bad Gateway" for 502, or "" if the
// status is unknown. 200 is "OK"; [AppendEstablished] says "Connection
// Established" instead, as proxies do.
func StatusText(status int) string {
	switch status {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 203:
		return "Non-Authoritative Information"
	case 204:
		return "No Content"
	case 205:
		return "Reset Content"
	case 206:
		return "Partial Content"
	case 300:
		return "Multiple Choices"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 305:
		return "Use Proxy"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 402:
		return "Payment Required"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 421:
		return "Misdirected Request"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 428:
		return "Precondition Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	case 511:
		return "Network Authentication Required"
	}
	return ""
}
