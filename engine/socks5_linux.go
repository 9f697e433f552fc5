package engine

import (
	"errors"
	"net/netip"

	"github.com/fastsocks/fastsocks/dial"
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
	host := string(req.Host)
	d := l.e.policy.Load().Decide(host)
	if !d.Allowed {
		l.e.log.Info("request refused", "client", t.client, "front_end", "socks5",
			"host", host, "port", req.Port, "reason", d.Reason(), "rule", d.String())
		l.refuseWith(t, socks5.AppendReply(l.ans[:0], socks5.RepNotAllowed, netipZero))
		return used
	}
	l.startDial(t, host, req.Port)
	return used
}

// connected answers the client once its target is connected.
func (l *loop) connected(t *tunnel, c dial.Conn) bool {
	return l.send(&t.c, socks5.AppendReply(l.ans[:0], socks5.RepSucceeded, c.Local))
}

// dialFailed answers a failed dial in the client's protocol and closes.
func (l *loop) dialFailed(t *tunnel, err error) {
	kind := dial.KindOf(err)
	l.e.log.Info("request refused", "client", t.client, "front_end", "socks5",
		"host", t.host, "port", t.port, "reason", "dial-"+kind.String(), "err", err.Error())
	l.refuseWith(t, socks5.AppendReply(l.ans[:0], socksRep(kind), netipZero))
}

// socksRep maps a dial failure to its SOCKS5 reply code.
func socksRep(k dial.Kind) socks5.ReplyCode {
	switch k {
	case dial.KindRefused:
		return socks5.RepConnectionRefused
	case dial.KindNetUnreachable:
		return socks5.RepNetworkUnreachable
	case dial.KindHostUnreachable, dial.KindNoSuchHost, dial.KindTimeout:
		return socks5.RepHostUnreachable
	}
	return socks5.RepGeneralFailure
}

var netipZero netip.AddrPort
