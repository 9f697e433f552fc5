package httpconnect

import (
	"bytes"
	"strings"
	"testing"
)

// ---- Answers (RFC 9110 §9.3.6, §15; RFC 9112 §4, §6) ----

func TestAppendEstablished(t *testing.T) {
	want := cat(
		"HTTP/1.1",               // HTTP-version
		" ",                      // SP
		"200",                    // status-code
		" ",                      // SP
		"Connection Established", // reason-phrase
		"\r\n",                   // end of status line
		"\r\n",                   // empty line: the tunnel starts after it
	)
	if got := AppendEstablished(nil); !bytes.Equal(got, want) {
		t.Errorf("AppendEstablished = %q, want %q", got, want)
	}
}

// The acceptance criteria: one golden answer per status.
func TestAppendError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		proxyError string
		body       string
		want       []byte
	}{
		{
			name: "400 malformed", status: 400, body: "fastsocks: bad request",
			want: cat(
				"HTTP/1.1 400 Bad Request\r\n",                // status line
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 23\r\n",                      // body length, "\n" included
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"fastsocks: bad request\n",                    // body, one line
			),
		},
		{
			name: "403 blocked by the allow list", status: 403, proxyError: "blocked-by-allowlist",
			body: "fastsocks: evil.example is not in the allow list",
			want: cat(
				"HTTP/1.1 403 Forbidden\r\n",                         // status line
				"X-Proxy-Error: blocked-by-allowlist\r\n",            // why, for tools
				"Content-Type: text/plain; charset=utf-8\r\n",        // body type
				"Content-Length: 49\r\n",                             // body length
				"Connection: close\r\n",                              // closed after the answer
				"\r\n",                                               // empty line
				"fastsocks: evil.example is not in the allow list\n", // body
			),
		},
		{
			name: "403 blocked by the deny list", status: 403, proxyError: "blocked-by-denylist",
			body: "fastsocks: x.example is blocked by deny rule \"*.example\"\n",
			want: cat(
				"HTTP/1.1 403 Forbidden\r\n",                  // status line
				"X-Proxy-Error: blocked-by-denylist\r\n",      // why, for tools
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 57\r\n",                      // body length: its "\n" is not doubled
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"fastsocks: x.example is blocked by deny rule \"*.example\"\n", // body
			),
		},
		{
			name: "405 not CONNECT", status: 405, body: "only CONNECT",
			want: cat(
				"HTTP/1.1 405 Method Not Allowed\r\n",         // status line
				"Allow: CONNECT\r\n",                          // required with 405 (RFC 9110 §15.5.6)
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 13\r\n",                      // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"only CONNECT\n",                              // body
			),
		},
		{
			name: "407 credentials needed", status: 407, body: "credentials needed",
			want: cat(
				"HTTP/1.1 407 Proxy Authentication Required\r\n",    // status line
				"Proxy-Authenticate: Basic realm=\"fastsocks\"\r\n", // required with 407 (RFC 9110 §15.5.8)
				"Content-Type: text/plain; charset=utf-8\r\n",       // body type
				"Content-Length: 19\r\n",                            // body length
				"Connection: close\r\n",                             // closed after the answer
				"\r\n",                                              // empty line
				"credentials needed\n",                              // body
			),
		},
		{
			name: "431 head too large", status: 431, body: "too large",
			want: cat(
				"HTTP/1.1 431 Request Header Fields Too Large\r\n", // status line
				"Content-Type: text/plain; charset=utf-8\r\n",      // body type
				"Content-Length: 10\r\n",                           // body length
				"Connection: close\r\n",                            // closed after the answer
				"\r\n",                                             // empty line
				"too large\n",                                      // body
			),
		},
		{
			name: "502 dial failed", status: 502, proxyError: "dial-refused", body: "fastsocks: connection refused",
			want: cat(
				"HTTP/1.1 502 Bad Gateway\r\n",                // status line
				"X-Proxy-Error: dial-refused\r\n",             // why
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 30\r\n",                      // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"fastsocks: connection refused\n",             // body
			),
		},
		{
			name: "503 overloaded", status: 503, body: "busy",
			want: cat(
				"HTTP/1.1 503 Service Unavailable\r\n",        // status line
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 5\r\n",                       // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"busy\n",                                      // body
			),
		},
		{
			name: "504 dial timeout", status: 504, proxyError: "dial-timeout", body: "timeout",
			want: cat(
				"HTTP/1.1 504 Gateway Timeout\r\n",            // status line
				"X-Proxy-Error: dial-timeout\r\n",             // why
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 8\r\n",                       // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"timeout\n",                                   // body
			),
		},
		{
			name: "empty body becomes the reason phrase", status: 504,
			want: cat(
				"HTTP/1.1 504 Gateway Timeout\r\n",            // status line
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 16\r\n",                      // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"Gateway Timeout\n",                           // body: StatusText
			),
		},
		{
			name: "unknown status: empty reason phrase", status: 599, body: "x",
			want: cat(
				"HTTP/1.1 599 \r\n",                           // status line, SP and no reason
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 2\r\n",                       // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"x\n",                                         // body
			),
		},
		{
			name: "control bytes in proxyError cannot inject headers", status: 403,
			proxyError: "a\r\nSet-Cookie: x\x00\x7f", body: "b",
			want: cat(
				"HTTP/1.1 403 Forbidden\r\n",                  // status line
				"X-Proxy-Error: a??Set-Cookie: x??\r\n",       // CR, LF, NUL, DEL written as '?'
				"Content-Type: text/plain; charset=utf-8\r\n", // body type
				"Content-Length: 2\r\n",                       // body length
				"Connection: close\r\n",                       // closed after the answer
				"\r\n",                                        // empty line
				"b\n",                                         // body
			),
		},
	}
	for _, tt := range tests {
		if got := AppendError(nil, tt.status, tt.proxyError, tt.body); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: AppendError =\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
}

