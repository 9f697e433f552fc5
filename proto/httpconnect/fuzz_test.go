package httpconnect

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"
)

// checkFraming asserts the parsing contract both parsers share, for any
// input b:
//   - 0 <= n <= len(b) and n <= MaxHeadSize;
//   - ErrShort comes with n == 0, and every prefix of a short input is
//     short too;
//   - any other error is one of the parser's sentinel *Error values, with
//     n >= 1;
//   - a framed result (nil or *Error) depends on b[:n] alone: b[:n] gives
//     the same result, b[:n] plus other trailing bytes gives the same result,
//     and every strict prefix of b[:n] is ErrShort (for a long input, a
//     sample of them: see prefixLens).
func checkFraming(t *testing.T, parse func([]byte) (int, error), b []byte, sentinels ...*Error) (int, error) {
	t.Helper()
	n, err := parse(b)
	if n < 0 || n > len(b) || n > MaxHeadSize {
		t.Fatalf("parse(%q): n = %d, outside 0..%d", b, n, min(len(b), MaxHeadSize))
	}
	if err == ErrShort {
		if n != 0 {
			t.Fatalf("parse(%q): ErrShort with n = %d", b, n)
		}
		for _, k := range prefixLens(b, len(b)) {
			if n, err := parse(b[:k]); err != ErrShort || n != 0 {
				t.Fatalf("parse(%q) is ErrShort but its %d-byte prefix gives %d, %v", b, k, n, err)
			}
		}
		return n, err
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !slices.Contains(sentinels, e) {
			t.Fatalf("parse(%q): err %#v is not one of this parser's sentinels", b, err)
		}
	}
	if n < 1 {
		t.Fatalf("parse(%q): framed result (err %v) with n = %d", b, err, n)
	}
	if n2, err2 := parse(b[:n]); n2 != n || err2 != err {
		t.Fatalf("parse(%q) = %d, %v but parse(b[:n]) = %d, %v", b, n, err, n2, err2)
	}
	for _, tail := range [][]byte{{0x00}, []byte("\n\r\n\n"), []byte("\x16\x03\x01"), bytes.Repeat([]byte{'a'}, MaxHeadSize)} {
		if n2, err2 := parse(append(b[:n:n], tail...)); n2 != n || err2 != err {
			t.Fatalf("parse(%q) = %d, %v but with other trailing bytes %d, %v", b, n, err, n2, err2)
		}
	}
	for _, k := range prefixLens(b, n) {
		if n2, err2 := parse(b[:k]); err2 != ErrShort || n2 != 0 {
			t.Fatalf("parse(%q) frames %d bytes but its %d-byte prefix gives %d, %v", b, n, k, n2, err2)
		}
	}
	return n, err
}

// prefixLens returns the lengths of the strict prefixes of b[:n] to check:
// all of them for a short input, and for a long one (parsing every prefix
// is quadratic, slow enough to stall the fuzzer's minimizer) the first and
// last 32, up to 32 ending just before or after a CR or LF (where a line or
// the head could end), and 32 spread through the rest.
func prefixLens(b []byte, n int) []int {
	ks := make([]int, 0, min(n, 160))
	if n <= 128 {
		for k := range n {
			ks = append(ks, k)
		}
		return ks
	}
	boundaries, stride := 0, n/32
	for k := range n {
		switch {
		case k < 32 || k >= n-32 || k%stride == 0:
			ks = append(ks, k)
		case boundaries < 32 && (b[k] == '\n' || b[k] == '\r' || b[k-1] == '\n' || b[k-1] == '\r'):
			ks = append(ks, k)
			boundaries++
		}
	}
	return ks
}

// addSeeds adds the golden inputs of at most 1 KiB as fuzz seeds. Larger
// ones (the size-cap tests) make the fuzzer spend its time minimizing
// kilobyte inputs; the cap has its own unit tests.
func addSeeds(f *testing.F, ins ...[]byte) {
	for _, in := range ins {
		if len(in) <= 1<<10 {
			f.Add(in)
		}
	}
}

// endsHead reports whether h ends with the empty line that ends a head.
func endsHead(h []byte) bool {
	return bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n")) ||
		string(h) == "\n" || string(h) == "\r\n"
}

