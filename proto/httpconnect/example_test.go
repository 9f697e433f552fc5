package httpconnect_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fastsocks/fastsocks/proto/httpconnect"
)

// The server side, as an engine drives it: parse from the connection's
// input, act, append the answer to its output.
func Example() {
	// A client sent its CONNECT head and, without waiting, a TLS ClientHello.
	in := []byte("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")

	r, n, err := httpconnect.ParseRequest(in)
	if err != nil {
		return // ErrShort: read more; *Error: see ExampleParseRequest_refused
	}
	in = in[n:]
	fmt.Printf("CONNECT %s:%d, %d bytes of early data\n", r.Host, r.Port, len(in))

	// policy.Decide and the dial happen elsewhere; once connected:
	fmt.Printf("%q\n", httpconnect.AppendEstablished(nil))
	// Output:
	// CONNECT example.com:443, 3 bytes of early data
	// "HTTP/1.1 200 Connection Established\r\n\r\n"
}

// A refused request carries the answer to send before closing.
func ExampleParseRequest_refused() {
	in := []byte("CONNECT 1.2.3.4:443 HTTP/1.1\r\n\r\n")
	r, n, err := httpconnect.ParseRequest(in)
	var e *httpconnect.Error
	if errors.As(err, &e) {
		fmt.Printf("refused %s (%d bytes): %v\n", r.Host, n, err)
		// Print CRLF as the text \r\n, so the output shows the line ends.
		fmt.Print(strings.ReplaceAll(string(httpconnect.AppendErrorFor(nil, e)), "\r\n", `\r\n`+"\n"))
	}
	// Output:
	// refused 1.2.3.4 (32 bytes): httpconnect: IP address targets are refused: CONNECT to a hostname so the proxy can apply its hostname policy
	// HTTP/1.1 403 Forbidden\r\n
	// X-Proxy-Error: blocked-ip-literal\r\n
	// Content-Type: text/plain; charset=utf-8\r\n
	// Content-Length: 97\r\n
	// Connection: close\r\n
	// \r\n
	// IP address targets are refused: CONNECT to a hostname so the proxy can apply its hostname policy
}

// The client side: chain through an upstream proxy.
func ExampleParseResponse() {
	out := httpconnect.AppendConnect(nil, "example.com:443", "Basic dXNlcjpwYXNz")
	fmt.Printf("%q\n", out)

	// The upstream answered, and the target's first bytes came right after.
	in := []byte("HTTP/1.1 200 Connection established\r\nVia: 1.1 corp\r\n\r\n\x16\x03\x03")
	r, n, err := httpconnect.ParseResponse(in)
	if err != nil {
		return // ErrShort: read more; ErrResponse, ErrTooLarge: not an HTTP proxy
	}
	fmt.Println(r.Status, r.Established(), len(in[n:]), "tunnel bytes")
	// Output:
	// "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
	// 200 true 3 tunnel bytes
}
