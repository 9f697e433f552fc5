package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

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

func (t *tunnel) tenantName() string {
	if t.tenant != nil {
		return t.tenant.Name
	}
	return ""
}

// logRequest writes the decision-log line of a request: who, through
// which listener and front end, the target, the verdict and why, and for
// a tunnel that ran, its route, bytes and duration. Refusals are counted
// for the tenant by reason.
func (l *loop) logRequest(t *tunnel, v Verdict, reason string, attrs ...any) {
	if v != VerdictAllow {
		l.refused.Add(1)
		l.e.countersFor(t).refuse(v, reason)
	}
	log := l.e.access
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	args := make([]any, 0, 24+len(attrs))
	args = append(args, "tenant", t.tenantName(), "client", t.clientName(), "listener", t.spec.name,
		"front_end", t.frontEndName())
	if t.host != "" {
		args = append(args, "host", t.host, "port", t.port)
	}
	args = append(args, "verdict", v.String(), "reason", reason)
	if t.dialed {
		route := "direct"
		if t.viaUpstream {
			route = "upstream"
		}
		args = append(args, "route", route)
	}
	if v == VerdictAllow {
		args = append(args, "bytes_up", t.up, "bytes_down", t.down)
	}
	args = append(args, "duration", time.Duration(monoNow()-t.openedNs).Round(time.Millisecond))
	args = append(args, attrs...)
	log.Info("request", args...)
}

// request resolves the tenant, runs its policy and limits on a parsed
// request and either starts the dial or refuses it in the client's
// protocol.
func (l *loop) request(t *tunnel, host string, port uint16) {
	t.host, t.port = host, port
	if t.tenant == nil {
		name := t.spec.conf.Load().Tenant
		t.tenant = l.e.tenants.Load().byName[name]
		if t.tenant == nil {
			// The listener's tenant went away in a reload racing this
			// request: nothing allows it.
			l.logRequest(t, VerdictDeny, "tenant-gone")
			l.refuse(t, socks5.RepNotAllowed, 403, "tenant-gone", "fastsocks: this listener's tenant is no longer configured")
			return
		}
	}
	d := t.tenant.Policy.Decide(host)
	if !d.Allowed {
		l.logRequest(t, VerdictDeny, d.Reason(), "rule", d.String())
		l.refuse(t, socks5.RepNotAllowed, 403, d.Reason(), deniedBody(host, d))
		return
	}
	t.rule = d.Rule
	if reason := l.e.admit(t.tenant); reason != "" {
		l.logRequest(t, VerdictError, reason, "rule", d.String())
		l.refuse(t, socks5.RepGeneralFailure, 503, reason, "fastsocks: too many open tunnels ("+reason+"); try again later")
		return
	}
	t.counted = true
	l.startDial(t, host, port)
}

// refuse answers in the client's protocol (rep for SOCKS5; status, the
// X-Proxy-Error token and body for HTTP) and closes.
func (l *loop) refuse(t *tunnel, rep socks5.ReplyCode, status int, proxyError, body string) {
	switch t.fe {
	case feSOCKS5:
		l.refuseWith(t, socks5.AppendReply(t.owed(l.ans[:0]), rep, netipZero))
	case feHTTP:
		l.refuseWith(t, httpconnect.AppendError(l.ans[:0], status, proxyError, body))
	default:
		l.closeTunnel(t, false)
	}
}

func deniedBody(host string, d policy.Decision) string {
	if d.List == policy.ListDeny {
		return "fastsocks: " + host + " is blocked by deny rule \"" + d.Rule + "\""
	}
	return "fastsocks: " + host + " is not in the allow list"
}

// connected answers the client once its target is connected.
func (l *loop) connected(t *tunnel, c dial.Conn) bool {
	switch t.fe {
	case feSOCKS5:
		return l.send(&t.c, socks5.AppendReply(t.owed(l.ans[:0]), socks5.RepSucceeded, c.Local))
	case feHTTP:
		return l.send(&t.c, httpconnect.AppendEstablished(l.ans[:0]))
	}
	return false
}

// dialFailed answers a failed dial in the client's protocol and closes.
func (l *loop) dialFailed(t *tunnel, err error) {
	kind := dial.KindOf(err)
	var de *dial.Error
	if errors.As(err, &de) && de.Upstream {
		t.viaUpstream = true
	}
	l.e.dialErrs.add(kind)
	l.e.dialLat.observe(time.Duration(monoNow() - t.dialNs))
	l.logRequest(t, VerdictError, "dial-"+kind.String(), "detail", err.Error())
	l.refuse(t, socksRep(kind), httpStatus(kind), "dial-"+kind.String(), "fastsocks: "+err.Error())
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