func FuzzParseRequest(f *testing.F) {
	f.Add(AppendConnect(nil, "example.com:443", ""))
	f.Add(AppendConnect(nil, "registry.npmjs.org:443", "Basic dXNlcjpwYXNz"))
	f.Add(AppendConnect(nil, host253+".:65535", ""))
	f.Add(AppendConnect(nil, "1.2.3.4:443", ""))
	f.Add(AppendConnect(nil, "[2001:db8::1]:443", ""))
	f.Add(AppendConnect(nil, "example.com", ""))
	f.Add(AppendConnect(nil, "example.com:0", "x"))
	f.Add(append(AppendConnect(nil, "github.com:443", ""), "\x16\x03\x01\x02\x00"...))
	f.Add([]byte("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Add([]byte("CONNECT example.com:443 HTTP/1.0\n\n"))
	f.Add([]byte("\x05\x01\x00"))
	for _, tt := range requestTests {
		addSeeds(f, tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, n, err := ParseRequest(b); return n, err }
		n, err := checkFraming(t, parse, b, ErrTooLarge, ErrMalformed, ErrMethod, ErrBadPort, ErrBadHost, ErrIPLiteral)
		switch err {
		case ErrShort:
			return
		case ErrTooLarge:
			if n != MaxHeadSize || bytes.Contains(b[:n], []byte("\n\n")) || bytes.Contains(b[:n], []byte("\n\r\n")) {
				t.Fatalf("ErrTooLarge for %.100q with n %d", b, n)
			}
			return
		}
		if !endsHead(b[:n]) || n > MaxHeadSize {
			t.Fatalf("head %q does not end with an empty line", b[:n])
		}
		r, _, _ := ParseRequest(b)
		switch err {
		case ErrMethod:
			if string(r.Method) == "CONNECT" {
				t.Fatalf("ErrMethod for CONNECT: %q", b[:n])
			}
		case ErrIPLiteral, ErrBadHost, ErrBadPort:
			if string(r.Method) != "CONNECT" {
				t.Fatalf("%v for method %q", err, r.Method)
			}
		case nil:
			if string(r.Method) != "CONNECT" || len(r.Host) == 0 || r.Port == 0 || r.Minor > 1 {
				t.Fatalf("accepted %q as %+v", b[:n], r)
			}
			if _, perr := netip.ParseAddr(string(bytes.TrimSuffix(r.Host, []byte(".")))); perr == nil {
				t.Fatalf("accepted the IP literal %q", r.Host)
			}
			for _, c := range r.Host {
				if !isHostByte(c) && c != '.' {
					t.Fatalf("accepted host %q with byte %q", r.Host, c)
				}
			}
			// Re-encode what parsed: it parses back to the same request,
			// and re-encoding that gives the same bytes.
			authority := string(r.Host) + ":" + strconv.Itoa(int(r.Port))
			enc := AppendConnect(nil, authority, string(r.ProxyAuthorization))
			r2, n2, err2 := ParseRequest(enc)
			if err2 != nil || n2 != len(enc) || !bytes.Equal(r2.Host, r.Host) || r2.Port != r.Port ||
				!bytes.Equal(r2.ProxyAuthorization, r.ProxyAuthorization) {
				t.Fatalf("re-encoded %q parses as %+v, %d, %v; want %+v", enc, r2, n2, err2, r)
			}
			if enc2 := AppendConnect(nil, string(r2.Host)+":"+strconv.Itoa(int(r2.Port)), string(r2.ProxyAuthorization)); !bytes.Equal(enc2, enc) {
				t.Fatalf("re-encoding is not stable: %q then %q", enc, enc2)
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add(AppendEstablished(nil))
	f.Add(append(AppendEstablished(nil), "\x16\x03\x03\x00\x7a"...))
	for _, status := range []int{400, 403, 405, 407, 431, 502, 503, 504, 599} {
		f.Add(AppendError(nil, status, "blocked-by-allowlist", "fastsocks: body"))
	}
	for _, e := range sentinels {
		f.Add(AppendErrorFor(nil, e))
	}
	f.Add(AppendConnect(nil, "example.com:443", "")) // a request is not a response
	f.Add([]byte("HTTP/1.0 200\n\n"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	for _, tt := range responseTests {
		addSeeds(f, tt.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parse := func(b []byte) (int, error) { _, n, err := ParseResponse(b); return n, err }
		n, err := checkFraming(t, parse, b, ErrTooLarge, ErrResponse)
		switch err {
		case ErrShort, ErrResponse:
			return
		case ErrTooLarge:
			if n != MaxHeadSize {
				t.Fatalf("ErrTooLarge with n %d", n)
			}
			return
		}
		if !endsHead(b[:n]) || !bytes.HasPrefix(b, []byte("HTTP/1.")) {
			t.Fatalf("accepted head %q", b[:n])
		}
		r, _, _ := ParseResponse(b)
		if r.Minor < 0 || r.Minor > 9 || r.Status < 100 || r.Status > 599 || r.Reason == nil {
			t.Fatalf("accepted %q as %+v", b[:n], r)
		}
		// Re-encode what parsed; it parses back to the same response.
		enc := fmt.Appendf(nil, "HTTP/1.%d %d %s\n\n", r.Minor, r.Status, r.Reason) // bare LF: never longer than b[:n]
		r2, n2, err2 := ParseResponse(enc)
		if err2 != nil || n2 != len(enc) || r2.Minor != r.Minor || r2.Status != r.Status || !bytes.Equal(r2.Reason, r.Reason) {
			t.Fatalf("re-encoded %q parses as %+v, %d, %v; want %+v", enc, r2, n2, err2, r)
		}
	})
}
