package engine

import (
	"bytes"
	"encoding/base64"
	"errors"

	"github.com/fastsocks/fastsocks/proto/httpconnect"
)

// httpHandshake parses an HTTP CONNECT head from data and returns the bytes
// consumed. Bytes after the head (an optimistic TLS ClientHello) are early
// data for the target.
func (l *loop) httpHandshake(t *tunnel, data []byte) int {
	req, n, err := httpconnect.ParseRequest(data)
	if err == httpconnect.ErrShort {
		return 0
	}
	if err != nil {
		var he *httpconnect.Error
		if !errors.As(err, &he) {
			he = httpconnect.ErrMalformed
		}
		if len(req.Host) > 0 {
			t.host, t.port = string(req.Host), req.Port
		}
		l.logRequest(t, VerdictError, "protocol", "detail", err.Error())
		l.refuseWith(t, httpconnect.AppendErrorFor(l.ans[:0], he))
		return n
	}
	if t.spec.conf.Load().Credentials {
		user, pass, ok := basicAuth(req.ProxyAuthorization, l.authBuf[:])
		tenant := l.e.tenants.Load().byName[string(user)]
		if !tenant.checkToken(pass) || !ok {
			reason := "bad-credentials"
			if req.ProxyAuthorization == nil {
				reason = "no-credentials"
			}
			t.host, t.port = string(req.Host), req.Port
			l.logRequest(t, VerdictDeny, reason, "user", string(user))
			l.refuseWith(t, httpconnect.AppendError(l.ans[:0], 407, "", "fastsocks: this listener needs Proxy-Authorization: Basic with tenant:token"))
			return n
		}
		t.tenant = tenant
	}
	l.request(t, string(req.Host), req.Port)
	return n
}

// basicAuth decodes a "Basic base64(user:pass)" header value into buf.
func basicAuth(v []byte, buf []byte) (user, pass []byte, ok bool) {
	const prefix = "basic "
	if len(v) < len(prefix) || !bytes.EqualFold(v[:len(prefix)], []byte(prefix)) {
		return nil, nil, false
	}
	enc := bytes.TrimSpace(v[len(prefix):])
	if base64.StdEncoding.DecodedLen(len(enc)) > len(buf) {
		return nil, nil, false
	}
	n, err := base64.StdEncoding.Decode(buf, enc)
	if err != nil {
		return nil, nil, false
	}
	user, pass, ok = bytes.Cut(buf[:n], []byte{':'})
	return user, pass, ok
}
