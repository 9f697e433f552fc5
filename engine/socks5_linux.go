package engine

import (
	"errors"
	"net/netip"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

var netipZero netip.AddrPort

// socksHandshake runs the SOCKS5 greeting, the username/password
// sub-negotiation on credentials listeners, and the request over data, and
// returns the bytes consumed. On a complete, allowed request it starts the
// dial; on anything else it answers and closes.
func (l *loop) socksHandshake(t *tunnel, data []byte) int {
	used := 0
	if t.state == stateGreet {
		g, n, err := socks5.ParseGreeting(data)
		if err == socks5.ErrShort {
			return 0
		}
		if err != nil {
			// Not SOCKS5 after all: no SOCKS5 answer exists for it.
			l.logRequest(t, VerdictError, "protocol", "detail", err.Error())
			l.closeTunnel(t, false)
			return 0
		}
		used, data = n, data[n:]
		want, next := socks5.MethodNoAuth, stateRequest
		if t.spec.conf.Load().Credentials {
			want, next = socks5.MethodUserPass, stateAuth
		}
		if !g.Offers(want) {
			detail := "this listener takes no authentication (0x00)"
			if want == socks5.MethodUserPass {
				detail = "this listener takes username/password (0x02) naming the tenant"
			}
			l.logRequest(t, VerdictDeny, "no-acceptable-method", "detail", detail)
			l.refuseWith(t, socks5.AppendMethod(l.ans[:0], socks5.MethodNoAcceptable))
			return used
		}
		if _, _, rerr := socks5.ParseRequest(data); want == socks5.MethodNoAuth && rerr != socks5.ErrShort {
			// The request came with the greeting: answer both at once,
			// one write instead of two.
			t.methodOwed = true
		} else if !l.send(&t.c, socks5.AppendMethod(l.ans[:0], want)) {
			return used
		}
		l.setState(t, next)
	}
	if t.state == stateAuth {
		up, n, err := socks5.ParseUserPass(data)
		if err == socks5.ErrShort {
			return used
		}
		used, data = used+n, data[n:]
		if err != nil {
			l.logRequest(t, VerdictError, "protocol", "detail", err.Error())
			l.refuseWith(t, socks5.AppendUserPassStatus(l.ans[:0], false))
			return used
		}
		tenant := l.e.tenants.Load().byName[string(up.User)]
		if !tenant.checkToken(up.Pass) {
			l.logRequest(t, VerdictDeny, "bad-credentials", "user", string(up.User))
			l.refuseWith(t, socks5.AppendUserPassStatus(l.ans[:0], false))
			return used
		}
		t.tenant = tenant
		if !l.send(&t.c, socks5.AppendUserPassStatus(l.ans[:0], true)) {
			return used
		}
		l.setState(t, stateRequest)
	}
	req, n, err := socks5.ParseRequest(data)
	if err == socks5.ErrShort {
		return used
	}
	used += n
	if err != nil {
		var se *socks5.Error
		rep := socks5.RepGeneralFailure
		if errors.As(err, &se) {
			rep = se.Reply
		}
		if len(req.Host) > 0 {
			t.host, t.port = string(req.Host), req.Port
		}
		l.logRequest(t, VerdictError, "protocol", "detail", err.Error())
		l.refuseWith(t, socks5.AppendReply(t.owed(l.ans[:0]), rep, netipZero))
		return used
	}
	l.request(t, string(req.Host), req.Port)
	return used
}

// owed appends the method selection a pipelined greeting is still owed.
func (t *tunnel) owed(b []byte) []byte {
	if t.methodOwed {
		t.methodOwed = false
		b = socks5.AppendMethod(b, socks5.MethodNoAuth)
	}
	return b
}
