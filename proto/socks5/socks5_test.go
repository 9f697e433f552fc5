package socks5

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// cat joins message fields; golden messages are written one field per
// argument, each with a comment naming the field.
func cat(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// host255 is a DOMAIN address of the longest length the wire can carry.
var host255 = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." +
	strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) + ".x"

func TestHost255Length(t *testing.T) {
	if len(host255) != 255 {
		t.Fatalf("host255 has %d bytes, want 255", len(host255))
	}
}

// ---- Greeting (RFC 1928 §3) ----

func TestAppendMethod(t *testing.T) {
	tests := []struct {
		m    Method
		want []byte
	}{
		{MethodNoAuth, cat(
			[]byte{0x05}, // VER
			[]byte{0x00}, // METHOD: NO AUTHENTICATION REQUIRED
		)},
		{MethodNoAcceptable, cat(
			[]byte{0x05}, // VER
			[]byte{0xFF}, // METHOD: NO ACCEPTABLE METHODS
		)},
		{MethodUserPass, cat(
			[]byte{0x05}, // VER
			[]byte{0x02}, // METHOD: USERNAME/PASSWORD
		)},
	}
	for _, tt := range tests {
		if got := AppendMethod(nil, tt.m); !bytes.Equal(got, tt.want) {
			t.Errorf("AppendMethod(%v) = % x, want % x", tt.m, got, tt.want)
		}
	}
}

func TestAppendGreeting(t *testing.T) {
	want := cat(
		[]byte{0x05},       // VER
		[]byte{0x02},       // NMETHODS
		[]byte{0x00, 0x02}, // METHODS: no auth, username/password
	)
	if got := AppendGreeting(nil, MethodNoAuth, MethodUserPass); !bytes.Equal(got, want) {
		t.Errorf("AppendGreeting = % x, want % x", got, want)
	}
	want = cat(
		[]byte{0x05}, // VER
		[]byte{0x00}, // NMETHODS: none
	)
	if got := AppendGreeting(nil); !bytes.Equal(got, want) {
		t.Errorf("AppendGreeting() = % x, want % x", got, want)
	}
}

func TestParseGreeting(t *testing.T) {
	all := make([]byte, 255)
	for i := range all {
		all[i] = byte(i + 1) // 0x01..0xFF: everything but no-auth
	}
	tests := []struct {
		name        string
		in          []byte
		wantMethods []byte
		wantN       int
		wantErr     error
		wantNoAuth  bool
	}{
		{
			name: "no auth",
			in: cat(
				[]byte{0x05}, // VER
				[]byte{0x01}, // NMETHODS
				[]byte{0x00}, // METHODS: no auth
			),
			wantMethods: []byte{0x00}, wantN: 3, wantNoAuth: true,
		},
		{
			name: "three methods, no auth last",
			in: cat(
				[]byte{0x05},             // VER
				[]byte{0x03},             // NMETHODS
				[]byte{0x01, 0x02, 0x00}, // METHODS: GSSAPI, user/pass, no auth
			),
			wantMethods: []byte{0x01, 0x02, 0x00}, wantN: 5, wantNoAuth: true,
		},
		{
			name: "user/pass only: engine replies 05 FF",
			in: cat(
				[]byte{0x05}, // VER
				[]byte{0x01}, // NMETHODS
				[]byte{0x02}, // METHODS: user/pass
			),
			wantMethods: []byte{0x02}, wantN: 3,
		},
		{
			name: "NMETHODS 0 is a valid greeting offering nothing",
			in: cat(
				[]byte{0x05}, // VER
				[]byte{0x00}, // NMETHODS
			),
			wantMethods: []byte{}, wantN: 2,
		},
		{
			name: "255 methods",
			in: cat(
				[]byte{0x05}, // VER
				[]byte{0xFF}, // NMETHODS
				all,          // METHODS 0x01..0xFF
			),
			wantMethods: all, wantN: 257,
		},
		{
			name: "request sent without waiting is left for the caller",
			in: cat(
				[]byte{0x05},                           // VER
				[]byte{0x01},                           // NMETHODS
				[]byte{0x00},                           // METHODS: no auth
				AppendRequest(nil, CmdConnect, "a", 1), // the pipelined request
			),
			wantMethods: []byte{0x00}, wantN: 3, wantNoAuth: true,
		},
		{
			name: "SOCKS4 client",
			in: cat(
				[]byte{0x04},             // VN: SOCKS4
				[]byte{0x01},             // CD: CONNECT
				[]byte{0x00, 0x50},       // DSTPORT
				[]byte{127, 0, 0, 1},     // DSTIP
				[]byte{'u', 's', 'r', 0}, // USERID
			),
			wantN: 1, wantErr: ErrVersion,
		},
		{
			name:  "HTTP client",
			in:    []byte("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
			wantN: 1, wantErr: ErrVersion,
		},
		{
			name:  "VER wrong with nothing else yet: no need to wait",
			in:    []byte{0x00}, // VER
			wantN: 1, wantErr: ErrVersion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, n, err := ParseGreeting(tt.in)
			if err != tt.wantErr || n != tt.wantN {
				t.Fatalf("ParseGreeting(% x) = n %d, err %v; want n %d, err %v", tt.in, n, err, tt.wantN, tt.wantErr)
			}
			if !bytes.Equal(g.Methods, tt.wantMethods) {
				t.Errorf("Methods = % x, want % x", g.Methods, tt.wantMethods)
			}
			if got := g.Offers(MethodNoAuth); got != tt.wantNoAuth {
				t.Errorf("Offers(MethodNoAuth) = %v, want %v", got, tt.wantNoAuth)
			}
		})
	}
}

