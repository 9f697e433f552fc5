package engine

import (
	"errors"
	"net/netip"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

var errDialBackstop = errors.New("no dial result within the dial timeout")

// socksHandshake runs the SOCKS5 greeting and request over data and
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
			l.e.log.Info("request refused", "client", t.client, "front_end", "socks5", "reason", err.Error())
			l.refused.Add(1)
			l.closeTunnel(t, false)
			return 0
		}
		used = n
		if !g.Offers(socks5.MethodNoAuth) {
			l.e.log.Info("request refused", "client", t.client, "front_end", "socks5",
				"reason", "client offered no acceptable authentication method (fastsocks accepts no-auth, 0x00)")
			l.refuseWith(t, socks5.AppendMethod(l.ans[:0], socks5.MethodNoAcceptable))
			return used
		}
		if !l.send(&t.c, socks5.AppendMethod(l.ans[:0], socks5.MethodNoAuth)) {
			return used
		}
		l.setState(t, stateRequest)
		data = data[n:]
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
		l.e.log.Info("request refused", "client", t.client, "front_end", "socks5", "reason", err.Error())
		l.refuseWith(t, socks5.AppendReply(l.ans[:0], rep, netipZero))
		return used
	}
	l.request(t, string(req.Host), req.Port)
	return used
}

var netipZero netip.AddrPort
