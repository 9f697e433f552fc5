package socks5

// Greeting is a client's version identifier/method selection message:
// VER NMETHODS METHODS (RFC 1928 §3).
type Greeting struct {
	// Methods are the METHOD octets the client offered, in its order. It
	// aliases the parsed input (with its capacity cut, so appending copies)
	// and is valid until the caller reuses that buffer. It may be empty:
	// NMETHODS 0 is parsed as a greeting offering nothing.
	Methods []byte
}

// ParseGreeting parses a greeting from the start of b (RFC 1928 §3).
//
// It returns [ErrShort] while b is a strict prefix of a greeting, and
// [ErrVersion] (NoReply, n = 1) as soon as the first byte is not 5. On
// success n = 2 + NMETHODS; whatever follows (typically the request, sent
// without waiting) is left in b[n:]. It does not allocate.
func ParseGreeting(b []byte) (g Greeting, n int, err error) {
	if len(b) < 1 {
		return Greeting{}, 0, ErrShort
	}
	if b[0] != Version {
		return Greeting{}, 1, ErrVersion
	}
	if len(b) < 2 {
		return Greeting{}, 0, ErrShort
	}
	n = 2 + int(b[1])
	if len(b) < n {
		return Greeting{}, 0, ErrShort
	}
	return Greeting{Methods: b[2:n:n]}, n, nil
}

// Offers reports whether the client offered method m (RFC 1928 §3). The
// engine selects [MethodNoAuth] when Offers(MethodNoAuth), and otherwise
// replies with [MethodNoAcceptable] and closes.
func (g Greeting) Offers(m Method) bool {
	for _, x := range g.Methods {
		if Method(x) == m {
			return true
		}
	}
	return false
}

// AppendGreeting appends a greeting offering methods: 05 NMETHODS METHODS
// (RFC 1928 §3). It is the client side, for tests, fuzz seeds and the bench
// client. It panics if more than 255 methods are given, since NMETHODS is
// one octet.
func AppendGreeting(b []byte, methods ...Method) []byte {
	if len(methods) > 255 {
		panic("socks5: AppendGreeting: more than 255 methods")
	}
	b = append(b, Version, byte(len(methods)))
	for _, m := range methods {
		b = append(b, byte(m))
	}
	return b
}

// AppendMethod appends the server's method-selection message: 05 METHOD
// (RFC 1928 §3). Pass [MethodNoAcceptable] to refuse every offered method;
// the client must then close, and so should the server.
func AppendMethod(b []byte, m Method) []byte {
	return append(b, Version, byte(m))
}