func TestErrVersionSendsNothing(t *testing.T) {
	_, _, err := ParseGreeting([]byte{0x04, 0x01, 0x00})
	var e *Error
	if !errors.As(err, &e) || !e.NoReply {
		t.Fatalf("greeting VER 4: err = %#v, want an *Error with NoReply", err)
	}
}

func TestGreetingOffers(t *testing.T) {
	g := Greeting{Methods: []byte{0x01, 0x02}}
	for m, want := range map[Method]bool{MethodNoAuth: false, MethodGSSAPI: true, MethodUserPass: true, MethodNoAcceptable: false} {
		if got := g.Offers(m); got != want {
			t.Errorf("Offers(%v) = %v, want %v", m, got, want)
		}
	}
	if (Greeting{}).Offers(MethodNoAuth) {
		t.Error("empty greeting offers no auth")
	}
}

// ---- Request (RFC 1928 §4, §5) ----

func TestAppendRequest(t *testing.T) {
	want := cat(
		[]byte{0x05},          // VER
		[]byte{0x01},          // CMD: CONNECT
		[]byte{0x00},          // RSV
		[]byte{0x03},          // ATYP: DOMAIN
		[]byte{11},            // domain length
		[]byte("example.com"), // DST.ADDR
		[]byte{0x01, 0xBB},    // DST.PORT: 443
	)
	if got := AppendRequest(nil, CmdConnect, "example.com", 443); !bytes.Equal(got, want) {
		t.Errorf("AppendRequest = % x, want % x", got, want)
	}
}

func TestAppendRequestPanicsOnLongHost(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendRequest with a 256-byte host did not panic")
		}
	}()
	AppendRequest(nil, CmdConnect, host255+"x", 443)
}

