package socks5_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// The server side of a handshake, as an engine drives it: parse from the
// connection's input, act, append the answer to its output.
func Example() {
	// A client sent its greeting and, without waiting, its request.
	in := socks5.AppendGreeting(nil, socks5.MethodNoAuth)
	in = socks5.AppendRequest(in, socks5.CmdConnect, "example.com", 443)
	var out []byte

	g, n, err := socks5.ParseGreeting(in)
	if err != nil {
		return // ErrShort: read more; ErrVersion: close, nothing to send
	}
	in = in[n:]
	if !g.Offers(socks5.MethodNoAuth) {
		out = socks5.AppendMethod(out, socks5.MethodNoAcceptable) // then close
		return
	}
	out = socks5.AppendMethod(out, socks5.MethodNoAuth)

	r, n, err := socks5.ParseRequest(in)
	if err != nil {
		return // see ExampleParseRequest_refused
	}
	in = in[n:]
	fmt.Printf("CONNECT %s:%d, %d bytes of early data\n", r.Host, r.Port, len(in))

	// policy.Decide and the dial happen elsewhere; on success reply with the
	// upstream socket's local address.
	out = socks5.AppendReply(out, socks5.RepSucceeded, netip.MustParseAddrPort("10.0.0.5:40000"))
	fmt.Printf("% x\n", out)
	// Output:
	// CONNECT example.com:443, 0 bytes of early data
	// 05 00 05 00 00 01 0a 00 00 05 9c 40
}

// A refused request carries the reply to send before closing.
func ExampleParseRequest_refused() {
	in := []byte{
		0x05,       // VER
		0x01,       // CMD: CONNECT
		0x00,       // RSV
		0x01,       // ATYP: IPv4 (socks5://, resolved by the client)
		1, 2, 3, 4, // DST.ADDR
		0x01, 0xBB, // DST.PORT: 443
	}
	r, n, err := socks5.ParseRequest(in)
	var e *socks5.Error
	if errors.As(err, &e) && !e.NoReply {
		fmt.Printf("refused %v %v:%d (%d bytes): %v\n", r.Cmd, r.Addr, r.Port, n, err)
		fmt.Printf("REP %#02x %v\n", byte(e.Reply), e.Reply)
		fmt.Printf("% x\n", socks5.AppendReply(nil, e.Reply, netip.AddrPort{}))
	}
	// Output:
	// refused CONNECT 1.2.3.4:443 (10 bytes): socks5: IP address destinations are refused: the proxy checks hostnames; use socks5h:// (proxy-side resolution) or a hostname
	// REP 0x08 address type not supported
	// 05 08 00 01 00 00 00 00 00 00
}
