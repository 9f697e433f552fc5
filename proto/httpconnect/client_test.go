package httpconnect

import (
	"bytes"
	"strings"
	"testing"
)

// cat joins head fields; golden heads are written one field per argument,
// each with a comment naming the field.
func cat(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// ---- AppendConnect (RFC 9110 §9.3.6, RFC 9112 §3.2.3) ----

func TestAppendConnect(t *testing.T) {
	tests := []struct {
		name            string
		authority, auth string
		want            []byte
	}{
		{
			name: "no credentials", authority: "example.com:443",
			want: cat(
				"CONNECT",                   // method
				" ",                         // SP
				"example.com:443",           // request-target, authority-form
				" ",                         // SP
				"HTTP/1.1",                  // HTTP-version
				"\r\n",                      // end of request line
				"Host: example.com:443\r\n", // Host field line
				"\r\n",                      // empty line: end of head
			),
		},
		{
			name: "with credentials", authority: "registry.npmjs.org:443", auth: "Basic dXNlcjpwYXNz",
			want: cat(
				"CONNECT",                          // method
				" ",                                // SP
				"registry.npmjs.org:443",           // request-target
				" ",                                // SP
				"HTTP/1.1",                         // HTTP-version
				"\r\n",                             // end of request line
				"Host: registry.npmjs.org:443\r\n", // Host field line
				"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n", // credentials
				"\r\n", // empty line: end of head
			),
		},
		{
			name: "IPv6 target, bracketed by the caller", authority: "[2001:db8::1]:8443",
			want: cat(
				"CONNECT",                      // method
				" ",                            // SP
				"[2001:db8::1]:8443",           // request-target
				" ",                            // SP
				"HTTP/1.1",                     // HTTP-version
				"\r\n",                         // end of request line
				"Host: [2001:db8::1]:8443\r\n", // Host field line
				"\r\n",                         // empty line: end of head
			),
		},
	}
	for _, tt := range tests {
		if got := AppendConnect(nil, tt.authority, tt.auth); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: AppendConnect = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestAppendConnectParses: what the client side sends, the server side
// accepts.
func TestAppendConnectParses(t *testing.T) {
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz"} {
		in := AppendConnect(nil, "github.com:443", auth)
		r, n, err := ParseRequest(in)
		if err != nil || n != len(in) || string(r.Method) != "CONNECT" || string(r.Host) != "github.com" ||
			r.Port != 443 || r.Minor != 1 || string(r.ProxyAuthorization) != auth || (auth == "") != (r.ProxyAuthorization == nil) {
			t.Errorf("ParseRequest(%q) = %+v, %d, %v", in, r, n, err)
		}
	}
}

// ---- ParseResponse (RFC 9112 §4) ----

// responseTests are golden response heads; the prefix, trailing-bytes and
// allocation tests reuse them.
var responseTests = []struct {
	name       string
	in         []byte
	wantN      int
	wantErr    error
	wantMinor  int
	wantStatus int
	wantReason string
}{
	{
		name: "200 Connection established",
		in: cat(
			"HTTP/1.1",               // HTTP-version
			" ",                      // SP
			"200",                    // status-code
			" ",                      // SP
			"Connection established", // reason-phrase
			"\r\n",                   // end of status line
			"\r\n",                   // empty line: end of head
		),
		wantN: 39, wantMinor: 1, wantStatus: 200, wantReason: "Connection established",
	},
	{
		name: "HTTP/1.0 with headers (squid)",
		in: cat(
			"HTTP/1.0 200 Connection established\r\n", // status line
			"Proxy-Agent: squid/6.6\r\n",              // header line, not kept
			"Via: 1.1 proxy.corp\r\n",                 // header line, not kept
			"\r\n",                                    // empty line: end of head
		),
		wantN: 84, wantMinor: 0, wantStatus: 200, wantReason: "Connection established",
	},
	{
		name: "tunnel bytes after the head are left",
		in: cat(
			"HTTP/1.1 200 OK\r\n",  // status line
			"\r\n",                 // empty line: end of head
			"\x16\x03\x03\x00\x7a", // a TLS ServerHello: the tunnel's
		),
		wantN: 19, wantMinor: 1, wantStatus: 200, wantReason: "OK",
	},
	{
		name: "bare LF line endings",
		in: cat(
			"HTTP/1.1 200 OK\n", // status line, bare LF
			"X-A: b\n",          // header line, bare LF
			"\n",                // empty line, bare LF
		),
		wantN: 24, wantMinor: 1, wantStatus: 200, wantReason: "OK",
	},
	{
		name: "no reason phrase, no SP",
		in: cat(
			"HTTP/1.1 200", // HTTP-version SP status-code
			"\r\n",         // end of status line
			"\r\n",         // empty line
		),
		wantN: 16, wantMinor: 1, wantStatus: 200,
	},
	{
		name: "empty reason phrase after SP",
		in: cat(
			"HTTP/1.1 200 ", // HTTP-version SP status-code SP
			"\r\n",          // end of status line
			"\r\n",          // empty line
		),
		wantN: 17, wantMinor: 1, wantStatus: 200,
	},
	{
		name: "407 with a body: the head ends at the empty line",
		in: cat(
			"HTTP/1.1 407 Proxy Authentication Required\r\n", // status line
			"Proxy-Authenticate: Basic realm=\"corp\"\r\n",   // challenge
			"Content-Length: 4\r\n",                          // body length
			"\r\n",                                           // empty line
			"no\r\n",                                         // body: not the head's
		),
		wantN: 44 + 40 + 19 + 2, wantMinor: 1, wantStatus: 407, wantReason: "Proxy Authentication Required",
	},
	{
		name: "reason with HTAB and obs-text",
		in: cat(
			"HTTP/1.1 503 Service\tUnavailable \xe2\x80\x94 try later\r\n", // status line
			"\r\n", // empty line
		),
		wantN: 50, wantMinor: 1, wantStatus: 503, wantReason: "Service\tUnavailable \xe2\x80\x94 try later",
	},
	{
		name:  "HTTP/1.9 is any HTTP/1.x",
		in:    cat("HTTP/1.9 100 Continue\r\n", "\r\n"),
		wantN: 25, wantMinor: 9, wantStatus: 100, wantReason: "Continue",
	},
	// Malformed status lines: ErrResponse at the first bad byte.
	{name: "not HTTP: SSH banner", in: []byte("SSH-2.0-OpenSSH_9.6\r\n"), wantN: 1, wantErr: ErrResponse},
	{name: "not HTTP: SOCKS5 reply", in: []byte{0x05, 0x00}, wantN: 1, wantErr: ErrResponse},
	{name: "lower-case http", in: []byte("http/1.1 200 OK\r\n\r\n"), wantN: 1, wantErr: ErrResponse},
	{name: "HTTP/2", in: []byte("HTTP/2 200\r\n\r\n"), wantN: 6, wantErr: ErrResponse},
	{name: "HTTP/1.x, x not a digit", in: []byte("HTTP/1.x 200 OK\r\n\r\n"), wantN: 8, wantErr: ErrResponse},
	{name: "two SP before status", in: []byte("HTTP/1.1  200 OK\r\n\r\n"), wantN: 10, wantErr: ErrResponse},
	{name: "status 600", in: []byte("HTTP/1.1 600 X\r\n\r\n"), wantN: 10, wantErr: ErrResponse},
	{name: "status 099", in: []byte("HTTP/1.1 099 X\r\n\r\n"), wantN: 10, wantErr: ErrResponse},
	{name: "two-digit status", in: []byte("HTTP/1.1 20 OK\r\n\r\n"), wantN: 12, wantErr: ErrResponse},
	{name: "four-digit status", in: []byte("HTTP/1.1 2000 OK\r\n\r\n"), wantN: 13, wantErr: ErrResponse},
	{name: "empty line first", in: []byte("\r\nHTTP/1.1 200 OK\r\n\r\n"), wantN: 1, wantErr: ErrResponse},
	{name: "bare CR in reason", in: []byte("HTTP/1.1 200 O\rK\r\n\r\n"), wantN: 16, wantErr: ErrResponse},
	{name: "bare CR after status", in: []byte("HTTP/1.1 200\rOK\r\n\r\n"), wantN: 14, wantErr: ErrResponse},
	{name: "NUL in reason", in: []byte("HTTP/1.1 200 O\x00K\r\n\r\n"), wantN: 15, wantErr: ErrResponse},
	{name: "DEL in reason", in: []byte("HTTP/1.1 200 O\x7fK\r\n\r\n"), wantN: 15, wantErr: ErrResponse},
	// Too large.
	{
		name: "no empty line within 8 KiB",
		in: cat(
			"HTTP/1.1 200 OK\r\n", // status line
			"X-Pad: "+strings.Repeat("a", MaxHeadSize)+"\r\n", // a header line past the cap
			"\r\n", // empty line, too late
		),
		wantN: MaxHeadSize, wantErr: ErrTooLarge,
	},
	{
		name:  "status line over 8 KiB",
		in:    cat("HTTP/1.1 200 ", strings.Repeat("a", MaxHeadSize), "\r\n\r\n"),
		wantN: MaxHeadSize, wantErr: ErrTooLarge,
	},
	{
		name: "head of exactly 8 KiB",
		in: cat(
			"HTTP/1.1 200 OK\r\n", // status line: 17 bytes
			"X-Pad: "+strings.Repeat("a", MaxHeadSize-17-7-4)+"\r\n", // fills to 8 KiB - 2
			"\r\n", // empty line: bytes 8191 and 8192
		),
		wantN: MaxHeadSize, wantMinor: 1, wantStatus: 200, wantReason: "OK",
	},
}

func TestParseResponse(t *testing.T) {
	for _, tt := range responseTests {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := ParseResponse(tt.in)
			if err != tt.wantErr || n != tt.wantN {
				t.Fatalf("ParseResponse(%q) = n %d, err %v; want n %d, err %v", tt.in, n, err, tt.wantN, tt.wantErr)
			}
			if r.Minor != tt.wantMinor || r.Status != tt.wantStatus || string(r.Reason) != tt.wantReason {
				t.Errorf("Response = %d %d %q, want %d %d %q", r.Minor, r.Status, r.Reason, tt.wantMinor, tt.wantStatus, tt.wantReason)
			}
			if err == nil && (r.Reason == nil || cap(r.Reason) != len(r.Reason)) {
				t.Errorf("Reason %q: want a non-nil slice with its capacity cut", r.Reason)
			}
		})
	}
}