// requestTests are golden requests; the prefix and allocation tests reuse
// them.
var requestTests = []struct {
	name     string
	in       []byte
	wantN    int
	wantErr  error
	wantRep  ReplyCode // when wantErr != nil
	wantCmd  Command
	wantATYP AddrType
	wantHost string
	wantAddr netip.Addr
	wantPort uint16
}{
	{
		name: "CONNECT domain",
		in: cat(
			[]byte{0x05},          // VER
			[]byte{0x01},          // CMD: CONNECT
			[]byte{0x00},          // RSV
			[]byte{0x03},          // ATYP: DOMAIN
			[]byte{11},            // domain length
			[]byte("example.com"), // DST.ADDR
			[]byte{0x01, 0xBB},    // DST.PORT: 443
		),
		wantN: 18, wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "example.com", wantPort: 443,
	},
	{
		name: "CONNECT domain, early data left for the caller",
		in: cat(
			[]byte{0x05},                            // VER
			[]byte{0x01},                            // CMD: CONNECT
			[]byte{0x00},                            // RSV
			[]byte{0x03},                            // ATYP: DOMAIN
			[]byte{10},                              // domain length
			[]byte("github.com"),                    // DST.ADDR
			[]byte{0x00, 0x50},                      // DST.PORT: 80
			[]byte("GET / HTTP/1.1\r\nHost: g\r\n"), // early data, not ours
		),
		wantN: 17, wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "github.com", wantPort: 80,
	},
	{
		name: "CONNECT domain, non-zero RSV accepted",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0xA5},       // RSV: non-zero, ignored
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{1},          // domain length
			[]byte("x"),        // DST.ADDR
			[]byte{0xFF, 0xFF}, // DST.PORT: 65535
		),
		wantN: 8, wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "x", wantPort: 65535,
	},
	{
		name: "CONNECT 255-byte domain",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{0xFF},       // domain length: 255
			[]byte(host255),    // DST.ADDR
			[]byte{0x20, 0xFB}, // DST.PORT: 8443
		),
		wantN: 4 + 1 + 255 + 2, wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: host255, wantPort: 8443,
	},
	{
		name: "CONNECT domain with every printable byte class",
		in: cat(
			[]byte{0x05},                      // VER
			[]byte{0x01},                      // CMD: CONNECT
			[]byte{0x00},                      // RSV
			[]byte{0x03},                      // ATYP: DOMAIN
			[]byte{5},                         // domain length
			[]byte{0x21, 'A', '-', '.', 0x7E}, // DST.ADDR: '!' and '~' are the edges
			[]byte{0x00, 0x16},                // DST.PORT: 22
		),
		wantN: 12, wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "!A-.~", wantPort: 22,
	},
	{
		name: "BIND -> 07",
		in: cat(
			[]byte{0x05},          // VER
			[]byte{0x02},          // CMD: BIND
			[]byte{0x00},          // RSV
			[]byte{0x03},          // ATYP: DOMAIN
			[]byte{11},            // domain length
			[]byte("example.com"), // DST.ADDR
			[]byte{0x00, 0x50},    // DST.PORT: 80
		),
		wantN: 18, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: CmdBind, wantATYP: AddrDomain, wantHost: "example.com", wantPort: 80,
	},
	{
		name: "UDP ASSOCIATE -> 07",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x03},       // CMD: UDP ASSOCIATE
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{4},          // domain length
			[]byte("dns."),     // DST.ADDR
			[]byte{0x00, 0x35}, // DST.PORT: 53
		),
		wantN: 11, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: CmdUDPAssociate, wantATYP: AddrDomain, wantHost: "dns.", wantPort: 53,
	},
	{
		name: "unknown command 0x00 -> 07",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x00},       // CMD: unknown
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{1},          // domain length
			[]byte("h"),        // DST.ADDR
			[]byte{0x00, 0x50}, // DST.PORT: 80
		),
		wantN: 8, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: 0x00, wantATYP: AddrDomain, wantHost: "h", wantPort: 80,
	},
	{
		name: "unknown command 0xF0 -> 07",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0xF0},       // CMD: unknown
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{1},          // domain length
			[]byte("h"),        // DST.ADDR
			[]byte{0x00, 0x50}, // DST.PORT: 80
		),
		wantN: 8, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: 0xF0, wantATYP: AddrDomain, wantHost: "h", wantPort: 80,
	},
	{
		name: "precedence: BIND to IPv4 literal -> 07, not 08",
		in: cat(
			[]byte{0x05},         // VER
			[]byte{0x02},         // CMD: BIND
			[]byte{0x00},         // RSV
			[]byte{0x01},         // ATYP: IPv4
			[]byte{192, 0, 2, 1}, // DST.ADDR
			[]byte{0x1F, 0x90},   // DST.PORT: 8080
		),
		wantN: 10, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: CmdBind, wantATYP: AddrIPv4, wantAddr: netip.MustParseAddr("192.0.2.1"), wantPort: 8080,
	},
	{
		name: "precedence: UDP ASSOCIATE with empty domain -> 07, not 01",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x03},       // CMD: UDP ASSOCIATE
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{0},          // domain length: 0
			[]byte{0x00, 0x00}, // DST.PORT: 0
		),
		wantN: 7, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: CmdUDPAssociate, wantATYP: AddrDomain, wantHost: "", wantPort: 0,
	},
	{
		name: "precedence: BIND with a space in the domain -> 07, not 01",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x02},       // CMD: BIND
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{3},          // domain length
			[]byte("a b"),      // DST.ADDR
			[]byte{0x00, 0x50}, // DST.PORT: 80
		),
		wantN: 10, wantErr: ErrCommandNotSupported, wantRep: RepCommandNotSupported,
		wantCmd: CmdBind, wantATYP: AddrDomain, wantHost: "a b", wantPort: 80,
	},
	{
		name: "IPv4 literal -> 08",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0x00},       // RSV
			[]byte{0x01},       // ATYP: IPv4
			[]byte{1, 2, 3, 4}, // DST.ADDR
			[]byte{0x01, 0xBB}, // DST.PORT: 443
		),
		wantN: 10, wantErr: ErrIPLiteral, wantRep: RepAddrTypeNotSupported,
		wantCmd: CmdConnect, wantATYP: AddrIPv4, wantAddr: netip.MustParseAddr("1.2.3.4"), wantPort: 443,
	},
	{
		name: "IPv6 literal -> 08",
		in: cat(
			[]byte{0x05}, // VER
			[]byte{0x01}, // CMD: CONNECT
			[]byte{0x00}, // RSV
			[]byte{0x04}, // ATYP: IPv6
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}, // DST.ADDR: 2001:db8::1
			[]byte{0x01, 0xBB}, // DST.PORT: 443
		),
		wantN: 22, wantErr: ErrIPLiteral, wantRep: RepAddrTypeNotSupported,
		wantCmd: CmdConnect, wantATYP: AddrIPv6, wantAddr: netip.MustParseAddr("2001:db8::1"), wantPort: 443,
	},
	{
		name: "unknown ATYP 0x02 -> 08 at once (length unknown)",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0x00},       // RSV
			[]byte{0x02},       // ATYP: unknown
			[]byte{1, 2, 3, 4}, // whatever follows: not read
		),
		wantN: 4, wantErr: ErrAddrType, wantRep: RepAddrTypeNotSupported,
		wantCmd: CmdConnect, wantATYP: 0x02,
	},
	{
		name: "precedence: unknown ATYP with BIND -> 08 (cannot frame the address)",
		in: cat(
			[]byte{0x05}, // VER
			[]byte{0x02}, // CMD: BIND
			[]byte{0x00}, // RSV
			[]byte{0xFF}, // ATYP: unknown; nothing after it yet
		),
		wantN: 4, wantErr: ErrAddrType, wantRep: RepAddrTypeNotSupported,
		wantCmd: CmdBind, wantATYP: 0xFF,
	},
	{
		name: "empty domain -> 01",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{0},          // domain length: 0
			[]byte{0x01, 0xBB}, // DST.PORT: 443
		),
		wantN: 7, wantErr: ErrEmptyDomain, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "", wantPort: 443,
	},
	{
		name: "domain with space -> 01",
		in: cat(
			[]byte{0x05},        // VER
			[]byte{0x01},        // CMD: CONNECT
			[]byte{0x00},        // RSV
			[]byte{0x03},        // ATYP: DOMAIN
			[]byte{9},           // domain length
			[]byte("a.com b.c"), // DST.ADDR: 0x20 inside
			[]byte{0x01, 0xBB},  // DST.PORT: 443
		),
		wantN: 16, wantErr: ErrDomainByte, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "a.com b.c", wantPort: 443,
	},
	{
		name: "domain with DEL 0x7F -> 01",
		in: cat(
			[]byte{0x05},           // VER
			[]byte{0x01},           // CMD: CONNECT
			[]byte{0x00},           // RSV
			[]byte{0x03},           // ATYP: DOMAIN
			[]byte{3},              // domain length
			[]byte{'a', 0x7F, 'b'}, // DST.ADDR: DEL inside
			[]byte{0x01, 0xBB},     // DST.PORT: 443
		),
		wantN: 10, wantErr: ErrDomainByte, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "a\x7fb", wantPort: 443,
	},
	{
		name: "domain with 0x80 -> 01",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x01},       // CMD: CONNECT
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{2},          // domain length
			[]byte{0x80, 'a'},  // DST.ADDR: first non-ASCII byte
			[]byte{0x01, 0xBB}, // DST.PORT: 443
		),
		wantN: 9, wantErr: ErrDomainByte, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "\x80a", wantPort: 443,
	},
	{
		name: "domain with NUL -> 01",
		in: cat(
			[]byte{0x05},               // VER
			[]byte{0x01},               // CMD: CONNECT
			[]byte{0x00},               // RSV
			[]byte{0x03},               // ATYP: DOMAIN
			[]byte{13},                 // domain length
			[]byte("allowed.com\x00x"), // DST.ADDR: NUL truncation attempt
			[]byte{0x01, 0xBB},         // DST.PORT: 443
		),
		wantN: 20, wantErr: ErrDomainByte, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "allowed.com\x00x", wantPort: 443,
	},
	{
		name: "domain with UTF-8 -> 01",
		in: cat(
			[]byte{0x05},            // VER
			[]byte{0x01},            // CMD: CONNECT
			[]byte{0x00},            // RSV
			[]byte{0x03},            // ATYP: DOMAIN
			[]byte{7},               // domain length
			[]byte("b\xc3\xbccher"), // DST.ADDR: "bücher", ü is 0xC3 0xBC (use IDNA xn-- instead)
			[]byte{0x01, 0xBB},      // DST.PORT: 443
		),
		wantN: 14, wantErr: ErrDomainByte, wantRep: RepGeneralFailure,
		wantCmd: CmdConnect, wantATYP: AddrDomain, wantHost: "b\xc3\xbccher", wantPort: 443,
	},
	{
		name: "request VER 4 -> 01 at once",
		in: cat(
			[]byte{0x04}, // VER: wrong
			[]byte{0x01}, // CMD: CONNECT (not read)
		),
		wantN: 1, wantErr: ErrRequestVersion, wantRep: RepGeneralFailure,
	},
}

