package httpconnect

import (
	"strings"
	"testing"
)

// ---- ParseRequest (RFC 9110 §9.3.6, RFC 9112 §3, §5) ----

// host253 is the longest hostname without a trailing dot.
var host253 = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." +
	strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)

func TestHost253Length(t *testing.T) {
	if len(host253) != 253 {
		t.Fatalf("host253 has %d bytes, want 253", len(host253))
	}
}

// requestTests are golden request heads; the prefix, trailing-bytes,
// allocation tests and fuzz seeds reuse them.
var requestTests = []struct {
	name       string
	in         []byte
	wantN      int
	wantErr    error
	wantMethod string
	wantHost   string
	wantPort   uint16
	wantMinor  int
	wantAuth   string // "" with hasAuth false: nil
	hasAuth    bool
}{
	{
		name: "curl",
		in: cat(
			"CONNECT",                          // method
			" ",                                // SP
			"example.com:443",                  // request-target, authority-form
			" ",                                // SP
			"HTTP/1.1",                         // HTTP-version
			"\r\n",                             // end of request line
			"Host: example.com:443\r\n",        // Host: not compared with the target
			"User-Agent: curl/8.5.0\r\n",       // ignored
			"Proxy-Connection: Keep-Alive\r\n", // ignored
			"\r\n",                             // empty line: end of head
		),
		wantN: 113, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name: "Go http.Transport",
		in: cat(
			"CONNECT proxy.golang.org:443 HTTP/1.1\r\n", // request line
			"Host: proxy.golang.org:443\r\n",            // Host
			"User-Agent: Go-http-client/1.1\r\n",        // ignored
			"\r\n",                                      // end of head
		),
		wantN: 39 + 28 + 32 + 2, wantMethod: "CONNECT", wantHost: "proxy.golang.org", wantPort: 443, wantMinor: 1,
	},
	{
		name: "HTTP/1.0, no headers (Python http.client)",
		in: cat(
			"CONNECT pypi.org:443 HTTP/1.0\r\n", // request line
			"\r\n",                              // end of head
		),
		wantN: 33, wantMethod: "CONNECT", wantHost: "pypi.org", wantPort: 443, wantMinor: 0,
	},
	{
		name: "bare LF line endings",
		in: cat(
			"CONNECT a.example:8443 HTTP/1.1\n", // request line, bare LF
			"Host: a.example:8443\n",            // header, bare LF
			"\n",                                // empty line, bare LF
		),
		wantN: 32 + 21 + 1, wantMethod: "CONNECT", wantHost: "a.example", wantPort: 8443, wantMinor: 1,
	},
	{
		name: "mixed line endings",
		in: cat(
			"CONNECT a.example:1 HTTP/1.1\r\n", // CRLF
			"Host: a.example:1\n",              // bare LF
			"\r\n",                             // CRLF
		),
		wantN: 30 + 18 + 2, wantMethod: "CONNECT", wantHost: "a.example", wantPort: 1, wantMinor: 1,
	},
	{
		name: "optimistic TLS ClientHello after the head is left",
		in: cat(
			"CONNECT github.com:443 HTTP/1.1\r\n",  // request line
			"\r\n",                                 // end of head
			"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", // ClientHello: early data
		),
		wantN: 35, wantMethod: "CONNECT", wantHost: "github.com", wantPort: 443, wantMinor: 1,
	},
	{
		name: "Proxy-Authorization, name in any case, value trimmed",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n",              // request line
			"pRoXy-AuThOrIzAtIoN:  \tBasic dXNlcjpwYXNz \t\r\n", // OWS around the value
			"\r\n", // end of head
		),
		wantN: 34 + 45 + 2, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
		wantAuth: "Basic dXNlcjpwYXNz", hasAuth: true,
	},
	{
		name: "empty Proxy-Authorization is present, not nil",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n", // request line
			"Proxy-Authorization:\r\n",             // empty value
			"\r\n",                                 // end of head
		),
		wantN: 34 + 22 + 2, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
		hasAuth: true,
	},
	{
		name: "header value with obs-text, HTAB and empty values",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n", // request line
			"X-Note: caf\xc3\xa9\tok\r\n",          // obs-text and HTAB inside
			"X-Empty:\r\n",                         // empty value
			"\r\n",                                 // end of head
		),
		wantN: 34 + 18 + 10 + 2, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "trailing dot, upper case, underscore, leading zeros in port",
		in:    cat("CONNECT _Svc.Example.COM.:00443 HTTP/1.1\r\n", "\r\n"),
		wantN: 44, wantMethod: "CONNECT", wantHost: "_Svc.Example.COM.", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "port 65535, longest host",
		in:    cat("CONNECT ", host253, ":65535 HTTP/1.1\r\n", "\r\n"),
		wantN: 8 + 253 + 17 + 2, wantMethod: "CONNECT", wantHost: host253, wantPort: 65535, wantMinor: 1,
	},
	{
		name:  "longest host with trailing dot",
		in:    cat("CONNECT ", host253, ".:1 HTTP/1.1\r\n", "\r\n"),
		wantN: 8 + 254 + 13 + 2, wantMethod: "CONNECT", wantHost: host253 + ".", wantPort: 1, wantMinor: 1,
	},
	{
		name:  "a label that is numeric but not the last",
		in:    cat("CONNECT 1password.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 38, wantMethod: "CONNECT", wantHost: "1password.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "hex-looking last label that is not a number",
		in:    cat("CONNECT x.0xg:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 30, wantMethod: "CONNECT", wantHost: "x.0xg", wantPort: 443, wantMinor: 1,
	},

	// IP literals: 403.
	{
		name:  "IPv4 literal",
		in:    cat("CONNECT 1.2.3.4:443 HTTP/1.1\r\n", "Host: 1.2.3.4:443\r\n", "\r\n"),
		wantN: 32 + 19, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "1.2.3.4", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "IPv6 literal",
		in:    cat("CONNECT [::1]:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 30, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "::1", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "IPv6 literal without a port is still an IP literal",
		in:    cat("CONNECT [2001:db8::1] HTTP/1.1\r\n", "\r\n"),
		wantN: 34, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "2001:db8::1", wantMinor: 1,
	},
	{
		name:  "unbracketed IPv6",
		in:    cat("CONNECT 2001:db8::1:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 36, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "2001:db8::1", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "IPv4 shorthand 127.1 (inet_aton)",
		in:    cat("CONNECT 127.1:80 HTTP/1.1\r\n", "\r\n"),
		wantN: 29, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "127.1", wantPort: 80, wantMinor: 1,
	},
	{
		name:  "IPv4 as one decimal number",
		in:    cat("CONNECT 2130706433:80 HTTP/1.1\r\n", "\r\n"),
		wantN: 34, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "2130706433", wantPort: 80, wantMinor: 1,
	},
	{
		name:  "IPv4 in hex",
		in:    cat("CONNECT 0x7F.0.0.1:80 HTTP/1.1\r\n", "\r\n"),
		wantN: 34, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "0x7F.0.0.1", wantPort: 80, wantMinor: 1,
	},
	{
		name:  "IPv4 literal with a trailing dot",
		in:    cat("CONNECT 10.0.0.1.:22 HTTP/1.1\r\n", "\r\n"),
		wantN: 33, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "10.0.0.1.", wantPort: 22, wantMinor: 1,
	},
	{
		name:  "IP literal wins over a bad port",
		in:    cat("CONNECT 1.2.3.4 HTTP/1.1\r\n", "\r\n"),
		wantN: 28, wantErr: ErrIPLiteral, wantMethod: "CONNECT", wantHost: "1.2.3.4", wantMinor: 1,
	},

	// Bad ports: 400.
	{
		name:  "missing port",
		in:    cat("CONNECT example.com HTTP/1.1\r\n", "\r\n"),
		wantN: 32, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "empty port",
		in:    cat("CONNECT example.com: HTTP/1.1\r\n", "\r\n"),
		wantN: 33, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port 0",
		in:    cat("CONNECT example.com:0 HTTP/1.1\r\n", "\r\n"),
		wantN: 34, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port 65536",
		in:    cat("CONNECT example.com:65536 HTTP/1.1\r\n", "\r\n"),
		wantN: 38, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port overflowing 64 bits",
		in:    cat("CONNECT example.com:99999999999999999999999 HTTP/1.1\r\n", "\r\n"),
		wantN: 56, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port not digits",
		in:    cat("CONNECT example.com:https HTTP/1.1\r\n", "\r\n"),
		wantN: 38, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port with a sign",
		in:    cat("CONNECT example.com:+443 HTTP/1.1\r\n", "\r\n"),
		wantN: 37, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},
	{
		name:  "port followed by a path",
		in:    cat("CONNECT example.com:443/ HTTP/1.1\r\n", "\r\n"),
		wantN: 37, wantErr: ErrBadPort, wantMethod: "CONNECT", wantHost: "example.com", wantMinor: 1,
	},

	// Bad hosts: 400.
	{
		name:  "empty host",
		in:    cat("CONNECT :443 HTTP/1.1\r\n", "\r\n"),
		wantN: 25, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "empty brackets",
		in:    cat("CONNECT []:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 27, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "unterminated bracket",
		in:    cat("CONNECT [::1:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 29, wantErr: ErrBadHost, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "bytes after the bracket",
		in:    cat("CONNECT [::1]x:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 31, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "::1", wantMinor: 1,
	},
	{
		name:  "absolute URI as a CONNECT target",
		in:    cat("CONNECT https://example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 44, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "https://example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "userinfo",
		in:    cat("CONNECT u@example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 38, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "u@example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "percent-encoded byte",
		in:    cat("CONNECT evil%00.example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 44, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "evil%00.example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "empty label",
		in:    cat("CONNECT a..example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 39, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "a..example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "leading dot",
		in:    cat("CONNECT .example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 37, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: ".example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "only a dot",
		in:    cat("CONNECT .:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 26, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: ".", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "label of 64 bytes",
		in:    cat("CONNECT ", strings.Repeat("a", 64), ".com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 8 + 64 + 19 + 2, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: strings.Repeat("a", 64) + ".com", wantPort: 443, wantMinor: 1,
	},
	{
		name:  "host of 254 bytes",
		in:    cat("CONNECT x", host253, ":443 HTTP/1.1\r\n", "\r\n"),
		wantN: 8 + 254 + 15 + 2, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "x" + host253, wantPort: 443, wantMinor: 1,
	},
	{
		name:  "non-ASCII host",
		in:    cat("CONNECT b\xc3\xbccher.example:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 40, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "bad host wins over a bad port",
		in:    cat("CONNECT a_b*c HTTP/1.1\r\n", "\r\n"),
		wantN: 26, wantErr: ErrBadHost, wantMethod: "CONNECT", wantHost: "a_b*c", wantMinor: 1,
	},

	// Not CONNECT: 405.
	{
		name:  "GET absolute-form (HTTP_PROXY)",
		in:    cat("GET http://example.com/ HTTP/1.1\r\n", "Host: example.com\r\n", "\r\n"),
		wantN: 34 + 19 + 2, wantErr: ErrMethod, wantMethod: "GET", wantMinor: 1,
	},
	{
		name:  "POST origin-form",
		in:    cat("POST / HTTP/1.0\r\n", "Content-Length: 0\r\n", "\r\n"),
		wantN: 17 + 19 + 2, wantErr: ErrMethod, wantMethod: "POST", wantMinor: 0,
	},
	{
		name:  "methods are case-sensitive",
		in:    cat("connect example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 36, wantErr: ErrMethod, wantMethod: "connect", wantMinor: 1,
	},
	{
		name:  "OPTIONS asterisk-form",
		in:    cat("OPTIONS * HTTP/1.1\r\n", "\r\n"),
		wantN: 22, wantErr: ErrMethod, wantMethod: "OPTIONS", wantMinor: 1,
	},

	// Malformed: 400.
	{
		name:  "HTTP/0.9 style request line",
		in:    cat("GET /\r\n", "\r\n"),
		wantN: 9, wantErr: ErrMalformed, wantMethod: "GET",
	},
	{
		name:  "HTTP/2 preface",
		in:    cat("PRI * HTTP/2.0\r\n", "\r\n", "SM\r\n\r\n"),
		wantN: 18, wantErr: ErrMalformed, wantMethod: "PRI",
	},
	{
		name:  "HTTP/1.2",
		in:    cat("CONNECT example.com:443 HTTP/1.2\r\n", "\r\n"),
		wantN: 36, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "lower-case version",
		in:    cat("CONNECT example.com:443 http/1.1\r\n", "\r\n"),
		wantN: 36, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "no version",
		in:    cat("CONNECT example.com:443\r\n", "\r\n"),
		wantN: 27, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "two SP before the target",
		in:    cat("CONNECT  example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 37, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "trailing SP after the version",
		in:    cat("CONNECT example.com:443 HTTP/1.1 \r\n", "\r\n"),
		wantN: 37, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "HTAB as separator",
		in:    cat("CONNECT\texample.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 36, wantErr: ErrMalformed, wantMethod: "CONNECT\texample.com:443",
	},
	{
		name:  "empty method",
		in:    cat(" example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 29, wantErr: ErrMalformed, wantMethod: "",
	},
	{
		name:  "method not a token",
		in:    cat("CON(NECT example.com:443 HTTP/1.1\r\n", "\r\n"),
		wantN: 37, wantErr: ErrMalformed, wantMethod: "CON(NECT",
	},
	{
		name:  "bare CR in the request line",
		in:    cat("CONNECT example.com:443\rHTTP/1.1\r\n", "\r\n"),
		wantN: 36, wantErr: ErrMalformed, wantMethod: "CONNECT",
	},
	{
		name:  "empty request line",
		in:    cat("\r\n", "CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
		wantN: 2, wantErr: ErrMalformed,
	},
	{
		name:  "header line without a colon",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", "Host example.com\r\n", "\r\n"),
		wantN: 34 + 18 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "whitespace before the colon",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", "Host : example.com\r\n", "\r\n"),
		wantN: 34 + 20 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name: "obsolete line folding",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n", // request line
			"X-Long: a\r\n",                        // field line
			" b\r\n",                               // obs-fold continuation
			"\r\n",                                 // end of head
		),
		wantN: 34 + 11 + 4 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "empty field name",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", ": x\r\n", "\r\n"),
		wantN: 34 + 5 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "NUL in a field value",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", "X: a\x00b\r\n", "\r\n"),
		wantN: 34 + 8 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "bare CR in a field value",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", "X: a\rb\r\n", "\r\n"),
		wantN: 34 + 8 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name:  "CR CR LF ends no line",
		in:    cat("CONNECT example.com:443 HTTP/1.1\r\n", "\r\r\n", "\r\n"),
		wantN: 34 + 3 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
	},
	{
		name: "two Proxy-Authorization fields",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n", // request line
			"Proxy-Authorization: Basic YTpi\r\n",  // first credentials
			"proxy-authorization: Basic Yzpk\r\n",  // second credentials
			"\r\n",                                 // end of head
		),
		wantN: 34 + 33 + 33 + 2, wantErr: ErrMalformed, wantMethod: "CONNECT", wantMinor: 1,
		wantAuth: "Basic YTpi", hasAuth: true,
	},
	{
		name:  "header syntax is checked before the method",
		in:    cat("GET http://x/ HTTP/1.1\r\n", "Bad Header\r\n", "\r\n"),
		wantN: 24 + 12 + 2, wantErr: ErrMalformed, wantMethod: "GET", wantMinor: 1,
	},
	{
		name:  "the method is checked before the target",
		in:    cat("GET 1.2.3.4:0 HTTP/1.1\r\n", "\r\n"),
		wantN: 26, wantErr: ErrMethod, wantMethod: "GET", wantMinor: 1,
	},

	// Size cap: 431.
	{
		name: "no empty line within 8 KiB",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n",            // request line
			"X-Pad: "+strings.Repeat("a", MaxHeadSize)+"\r\n", // past the cap
			"\r\n", // too late
		),
		wantN: MaxHeadSize, wantErr: ErrTooLarge,
	},
	{
		name:  "8 KiB of garbage",
		in:    []byte(strings.Repeat("G", MaxHeadSize)),
		wantN: MaxHeadSize, wantErr: ErrTooLarge,
	},
	{
		name: "head of 8 KiB + 1, empty line split by the cap",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n",                   // request line: 34 bytes
			"X-Pad: "+strings.Repeat("a", MaxHeadSize-34-7-3)+"\r\n", // fills to 8 KiB - 1
			"\r\n", // empty line: bytes 8192 and 8193
		),
		wantN: MaxHeadSize, wantErr: ErrTooLarge,
	},
	{
		name: "head of exactly 8 KiB",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\r\n",                   // request line: 34 bytes
			"X-Pad: "+strings.Repeat("a", MaxHeadSize-34-7-4)+"\r\n", // fills to 8 KiB - 2
			"\r\n", // empty line: bytes 8191 and 8192
		),
		wantN: MaxHeadSize, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
	},
	{
		name: "head of exactly 8 KiB, bare LF",
		in: cat(
			"CONNECT example.com:443 HTTP/1.1\n",                   // request line: 33 bytes
			"X-Pad: "+strings.Repeat("a", MaxHeadSize-33-7-2)+"\n", // fills to 8 KiB - 1
			"\n", // empty line: byte 8192
		),
		wantN: MaxHeadSize, wantMethod: "CONNECT", wantHost: "example.com", wantPort: 443, wantMinor: 1,
	},
}

func TestParseRequest(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := ParseRequest(tt.in)
			if err != tt.wantErr || n != tt.wantN {
				t.Fatalf("ParseRequest(%.200q) = n %d, err %v; want n %d, err %v", tt.in, n, err, tt.wantN, tt.wantErr)
			}
			if string(r.Method) != tt.wantMethod || string(r.Host) != tt.wantHost || r.Port != tt.wantPort || r.Minor != tt.wantMinor {
				t.Errorf("Request = %q %q %d HTTP/1.%d; want %q %q %d HTTP/1.%d",
					r.Method, r.Host, r.Port, r.Minor, tt.wantMethod, tt.wantHost, tt.wantPort, tt.wantMinor)
			}
			if string(r.ProxyAuthorization) != tt.wantAuth || (r.ProxyAuthorization != nil) != tt.hasAuth {
				t.Errorf("ProxyAuthorization = %q (nil %v), want %q (present %v)", r.ProxyAuthorization, r.ProxyAuthorization == nil, tt.wantAuth, tt.hasAuth)
			}
			for name, s := range map[string][]byte{"Method": r.Method, "Host": r.Host, "ProxyAuthorization": r.ProxyAuthorization} {
				if cap(s) != len(s) {
					t.Errorf("%s has capacity %d beyond its length %d: appending would overwrite the input", name, cap(s), len(s))
				}
			}
		})
	}
}

func TestIPLiteralSaysUseAHostname(t *testing.T) {
	if ErrIPLiteral.Status != 403 || ErrIPLiteral.ProxyError != "blocked-ip-literal" || !strings.Contains(ErrIPLiteral.Msg, "hostname") {
		t.Errorf("ErrIPLiteral = %+v: want 403, blocked-ip-literal, a message saying to use a hostname", *ErrIPLiteral)
	}
	if !strings.Contains(ErrMethod.Msg, "CONNECT") || !strings.Contains(ErrBadPort.Msg, "host:port") {
		t.Errorf("ErrMethod or ErrBadPort message does not say what to send")
	}
}

// TestSizeCap checks the 8 KiB cap at its edges: ErrShort up to 8 KiB - 1
// bytes without an empty line, ErrTooLarge from 8 KiB on.
func TestSizeCap(t *testing.T) {
	line := "CONNECT example.com:443 HTTP/1.1\r\n"
	b := []byte(line + "X-Pad: " + strings.Repeat("a", 2*MaxHeadSize))
	for _, tc := range []struct {
		len   int
		wantN int
		want  error
	}{
		{MaxHeadSize - 1, 0, ErrShort},
		{MaxHeadSize, MaxHeadSize, ErrTooLarge},
		{MaxHeadSize + 1, MaxHeadSize, ErrTooLarge},
		{2 * MaxHeadSize, MaxHeadSize, ErrTooLarge},
	} {
		if _, n, err := ParseRequest(b[:tc.len]); err != tc.want || n != tc.wantN {
			t.Errorf("ParseRequest(%d bytes without an empty line) = %d, %v; want %d, %v", tc.len, n, err, tc.wantN, tc.want)
		}
		if _, n, err := ParseResponse(append([]byte("HTTP/1.1 200 OK\r\n"), b[:tc.len-17]...)); err != tc.want || n != tc.wantN {
			t.Errorf("ParseResponse(%d bytes without an empty line) = %d, %v; want %d, %v", tc.len, n, err, tc.wantN, tc.want)
		}
	}
}

// TestHeadSplitAcrossWrites feeds a head one byte at a time, as a client
// writing in small pieces would deliver it.
func TestHeadSplitAcrossWrites(t *testing.T) {
	head := cat("CONNECT example.com:443 HTTP/1.1\r\n", "Host: example.com:443\r\n", "\r\n")
	in := append(head, "\x16\x03\x01"...)
	var buf []byte
	for i, c := range in {
		buf = append(buf, c)
		r, n, err := ParseRequest(buf)
		switch {
		case i+1 < len(head):
			if err != ErrShort || n != 0 {
				t.Fatalf("after %d bytes: %d, %v; want 0, ErrShort", i+1, n, err)
			}
		default:
			if err != nil || n != len(head) || string(r.Host) != "example.com" || string(buf[n:]) != string(in[len(head):i+1]) {
				t.Fatalf("after %d bytes: %q %d, %v", i+1, r.Host, n, err)
			}
		}
	}
}
