package socks5

// UserPass is the RFC 1929 username/password request:
// VER ULEN UNAME PLEN PASSWD (RFC 1929 §2), sent after the server selected
// [MethodUserPass].
type UserPass struct {
	// User and Pass alias the parsed input (capacity cut, so appending
	// copies) and are valid until the caller reuses that buffer. Treat Pass
	// as a secret: do not log it.
	User, Pass []byte
}

// ParseUserPass parses a username/password request from the start of b
// (RFC 1929 §2).
//
// VER != 1 is [ErrUserPassVersion] at once (n = 1). ULEN 0 or PLEN 0 (RFC
// 1929 allows 1..255) is [ErrEmptyUser] or [ErrEmptyPass], returned once the
// whole message is present, with n its full length. Every error is answered
// with [AppendUserPassStatus](b, false) and a close. Bytes after the message
// are left in b[n:]. It does not allocate.
func ParseUserPass(b []byte) (u UserPass, n int, err error) {
	if len(b) < 1 {
		return UserPass{}, 0, ErrShort
	}
	if b[0] != UserPassVersion {
		return UserPass{}, 1, ErrUserPassVersion
	}
	if len(b) < 2 {
		return UserPass{}, 0, ErrShort
	}
	ulen := int(b[1])
	if len(b) < 3+ulen {
		return UserPass{}, 0, ErrShort
	}
	plen := int(b[2+ulen])
	n = 3 + ulen + plen
	if len(b) < n {
		return UserPass{}, 0, ErrShort
	}
	u = UserPass{User: b[2 : 2+ulen : 2+ulen], Pass: b[3+ulen : n : n]}
	if ulen == 0 {
		return u, n, ErrEmptyUser
	}
	if plen == 0 {
		return u, n, ErrEmptyPass
	}
	return u, n, nil
}

// AppendUserPass appends a username/password request:
// 01 ULEN UNAME PLEN PASSWD (RFC 1929 §2). It is the client side, for tests,
// fuzz seeds and the bench client. Empty values encode as given, so tests can
// build refused messages; it panics if user or pass is longer than 255
// bytes, since each length is one octet.
func AppendUserPass(b []byte, user, pass string) []byte {
	if len(user) > 255 || len(pass) > 255 {
		panic("socks5: AppendUserPass: username or password longer than 255 bytes")
	}
	b = append(b, UserPassVersion, byte(len(user)))
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	return append(b, pass...)
}

// AppendUserPassStatus appends the server's sub-negotiation response:
// 01 00 when ok, 01 01 otherwise (RFC 1929 §2). After a failure status the
// server must close the connection.
func AppendUserPassStatus(b []byte, ok bool) []byte {
	if ok {
		return append(b, UserPassVersion, 0x00)
	}
	return append(b, UserPassVersion, 0x01)
}