func TestAppendErrorPanicsOnBadStatus(t *testing.T) {
	for _, status := range []int{-1, 0, 99, 1000} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendError(%d) did not panic", status)
				}
			}()
			AppendError(nil, status, "", "x")
		}()
	}
}

// TestAppendErrorFor: every sentinel's answer carries its status, the
// headers the issue asks for, and its message as a one-line body.
func TestAppendErrorFor(t *testing.T) {
	for _, e := range sentinels {
		ans := AppendErrorFor(nil, e)
		if !bytes.Equal(ans, AppendError(nil, e.Status, e.ProxyError, e.Msg)) {
			t.Errorf("%v: AppendErrorFor differs from AppendError", e)
		}
		r, n, err := ParseResponse(ans)
		if err != nil || r.Status != e.Status {
			t.Errorf("%v: ParseResponse(answer) = %d, %v", e, r.Status, err)
			continue
		}
		head, body := string(ans[:n]), string(ans[n:])
		for _, h := range []string{"\r\nConnection: close\r\n", "\r\nContent-Type: text/plain; charset=utf-8\r\n", "\r\nContent-Length: "} {
			if !strings.Contains(head, h) {
				t.Errorf("%v: answer lacks %q:\n%s", e, h, head)
			}
		}
		if hasPE := strings.Contains(head, "\r\nX-Proxy-Error: "+e.ProxyError+"\r\n"); hasPE != (e.ProxyError != "") {
			t.Errorf("%v: X-Proxy-Error present %v, ProxyError %q", e, hasPE, e.ProxyError)
		}
		if body != e.Msg+"\n" || strings.Count(body, "\n") != 1 {
			t.Errorf("%v: body %q, want the message and one \\n", e, body)
		}
	}
	if ans := string(AppendErrorFor(nil, ErrMethod)); !strings.Contains(ans, "\r\nAllow: CONNECT\r\n") {
		t.Errorf("405 answer lacks Allow: CONNECT:\n%s", ans)
	}
}

func TestStatusText(t *testing.T) {
	for status, want := range map[int]string{
		200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
		407: "Proxy Authentication Required", 408: "Request Timeout", 429: "Too Many Requests",
		431: "Request Header Fields Too Large", 502: "Bad Gateway", 503: "Service Unavailable",
		504: "Gateway Timeout", 505: "HTTP Version Not Supported", 299: "", 999: "", 0: "",
	} {
		if got := StatusText(status); got != want {
			t.Errorf("StatusText(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	p := func() []byte { return append([]byte(nil), prefix...) }
	check := func(name string, got, msg []byte) {
		t.Helper()
		if !bytes.Equal(got, append(p(), msg...)) {
			t.Errorf("%s did not append after the existing bytes: %q", name, got)
		}
	}
	check("AppendEstablished", AppendEstablished(p()), AppendEstablished(nil))
	check("AppendError", AppendError(p(), 403, "x", "y"), AppendError(nil, 403, "x", "y"))
	check("AppendErrorFor", AppendErrorFor(p(), ErrBadPort), AppendErrorFor(nil, ErrBadPort))
	check("AppendConnect", AppendConnect(p(), "h:1", "a"), AppendConnect(nil, "h:1", "a"))
}