func TestParseRequest(t *testing.T) {
	for _, tt := range requestTests {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := ParseRequest(tt.in)
			if err != tt.wantErr || n != tt.wantN {
				t.Fatalf("ParseRequest(% x) = n %d, err %v; want n %d, err %v", tt.in, n, err, tt.wantN, tt.wantErr)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err %T is not an *Error", err)
				}
				if e.Reply != tt.wantRep || e.NoReply {
					t.Errorf("Reply = %#02x (NoReply %v), want %#02x", byte(e.Reply), e.NoReply, byte(tt.wantRep))
				}
			}
			if r.Cmd != tt.wantCmd || r.AddrType != tt.wantATYP || string(r.Host) != tt.wantHost ||
				r.Addr != tt.wantAddr || r.Port != tt.wantPort {
				t.Errorf("Request = {%v %v %q %v %d}, want {%v %v %q %v %d}",
					r.Cmd, r.AddrType, r.Host, r.Addr, r.Port,
					tt.wantCmd, tt.wantATYP, tt.wantHost, tt.wantAddr, tt.wantPort)
			}
			if tt.wantATYP == AddrDomain && tt.wantErr == nil && cap(r.Host) != len(r.Host) {
				t.Errorf("Host capacity %d > length %d: appending would overwrite the port", cap(r.Host), len(r.Host))
			}
		})
	}
}