func TestResponseEstablished(t *testing.T) {
	for status, want := range map[int]bool{100: false, 199: false, 200: true, 204: true, 299: true, 300: false, 407: false, 502: false} {
		if got := (Response{Status: status}).Established(); got != want {
			t.Errorf("Response{Status: %d}.Established() = %v, want %v", status, got, want)
		}
	}
}

// TestParseResponseOfOwnAnswers: the server side's answers are valid
// response heads, and their bodies follow the head.
func TestParseResponseOfOwnAnswers(t *testing.T) {
	r, n, err := ParseResponse(AppendEstablished(nil))
	if err != nil || n != len(established) || r.Status != 200 || r.Minor != 1 || string(r.Reason) != "Connection Established" {
		t.Errorf("ParseResponse(AppendEstablished) = %+v, %d, %v", r, n, err)
	}
	for _, status := range []int{400, 403, 405, 407, 431, 502, 503, 504} {
		ans := AppendError(nil, status, "x", "fastsocks: body")
		r, n, err := ParseResponse(ans)
		if err != nil || r.Status != status || string(r.Reason) != StatusText(status) {
			t.Errorf("ParseResponse(AppendError %d) = %+v, %d, %v", status, r, n, err)
			continue
		}
		if body := string(ans[n:]); body != "fastsocks: body\n" {
			t.Errorf("AppendError %d: body after the head = %q", status, body)
		}
	}
}

// TestParseResponseEarlyReject: a bad status line is rejected without
// waiting for more bytes, so an upstream that is not an HTTP proxy and then
// goes quiet is not waited on until the dial timeout.
func TestParseResponseEarlyReject(t *testing.T) {
	for _, in := range []string{"S", "HTTP/1.1 6", "HTTP/1.1 200x", "\x00"} {
		if _, n, err := ParseResponse([]byte(in)); err != ErrResponse || n != len(in) {
			t.Errorf("ParseResponse(%q) = %d, %v; want %d, ErrResponse", in, n, err, len(in))
		}
	}
}
