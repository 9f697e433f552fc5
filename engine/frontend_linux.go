package engine

import (
	"errors"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/httpconnect"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// This file holds what differs between front ends once a request is
// parsed: the answers. Everything else (policy, dial, relay, timeouts,
// logs) is shared.

func (t *tunnel) frontEndName() string {
	switch t.fe {
	case feSOCKS5:
		return "socks5"
	case feHTTP:
		return "http"
	}
	return "unknown"
}

// request runs the policy on a parsed request and either starts the dial
// or refuses it in the client's protocol.
func (l *loop) request(t *tunnel, host string, port uint16) {
	d := l.e.policy.Load().Decide(host)
	if d.Allowed {
		l.startDial(t, host, port)
		return
	}
	l.e.log.Info("request refused", "client", t.client, "front_end", t.frontEndName(),
		"host", host, "port", port, "reason", d.Reason(), "rule", d.String())
	switch t.fe {
	case feSOCKS5:
		l.refuseWith(t, socks5.AppendReply(l.ans[:0], socks5.RepNotAllowed, netipZero))
	case feHTTP:
		l.refuseWith(t, httpconnect.AppendError(l.ans[:0], 403, d.Reason(), deniedBody(host, d)))
	}
}

func deniedBody(host string, d policy.Decision) string {
	if d.List == policy.ListDeny {
		return "fastsocks: " + host + " is blocked by deny rule " + quote(d.Rule)
	}
	return "fastsocks: " + host + " is not in the allow list"
}

func quote(s string) string { return "\"" + s + "\"" }

// connected answers the client once its target is connected.
func (l *loop) connected(t *tunnel, c dial.Conn) bool {
	switch t.fe {
	case feSOCKS5:
		return l.send(&t.c, socks5.AppendReply(l.ans[:0], socks5.RepSucceeded, c.Local))
	case feHTTP:
		return l.send(&t.c, httpconnect.AppendEstablished(l.ans[:0]))
	}
	return false
}

// dialFailed answers a failed dial in the client's protocol and closes.
func (l *loop) dialFailed(t *tunnel, err error) {
	kind := dial.KindOf(err)
	route := "direct"
	var de *dial.Error
	if errors.As(err, &de) && de.Upstream {
		route = "upstream"
	}
	l.e.log.Info("request refused", "client", t.client, "front_end", t.frontEndName(),
		"host", t.host, "port", t.port, "route", route, "reason", "dial-"+kind.String(), "err", err.Error())
	switch t.fe {
	case feSOCKS5:
		l.refuseWith(t, socks5.AppendReply(l.ans[:0], socksRep(kind), netipZero))
	case feHTTP:
		l.refuseWith(t, httpconnect.AppendError(l.ans[:0], httpStatus(kind), "dial-"+kind.String(), "fastsocks: "+err.Error()))
	}
}

// httpStatus maps a dial failure to the HTTP front end's answer. An
// upstream's 407 is not passed on: the credentials it wants are the
// operator's to configure, not the client's.
func httpStatus(k dial.Kind) int {
	switch k {
	case dial.KindUpstreamDenied:
		return 403
	case dial.KindTimeout:
		return 504
	}
	return 502
}

// socksRep maps a dial failure to its SOCKS5 reply code.
func socksRep(k dial.Kind) socks5.ReplyCode {
	switch k {
	case dial.KindRefused:
		return socks5.RepConnectionRefused
	case dial.KindNetUnreachable:
		return socks5.RepNetworkUnreachable
	case dial.KindHostUnreachable, dial.KindNoSuchHost, dial.KindTimeout, dial.KindUpstreamUnavailable:
		return socks5.RepHostUnreachable
	case dial.KindUpstreamDenied:
		return socks5.RepNotAllowed
	}
	return socks5.RepGeneralFailure
}