func TestIPLiteralMessageNamesSocks5h(t *testing.T) {
	if !strings.Contains(ErrIPLiteral.Error(), "socks5h://") {
		t.Errorf("ErrIPLiteral = %q: it should tell the user to use socks5h://", ErrIPLiteral)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, host := range []string{"a", "example.com", "xn--bcher-kva.example", "[::1]", host255} {
		for _, port := range []uint16{0, 1, 443, 65535} {
			b := AppendRequest(nil, CmdConnect, host, port)
			r, n, err := ParseRequest(b)
			if err != nil || n != len(b) || string(r.Host) != host || r.Port != port ||
				r.Cmd != CmdConnect || r.AddrType != AddrDomain {
				t.Errorf("ParseRequest(AppendRequest(%q, %d)) = %+v, %d, %v", host, port, r, n, err)
			}
		}
	}
}

// ---- Reply (RFC 1928 §6) ----

func TestAppendReply(t *testing.T) {
	tests := []struct {
		name  string
		rep   ReplyCode
		bound netip.AddrPort
		want  []byte
	}{
		{
			name:  "success, IPv4 bound address",
			rep:   RepSucceeded,
			bound: netip.MustParseAddrPort("10.1.2.3:54321"),
			want: cat(
				[]byte{0x05},        // VER
				[]byte{0x00},        // REP: succeeded
				[]byte{0x00},        // RSV
				[]byte{0x01},        // ATYP: IPv4
				[]byte{10, 1, 2, 3}, // BND.ADDR
				[]byte{0xD4, 0x31},  // BND.PORT: 54321
			),
		},
		{
			name:  "success, IPv6 bound address",
			rep:   RepSucceeded,
			bound: netip.MustParseAddrPort("[2001:db8::7]:443"),
			want: cat(
				[]byte{0x05}, // VER
				[]byte{0x00}, // REP: succeeded
				[]byte{0x00}, // RSV
				[]byte{0x04}, // ATYP: IPv6
				[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07}, // BND.ADDR
				[]byte{0x01, 0xBB}, // BND.PORT: 443
			),
		},
		{
			name:  "success, IPv4-mapped IPv6 is encoded as IPv4",
			rep:   RepSucceeded,
			bound: netip.MustParseAddrPort("[::ffff:192.0.2.7]:8080"),
			want: cat(
				[]byte{0x05},         // VER
				[]byte{0x00},         // REP: succeeded
				[]byte{0x00},         // RSV
				[]byte{0x01},         // ATYP: IPv4
				[]byte{192, 0, 2, 7}, // BND.ADDR
				[]byte{0x1F, 0x90},   // BND.PORT: 8080
			),
		},
		{
			name:  "success, IPv6 zone is dropped",
			rep:   RepSucceeded,
			bound: netip.MustParseAddrPort("[fe80::1%eth0]:1"),
			want: cat(
				[]byte{0x05}, // VER
				[]byte{0x00}, // REP: succeeded
				[]byte{0x00}, // RSV
				[]byte{0x04}, // ATYP: IPv6
				[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}, // BND.ADDR
				[]byte{0x00, 0x01}, // BND.PORT: 1
			),
		},
		{
			name:  "invalid address with a port still encodes 0.0.0.0:0",
			rep:   RepSucceeded,
			bound: netip.AddrPortFrom(netip.Addr{}, 8080),
			want: cat(
				[]byte{0x05},       // VER
				[]byte{0x00},       // REP: succeeded
				[]byte{0x00},       // RSV
				[]byte{0x01},       // ATYP: IPv4
				[]byte{0, 0, 0, 0}, // BND.ADDR: 0.0.0.0
				[]byte{0x00, 0x00}, // BND.PORT: 0
			),
		},
	}
	for _, rep := range []ReplyCode{
		RepGeneralFailure, RepNotAllowed, RepNetworkUnreachable, RepHostUnreachable,
		RepConnectionRefused, RepTTLExpired, RepCommandNotSupported, RepAddrTypeNotSupported,
	} {
		tests = append(tests, struct {
			name  string
			rep   ReplyCode
			bound netip.AddrPort
			want  []byte
		}{
			name: "failure " + rep.String(),
			rep:  rep,
			want: cat(
				[]byte{0x05},       // VER
				[]byte{byte(rep)},  // REP: the failure
				[]byte{0x00},       // RSV
				[]byte{0x01},       // ATYP: IPv4
				[]byte{0, 0, 0, 0}, // BND.ADDR: 0.0.0.0
				[]byte{0x00, 0x00}, // BND.PORT: 0
			),
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AppendReply(nil, tt.rep, tt.bound); !bytes.Equal(got, tt.want) {
				t.Errorf("AppendReply(%v, %v) = % x, want % x", tt.rep, tt.bound, got, tt.want)
			}
		})
	}
}

func TestFailureRepliesAreEightCodes(t *testing.T) {
	// The failure loop above covers 0x01..0x08; check it spells them out.
	want := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
	got := []byte{byte(RepGeneralFailure), byte(RepNotAllowed), byte(RepNetworkUnreachable),
		byte(RepHostUnreachable), byte(RepConnectionRefused), byte(RepTTLExpired),
		byte(RepCommandNotSupported), byte(RepAddrTypeNotSupported)}
	if !bytes.Equal(got, want) {
		t.Errorf("reply codes = % x, want % x", got, want)
	}
}

var replyTests = []struct {
	name      string
	in        []byte
	wantRep   ReplyCode
	wantBound netip.AddrPort
	wantN     int
	wantErr   error
}{
	{
		name: "success IPv4",
		in: cat(
			[]byte{0x05},         // VER
			[]byte{0x00},         // REP: succeeded
			[]byte{0x00},         // RSV
			[]byte{0x01},         // ATYP: IPv4
			[]byte{127, 0, 0, 1}, // BND.ADDR
			[]byte{0x04, 0x38},   // BND.PORT: 1080
		),
		wantRep: RepSucceeded, wantBound: netip.MustParseAddrPort("127.0.0.1:1080"), wantN: 10,
	},
	{
		name: "success IPv6, tunnel bytes left for the caller",
		in: cat(
			[]byte{0x05}, // VER
			[]byte{0x00}, // REP: succeeded
			[]byte{0x00}, // RSV
			[]byte{0x04}, // ATYP: IPv6
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, // BND.ADDR: ::1
			[]byte{0x00, 0x50},     // BND.PORT: 80
			[]byte("HTTP/1.1 200"), // the tunnelled stream
		),
		wantRep: RepSucceeded, wantBound: netip.MustParseAddrPort("[::1]:80"), wantN: 22,
	},
	{
		name: "success DOMAIN, bound is zero",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x00},       // REP: succeeded
			[]byte{0x00},       // RSV
			[]byte{0x03},       // ATYP: DOMAIN
			[]byte{5},          // domain length
			[]byte("proxy"),    // BND.ADDR
			[]byte{0x04, 0x38}, // BND.PORT: 1080
		),
		wantRep: RepSucceeded, wantN: 12,
	},
	{
		name: "not allowed",
		in: cat(
			[]byte{0x05},       // VER
			[]byte{0x02},       // REP: not allowed
			[]byte{0x00},       // RSV
			[]byte{0x01},       // ATYP: IPv4
			[]byte{0, 0, 0, 0}, // BND.ADDR
			[]byte{0x00, 0x00}, // BND.PORT
		),
		wantRep: RepNotAllowed, wantBound: netip.MustParseAddrPort("0.0.0.0:0"), wantN: 10,
	},
	{
		name:  "VER wrong",
		in:    []byte{0x04, 0x5A}, // VER: SOCKS4 reply, CD: granted
		wantN: 1, wantErr: ErrReplyVersion,
	},
	{
		name: "unknown ATYP",
		in: cat(
			[]byte{0x05}, // VER
			[]byte{0x05}, // REP: connection refused
			[]byte{0x00}, // RSV
			[]byte{0x07}, // ATYP: unknown
		),
		wantRep: RepConnectionRefused, wantN: 4, wantErr: ErrReplyAddrType,
	},
}

