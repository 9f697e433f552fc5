package engine

import (
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
		l.e.log.Info("request refused", "client", t.client, "front_end", "http",
			"host", string(req.Host), "port", req.Port, "reason", err.Error())
		l.refuseWith(t, httpconnect.AppendErrorFor(l.ans[:0], he))
		return n
	}
	l.request(t, string(req.Host), req.Port)
	return n
}
