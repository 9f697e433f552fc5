package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/fastsocks/fastsocks/config"
	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/engine"
	"github.com/fastsocks/fastsocks/policy"
)

// settings is what run needs, from flags alone or from a config file with
// the flags given on the command line on top.
type settings struct {
	listeners []engine.Listener
	tenants   []*engine.Tenant

	upstream *dial.Upstream
	upSource string
	noProxy  dial.NoProxy

	handshake, dialTO, idle, lifetime, drain time.Duration
	loops, maxDials, maxTunnels              int
	maxHandshakes, maxPerClient              int
	logFormat, logLevel, accessLog, admin    string
}

// fileExclusive are flags that describe listeners and tenants: with a
// config file those come from the file alone.
var fileExclusive = []string{"listen", "allow", "deny", "allow-file", "deny-file"}

// loadSettings builds the settings: from the flags, or from o.config with
// the flags that were set (in set) overriding the file's scalar settings.
// getenv supplies HTTPS_PROXY and NO_PROXY.
// inherited are the sockets systemd passed, for "systemd:NAME" listeners.
func loadSettings(o *options, set map[string]bool, getenv func(string) string, inherited []inheritedFD) (*settings, error) {
	s := &settings{
		handshake: o.handshake, dialTO: o.dialTO, idle: o.idle, lifetime: o.lifetime, drain: o.drain,
		loops: o.loops, maxDials: o.maxDials, maxTunnels: o.maxTunnels,
		maxHandshakes: o.maxHandshakes, maxPerClient: o.maxPerClient,
		logFormat: o.logFormat, logLevel: o.logLevel, accessLog: o.accessLog, admin: o.admin,
	}
	var f *config.File
	if o.config != "" {
		var both []string
		for _, name := range fileExclusive {
			if set[name] {
				both = append(both, "--"+name)
			}
		}
		if len(both) > 0 {
			return nil, fmt.Errorf("%s cannot be used with --config: listeners and tenants come from the file", strings.Join(both, ", "))
		}
		var err error
		if f, err = config.Load(o.config); err != nil {
			return nil, err
		}
		s.applyFile(f, set)
	}

	// The upstream: --upstream, else the file's, else the environment.
	var err error
	if !set["upstream"] && f != nil && f.Upstream != "" {
		s.upSource = "config file " + f.Path
		if f.Upstream != "none" {
			if s.upstream, err = dial.ParseUpstream(f.Upstream); err != nil {
				return nil, fmt.Errorf("%s: upstream: %w", f.Path, err)
			}
		}
	} else if s.upstream, s.upSource, err = dial.UpstreamFromEnv(o.upstream, getenv); err != nil {
		// Never fall back to dialing direct: the site may forbid it.
		return nil, err
	}
	if f != nil && f.NoProxy != nil {
		s.noProxy = dial.ParseNoProxy(*f.NoProxy)
	} else {
		s.noProxy = dial.NoProxyFromEnv(getenv)
	}
	global := &dial.Route{Upstream: s.upstream, NoProxy: s.noProxy}
	var private []netip.Prefix
	for _, c := range o.allowPrivate {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("--allow-private-dest %q: want a CIDR such as 10.0.0.0/8 or fd00::/8: %w", c, err)
		}
		private = append(private, p.Masked())
	}
	if f != nil && !set["allow-private-dest"] {
		private = f.AllowPrivateDest
	}

	if f == nil {
		pol, err := buildPolicy(o)
		if err != nil {
			return nil, err
		}
		addrs := []string(o.listen)
		if !set["listen"] && len(inherited) > 0 {
			// Socket activation with no --listen: serve what systemd passed.
			addrs = nil
			for _, fd := range inherited {
				addrs = append(addrs, "systemd:"+fd.name)
			}
		}
		if addrs, err = resolveActivated(addrs, inherited); err != nil {
			return nil, err
		}
		for _, a := range addrs {
			s.listeners = append(s.listeners, engine.Listener{Address: a, Tenant: engine.DefaultTenant})
		}
		s.tenants = []*engine.Tenant{{Name: engine.DefaultTenant, Policy: pol, Route: global, AllowPrivateDest: private}}
		return s, nil
	}
	for _, l := range f.Listeners {
		addr, err := resolveActivated([]string{l.Address}, inherited)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.Path, l.Line, err)
		}
		s.listeners = append(s.listeners, engine.Listener{Address: addr[0], Tenant: l.Tenant, Credentials: l.Credentials, Mode: l.Mode})
	}
	for _, t := range f.Tenants {
		pol, err := policy.New(t.Allow, t.Deny)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: tenant %q: %w", f.Path, t.Line, t.Name, err)
		}
		route := global
		switch t.Upstream {
		case "":
		case "none":
			route = &dial.Route{}
		default:
			u, err := dial.ParseUpstream(t.Upstream)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: tenant %q: upstream: %w", f.Path, t.Line, t.Name, err)
			}
			route = &dial.Route{Upstream: u, NoProxy: s.noProxy}
		}
		tp := private
		if t.AllowPrivateDest != nil {
			tp = t.AllowPrivateDest
		}
		s.tenants = append(s.tenants, &engine.Tenant{Name: t.Name, Policy: pol, Route: route, Token: t.Token, MaxTunnels: t.MaxTunnels, AllowPrivateDest: tp})
	}
	return s, nil
}

// applyFile takes the file's scalar settings where no flag was set.
func (s *settings) applyFile(f *config.File, set map[string]bool) {
	dur := func(flag string, dst *time.Duration, v *time.Duration) {
		if v != nil && !set[flag] {
			*dst = *v
		}
	}
	dur("handshake-timeout", &s.handshake, f.Timeouts.Handshake)
	dur("dial-timeout", &s.dialTO, f.Timeouts.Dial)
	dur("idle-timeout", &s.idle, f.Timeouts.Idle)
	dur("max-lifetime", &s.lifetime, f.Timeouts.MaxLifetime)
	dur("drain-timeout", &s.drain, f.Timeouts.Drain)
	if f.Loops > 0 && !set["loops"] {
		s.loops = f.Loops
	}
	if f.MaxDials > 0 && !set["max-dials"] {
		s.maxDials = f.MaxDials
	}
	if f.Log.Format != "" && !set["log-format"] {
		s.logFormat = f.Log.Format
	}
	if f.Log.Level != "" && !set["log-level"] {
		s.logLevel = f.Log.Level
	}
	if f.Log.AccessLog != "" && !set["access-log"] {
		s.accessLog = f.Log.AccessLog
	}
	if f.MaxTunnels > 0 && !set["max-tunnels"] {
		s.maxTunnels = f.MaxTunnels
	}
	if f.MaxHandshakes > 0 && !set["max-handshakes"] {
		s.maxHandshakes = f.MaxHandshakes
	}
	if f.MaxTunnelsPerClient > 0 && !set["max-tunnels-per-client"] {
		s.maxPerClient = f.MaxTunnelsPerClient
	}
	if f.Admin != "" && !set["admin"] {
		s.admin = f.Admin
	}
}

// describe is a one-line summary for logs.
func (s *settings) describe() string {
	return fmt.Sprintf("%d listeners, %d tenants", len(s.listeners), len(s.tenants))
}