func TestParseReply(t *testing.T) {
	for _, tt := range replyTests {
		t.Run(tt.name, func(t *testing.T) {
			rep, bound, n, err := ParseReply(tt.in)
			if rep != tt.wantRep || bound != tt.wantBound || n != tt.wantN || err != tt.wantErr {
				t.Errorf("ParseReply(% x) = %v, %v, %d, %v; want %v, %v, %d, %v",
					tt.in, rep, bound, n, err, tt.wantRep, tt.wantBound, tt.wantN, tt.wantErr)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0.0:0", "10.0.0.1:443", "[::]:0", "[2001:db8::1]:65535"} {
		ap := netip.MustParseAddrPort(s)
		b := AppendReply(nil, RepSucceeded, ap)
		rep, bound, n, err := ParseReply(b)
		if rep != RepSucceeded || bound != ap || n != len(b) || err != nil {
			t.Errorf("ParseReply(AppendReply(%v)) = %v, %v, %d, %v", ap, rep, bound, n, err)
		}
	}
}

// ---- Username/password (RFC 1929) ----

func TestAppendUserPass(t *testing.T) {
	want := cat(
		[]byte{0x01},     // VER: sub-negotiation version 1
		[]byte{5},        // ULEN
		[]byte("alice"),  // UNAME
		[]byte{6},        // PLEN
		[]byte("s3cr3t"), // PASSWD
	)
	if got := AppendUserPass(nil, "alice", "s3cr3t"); !bytes.Equal(got, want) {
		t.Errorf("AppendUserPass = % x, want % x", got, want)
	}
}

func TestAppendUserPassStatus(t *testing.T) {
	ok := cat(
		[]byte{0x01}, // VER
		[]byte{0x00}, // STATUS: success
	)
	fail := cat(
		[]byte{0x01}, // VER
		[]byte{0x01}, // STATUS: failure
	)
	if got := AppendUserPassStatus(nil, true); !bytes.Equal(got, ok) {
		t.Errorf("AppendUserPassStatus(true) = % x, want % x", got, ok)
	}
	if got := AppendUserPassStatus(nil, false); !bytes.Equal(got, fail) {
		t.Errorf("AppendUserPassStatus(false) = % x, want % x", got, fail)
	}
}

func TestAppendUserPassPanicsOnLongValue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendUserPass with a 256-byte password did not panic")
		}
	}()
	AppendUserPass(nil, "u", strings.Repeat("p", 256))
}

var userPassTests = []struct {
	name     string
	in       []byte
	wantUser string
	wantPass string
	wantN    int
	wantErr  error
}{
	{
		name: "good",
		in: cat(
			[]byte{0x01},     // VER
			[]byte{5},        // ULEN
			[]byte("alice"),  // UNAME
			[]byte{6},        // PLEN
			[]byte("s3cr3t"), // PASSWD
		),
		wantUser: "alice", wantPass: "s3cr3t", wantN: 14,
	},
	{
		name: "good, request left for the caller",
		in: cat(
			[]byte{0x01}, // VER
			[]byte{1},    // ULEN
			[]byte("u"),  // UNAME
			[]byte{1},    // PLEN
			[]byte("p"),  // PASSWD
			AppendRequest(nil, CmdConnect, "example.com", 443), // pipelined request
		),
		wantUser: "u", wantPass: "p", wantN: 5,
	},
	{
		name: "255-byte username and password",
		in: cat(
			[]byte{0x01},                     // VER
			[]byte{0xFF},                     // ULEN
			[]byte(strings.Repeat("u", 255)), // UNAME
			[]byte{0xFF},                     // PLEN
			[]byte(strings.Repeat("p", 255)), // PASSWD
		),
		wantUser: strings.Repeat("u", 255), wantPass: strings.Repeat("p", 255), wantN: 513,
	},
	{
		name: "VER 5: client skipped the sub-negotiation",
		in: cat(
			[]byte{0x05}, // VER: SOCKS version, not 1
			[]byte{0x01}, // would be CMD
		),
		wantN: 1, wantErr: ErrUserPassVersion,
	},
	{
		name: "empty username",
		in: cat(
			[]byte{0x01},   // VER
			[]byte{0},      // ULEN: 0
			[]byte{4},      // PLEN
			[]byte("pass"), // PASSWD
		),
		wantUser: "", wantPass: "pass", wantN: 7, wantErr: ErrEmptyUser,
	},
	{
		name: "empty password",
		in: cat(
			[]byte{0x01},   // VER
			[]byte{4},      // ULEN
			[]byte("user"), // UNAME
			[]byte{0},      // PLEN: 0
		),
		wantUser: "user", wantPass: "", wantN: 7, wantErr: ErrEmptyPass,
	},
}

