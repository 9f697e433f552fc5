package httpconnect

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sentinels are every *Error the package returns.
var sentinels = []*Error{ErrTooLarge, ErrMalformed, ErrMethod, ErrBadPort, ErrBadHost, ErrIPLiteral, ErrResponse}

// parsers adapt both parsers to one shape for the framing tests.
var parsers = map[string]func([]byte) (int, error){
	"request":  func(b []byte) (int, error) { _, n, err := ParseRequest(b); return n, err },
	"response": func(b []byte) (int, error) { _, n, err := ParseResponse(b); return n, err },
}

// framedHeads returns, per parser, heads it frames (valid or refused, but
// with the empty line present).
func framedHeads() map[string][][]byte {
	m := map[string][][]byte{}
	for _, tt := range requestTests {
		if tt.wantErr != ErrTooLarge {
			m["request"] = append(m["request"], tt.in[:tt.wantN])
		}
	}
	m["request"] = append(m["request"],
		AppendConnect(nil, "example.com:443", ""),
		AppendConnect(nil, "example.com:443", "Basic dXNlcjpwYXNz"),
		AppendConnect(nil, "[::1]:443", ""),
	)
	for _, tt := range responseTests {
		if tt.wantErr == nil {
			m["response"] = append(m["response"], tt.in[:tt.wantN])
		}
	}
	m["response"] = append(m["response"], AppendEstablished(nil))
	for _, e := range sentinels {
		ans := AppendErrorFor(nil, e)
		_, n, _ := ParseResponse(ans)
		m["response"] = append(m["response"], ans[:n])
	}
	return m
}

func TestEveryPrefixIsShort(t *testing.T) {
	for kind, heads := range framedHeads() {
		parse := parsers[kind]
		for _, head := range heads {
			n, err := parse(head)
			if err == ErrShort || n != len(head) {
				t.Errorf("%s: parse(%.80q) = %d, %v: want the whole head framed", kind, head, n, err)
				continue
			}
			for k := range len(head) {
				if n, err := parse(head[:k]); err != ErrShort || n != 0 {
					t.Errorf("%s: parse of %d-byte prefix of %.80q = %d, %v; want 0, ErrShort", kind, k, head, n, err)
				}
			}
		}
	}
}

func TestPrefixIsShortZeroMessage(t *testing.T) {
	full := AppendConnect(nil, "example.com:443", "Basic x")
	for k := range len(full) {
		if r, n, err := ParseRequest(full[:k]); err != ErrShort || n != 0 || r.Method != nil || r.Host != nil ||
			r.Port != 0 || r.Minor != 0 || r.ProxyAuthorization != nil {
			t.Errorf("ParseRequest(prefix %d) = %+v, %d, %v; want zero, 0, ErrShort", k, r, n, err)
		}
	}
	full = AppendEstablished(nil)
	for k := range len(full) {
		if r, n, err := ParseResponse(full[:k]); err != ErrShort || n != 0 || r.Minor != 0 || r.Status != 0 || r.Reason != nil {
			t.Errorf("ParseResponse(prefix %d) = %+v, %d, %v; want zero, 0, ErrShort", k, r, n, err)
		}
	}
}

func TestTrailingBytesDoNotChangeResult(t *testing.T) {
	tails := [][]byte{{0x00}, []byte("\x16\x03\x01\x00"), []byte("\r\n\r\n"), []byte("GET / HTTP/1.1\r\n\r\n"), []byte(strings.Repeat("x", MaxHeadSize))}
	for kind, heads := range framedHeads() {
		parse := parsers[kind]
		for _, head := range heads {
			n0, err0 := parse(head)
			for _, tail := range tails {
				b := append(append([]byte(nil), head...), tail...)
				if n, err := parse(b); n != n0 || err != err0 {
					t.Errorf("%s: parse(%.80q + tail %.20q) = %d, %v; without the tail %d, %v", kind, head, tail, n, err, n0, err0)
				}
			}
		}
	}
}

func TestErrorsAreAnswerable(t *testing.T) {
	for i, e := range sentinels {
		if !strings.HasPrefix(e.Error(), "httpconnect: ") || len(e.Msg) == 0 || strings.ContainsAny(e.Msg, "\r\n") {
			t.Errorf("Error() = %q: want \"httpconnect: \" and a one-line message", e.Error())
		}
		if StatusText(e.Status) == "" || e.Status < 400 {
			t.Errorf("%v: status %d is not a known error status", e, e.Status)
		}
		wrapped := fmt.Errorf("client 10.0.0.1:5555, head: %w", e)
		var got *Error
		if !errors.As(wrapped, &got) || got != e || !errors.Is(wrapped, e) {
			t.Errorf("%v: errors.As/Is through %%w failed", e)
		}
		for j, other := range sentinels {
			if i != j && errors.Is(e, other) {
				t.Errorf("errors.Is(%v, %v) = true", e, other)
			}
		}
	}
	var e *Error
	if errors.As(ErrShort, &e) {
		t.Error("ErrShort is an *Error; it must be distinct from malformed input")
	}
	for e, status := range map[*Error]int{ErrTooLarge: 431, ErrMalformed: 400, ErrMethod: 405, ErrBadPort: 400, ErrBadHost: 400, ErrIPLiteral: 403, ErrResponse: 502} {
		if e.Status != status {
			t.Errorf("%v: Status %d, want %d", e, e.Status, status)
		}
	}
}

// ---- Allocations ----

var (
	sinkRequest  Request
	sinkResponse Response
	sinkN        int
	sinkErr      error
	sinkBytes    []byte
)

func TestZeroAllocs(t *testing.T) {
	type alloc struct {
		name string
		f    func()
	}
	var cases []alloc
	for _, tt := range requestTests {
		b := tt.in
		cases = append(cases, alloc{"ParseRequest " + tt.name, func() {
			sinkRequest, sinkN, sinkErr = ParseRequest(b)
		}})
	}
	short := AppendConnect(nil, "example.com:443", "")[:30]
	cases = append(cases, alloc{"ParseRequest short", func() {
		sinkRequest, sinkN, sinkErr = ParseRequest(short)
	}})
	for _, tt := range responseTests {
		b := tt.in
		cases = append(cases, alloc{"ParseResponse " + tt.name, func() {
			sinkResponse, sinkN, sinkErr = ParseResponse(b)
		}})
	}
	shortResp := []byte("HTTP/1.1 200 OK\r\n")
	cases = append(cases, alloc{"ParseResponse short", func() {
		sinkResponse, sinkN, sinkErr = ParseResponse(shortResp)
	}})
	buf := make([]byte, 0, 512)
	cases = append(cases,
		alloc{"AppendEstablished", func() { sinkBytes = AppendEstablished(buf[:0]) }},
		alloc{"AppendError", func() {
			sinkBytes = AppendError(buf[:0], 403, ProxyErrorBlockedByAllowlist, "fastsocks: x is not in the allow list")
		}},
		alloc{"AppendErrorFor", func() { sinkBytes = AppendErrorFor(buf[:0], ErrIPLiteral) }},
		alloc{"AppendConnect", func() { sinkBytes = AppendConnect(buf[:0], "example.com:443", "Basic dXNlcjpwYXNz") }},
	)
	for _, c := range cases {
		if got := testing.AllocsPerRun(1000, c.f); got != 0 {
			t.Errorf("%s: %v allocations per run, want 0", c.name, got)
		}
	}
}