func TestParseUserPass(t *testing.T) {
	for _, tt := range userPassTests {
		t.Run(tt.name, func(t *testing.T) {
			u, n, err := ParseUserPass(tt.in)
			if string(u.User) != tt.wantUser || string(u.Pass) != tt.wantPass || n != tt.wantN || err != tt.wantErr {
				t.Errorf("ParseUserPass(% x) = %q, %q, %d, %v; want %q, %q, %d, %v",
					tt.in, u.User, u.Pass, n, err, tt.wantUser, tt.wantPass, tt.wantN, tt.wantErr)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.NoReply {
					t.Errorf("err = %#v: want an *Error that is answered (with a failure status)", err)
				}
			}
		})
	}
}

// ---- Shared contract ----

// parsers adapts each parser to one shape for the contract tests.
var parsers = map[string]func([]byte) (int, error){
	"greeting": func(b []byte) (int, error) { _, n, err := ParseGreeting(b); return n, err },
	"request":  func(b []byte) (int, error) { _, n, err := ParseRequest(b); return n, err },
	"userpass": func(b []byte) (int, error) { _, n, err := ParseUserPass(b); return n, err },
	"reply":    func(b []byte) (int, error) { _, _, n, err := ParseReply(b); return n, err },
}

// framedMessages returns, per parser, complete messages (valid ones and ones
// refused after being framed) cut to their exact length.
func framedMessages(t *testing.T) map[string][][]byte {
	t.Helper()
	m := map[string][][]byte{
		"greeting": {
			AppendGreeting(nil),
			AppendGreeting(nil, MethodNoAuth),
			AppendGreeting(nil, MethodGSSAPI, MethodUserPass, MethodNoAuth),
		},
	}
	for _, tt := range requestTests {
		m["request"] = append(m["request"], tt.in[:tt.wantN])
	}
	for _, tt := range userPassTests {
		m["userpass"] = append(m["userpass"], tt.in[:tt.wantN])
	}
	for _, tt := range replyTests {
		m["reply"] = append(m["reply"], tt.in[:tt.wantN])
	}
	for _, rep := range []ReplyCode{RepSucceeded, RepNotAllowed} {
		for _, s := range []string{"192.0.2.1:443", "[2001:db8::2]:443"} {
			m["reply"] = append(m["reply"], AppendReply(nil, rep, netip.MustParseAddrPort(s)))
		}
	}
	return m
}

func TestEveryPrefixIsShort(t *testing.T) {
	for kind, msgs := range framedMessages(t) {
		parse := parsers[kind]
		for _, msg := range msgs {
			n, err := parse(msg)
			if err == ErrShort || n != len(msg) {
				t.Errorf("%s: parse(% x) = %d, %v: want the whole message framed", kind, msg, n, err)
				continue
			}
			for k := 0; k < len(msg); k++ {
				if n, err := parse(msg[:k]); err != ErrShort || n != 0 {
					t.Errorf("%s: parse of %d-byte prefix of % x = %d, %v; want 0, ErrShort", kind, k, msg, n, err)
				}
			}
		}
	}
}

func TestPrefixIsShortZeroMessage(t *testing.T) {
	full := AppendRequest(nil, CmdConnect, "example.com", 443)
	for k := range len(full) {
		r, n, err := ParseRequest(full[:k])
		if err != ErrShort || n != 0 || r.Cmd != 0 || r.AddrType != 0 || r.Host != nil || r.Addr.IsValid() || r.Port != 0 {
			t.Errorf("ParseRequest(prefix %d) = %+v, %d, %v; want zero, 0, ErrShort", k, r, n, err)
		}
	}
}

func TestTrailingBytesDoNotChangeResult(t *testing.T) {
	for kind, msgs := range framedMessages(t) {
		parse := parsers[kind]
		for _, msg := range msgs {
			n0, err0 := parse(msg)
			for _, tail := range [][]byte{{0x00}, {0xFF, 0xFF, 0xFF}, []byte("GET / HTTP/1.1\r\n")} {
				b := append(append([]byte(nil), msg...), tail...)
				if n, err := parse(b); n != n0 || err != err0 {
					t.Errorf("%s: parse(% x) = %d, %v; without the tail %d, %v", kind, b, n, err, n0, err0)
				}
			}
		}
	}
}

func TestErrorsAreAnswerable(t *testing.T) {
	sentinels := []*Error{
		ErrVersion, ErrRequestVersion, ErrCommandNotSupported, ErrIPLiteral, ErrAddrType,
		ErrEmptyDomain, ErrDomainByte, ErrUserPassVersion, ErrEmptyUser, ErrEmptyPass,
		ErrReplyVersion, ErrReplyAddrType,
	}
	for i, e := range sentinels {
		if !strings.HasPrefix(e.Error(), "socks5: ") || len(e.Error()) <= len("socks5: ") {
			t.Errorf("Error() = %q: want \"socks5: \" and a message", e.Error())
		}
		wrapped := fmt.Errorf("client 10.0.0.1:5555, request: %w", e)
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
	if !ErrVersion.NoReply || ErrRequestVersion.NoReply {
		t.Error("greeting VER error must be NoReply; request VER error must be answered")
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{MethodNoAuth.String(), "no authentication required"},
		{MethodGSSAPI.String(), "GSSAPI"},
		{MethodUserPass.String(), "username/password"},
		{MethodNoAcceptable.String(), "no acceptable methods"},
		{Method(0x09).String(), "method 0x09"},
		{Method(0x80).String(), "private method 0x80"},
		{CmdConnect.String(), "CONNECT"},
		{CmdBind.String(), "BIND"},
		{CmdUDPAssociate.String(), "UDP ASSOCIATE"},
		{Command(0xAB).String(), "command 0xab"},
		{AddrIPv4.String(), "IPv4"},
		{AddrDomain.String(), "domain name"},
		{AddrIPv6.String(), "IPv6"},
		{AddrType(0x02).String(), "address type 0x02"},
		{RepSucceeded.String(), "succeeded"},
		{RepGeneralFailure.String(), "general SOCKS server failure"},
		{RepNotAllowed.String(), "connection not allowed by ruleset"},
		{RepNetworkUnreachable.String(), "network unreachable"},
		{RepHostUnreachable.String(), "host unreachable"},
		{RepConnectionRefused.String(), "connection refused"},
		{RepTTLExpired.String(), "TTL expired"},
		{RepCommandNotSupported.String(), "command not supported"},
		{RepAddrTypeNotSupported.String(), "address type not supported"},
		{ReplyCode(0x09).String(), "reply code 0x09"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	check := func(name string, got, msg []byte) {
		t.Helper()
		if !bytes.Equal(got, append(append([]byte(nil), prefix...), msg...)) {
			t.Errorf("%s did not append after the existing bytes: % x", name, got)
		}
	}
	p := func() []byte { return append([]byte(nil), prefix...) }
	check("AppendMethod", AppendMethod(p(), MethodNoAuth), []byte{0x05, 0x00})
	check("AppendGreeting", AppendGreeting(p(), MethodNoAuth), []byte{0x05, 0x01, 0x00})
	check("AppendRequest", AppendRequest(p(), CmdConnect, "h", 1), AppendRequest(nil, CmdConnect, "h", 1))
	check("AppendReply", AppendReply(p(), RepNotAllowed, netip.AddrPort{}), AppendReply(nil, RepNotAllowed, netip.AddrPort{}))
	check("AppendUserPass", AppendUserPass(p(), "u", "p"), AppendUserPass(nil, "u", "p"))
	check("AppendUserPassStatus", AppendUserPassStatus(p(), true), []byte{0x01, 0x00})
}

// ---- Allocations ----

var (
	sinkGreeting Greeting
	sinkRequest  Request
	sinkUserPass UserPass
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
	greetings := [][]byte{
		AppendGreeting(nil, MethodNoAuth), // success
		{0x04, 0x01, 0x00},                // ErrVersion
		{0x05, 0x03, 0x00},                // ErrShort
	}
	for _, b := range greetings {
		cases = append(cases, alloc{"ParseGreeting " + fmt.Sprintf("% x", b), func() {
			sinkGreeting, sinkN, sinkErr = ParseGreeting(b)
		}})
	}
	for _, tt := range requestTests {
		b := tt.in
		cases = append(cases, alloc{"ParseRequest " + tt.name, func() {
			sinkRequest, sinkN, sinkErr = ParseRequest(b)
		}})
	}
	short := AppendRequest(nil, CmdConnect, "example.com", 443)[:9]
	cases = append(cases, alloc{"ParseRequest short", func() {
		sinkRequest, sinkN, sinkErr = ParseRequest(short)
	}})
	for _, tt := range userPassTests {
		b := tt.in
		cases = append(cases, alloc{"ParseUserPass " + tt.name, func() {
			sinkUserPass, sinkN, sinkErr = ParseUserPass(b)
		}})
	}
	for _, tt := range replyTests {
		b := tt.in
		cases = append(cases, alloc{"ParseReply " + tt.name, func() {
			_, _, sinkN, sinkErr = ParseReply(b)
		}})
	}
	buf := make([]byte, 0, 64)
	for _, s := range []string{"192.0.2.1:443", "[2001:db8::1]:443", "[::ffff:192.0.2.1]:443"} {
		ap := netip.MustParseAddrPort(s)
		cases = append(cases, alloc{"AppendReply " + s, func() {
			sinkBytes = AppendReply(buf[:0], RepSucceeded, ap)
		}})
	}
	cases = append(cases, alloc{"AppendReply failure", func() {
		sinkBytes = AppendReply(buf[:0], RepNotAllowed, netip.AddrPort{})
	}})
	for _, c := range cases {
		if got := testing.AllocsPerRun(1000, c.f); got != 0 {
			t.Errorf("%s: %v allocations per run, want 0", c.name, got)
		}
	}
}
