// Package config loads and validates fastsocks' YAML configuration file. It
// checks everything that can be checked without binding sockets or dialing,
// and reports each problem with the file name, line and the offending key or
// value. It does not start anything and reads no environment variables.
//
// What it leaves to others: defaults that come from flags or the environment
// (HTTPS_PROXY, NO_PROXY, GOMAXPROCS) are applied by cmd/fastsocks, which
// also decides how flags override the file. Compiling policies, opening
// listeners and dialing upstreams belong to policy, engine and dial; this
// package only calls their parsers to validate.
//
// The file system is consulted where the file names it: token_file is read,
// the directory of each unix socket must exist and be writable, and the
// directory of log.access_log likewise. Relative token_file and
// log.access_log paths are taken relative to the directory of the
// configuration file (its name as given to Load or Parse).
//
// # Format
//
//	listeners:                      # at least one
//	  - address: 127.0.0.1:1080     # host:port, or unix:/absolute/path.sock
//	    tenant: default             # clients on it belong to this tenant
//	  - address: unix:/run/fastsocks/sbx-42.sock
//	    tenant: sbx-42
//	    mode: "0660"                # socket file mode, octal; default 0600
//	  - address: 127.0.0.1:1081
//	    credentials: true           # user/password select the tenant (no "tenant:")
//	tenants:                        # at least one; name -> settings
//	  default:
//	    allow: [github.com, "*.npmjs.org"]
//	    deny: [evil.github.com]
//	    allow_private_dest: [10.0.0.0/8]
//	    upstream: http://proxy.corp:3128   # or "none"; default: the global one
//	    token: s3cret               # or token_file: /path (read at load, trimmed)
//	    max_tunnels: 100            # 0 = unlimited
//	timeouts: {handshake: 10s, dial: 10s, idle: 5m, max_lifetime: 1h, drain: 10s}
//	upstream: http://proxy.corp:3128
//	no_proxy: "internal.corp,.svc"  # or a list
//	allow_private_dest: [127.0.0.0/8]
//	loops: 2
//	max_dials: 512
//	max_tunnels: 0
//	max_handshakes: 0
//	max_tunnels_per_client: 0
//	log: {format: text, level: info, access_log: ""}
//	admin: 127.0.0.1:9090
//
// Every key is optional except listeners and tenants. Unknown keys are
// errors. YAML anchors, aliases and merge keys ("<<: *base") may be used to
// share settings between tenants.
package config

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// File is a loaded, validated configuration file. Unset keys are left at
// their zero value (nil for pointers), so the caller can tell them apart
// from values given in the file where it matters.
type File struct {
	// Path is the name the file was loaded or parsed under.
	Path string

	// Listeners are the addresses to accept clients on, in file order.
	// There is at least one.
	Listeners []Listener

	// Tenants are the named policies, in file order; names are unique.
	// There is at least one.
	Tenants []Tenant

	Timeouts Timeouts

	// Upstream is the global corporate proxy, as written (validated with
	// dial.ParseUpstream); "" if unset, "none" (lowercased) to dial
	// directly and ignore the environment.
	Upstream string

	// NoProxy is the global NO_PROXY list (comma-separated; a YAML list is
	// joined with commas). nil if unset: the caller falls back to the
	// environment. A non-nil "" means "nothing bypasses the upstream".
	NoProxy *string

	// AllowPrivateDest are the private or loopback destinations the
	// resolved-address guard lets through, for tenants that do not set
	// their own. Prefixes are masked (validated to have no host bits).
	AllowPrivateDest []netip.Prefix

	// Loops and MaxDials are 0 if unset, else at least 1. MaxTunnels and
	// MaxHandshakes are 0 if unset or unlimited, else positive.
	Loops, MaxDials, MaxTunnels, MaxHandshakes int
	// MaxTunnelsPerClient bounds the connections from one client address;
	// 0 if unset or unlimited.
	MaxTunnelsPerClient int

	Log Log

	// Admin is the admin (metrics, health) listener's host:port, or "" for
	// none.
	Admin string
}

// Listener is one address clients connect to.
type Listener struct {
	// Address is the address as written (trimmed): "host:port",
	// "unix:/path", or "systemd:NAME" for a socket passed by systemd
	// socket activation under that FileDescriptorName=.
	Address string
	// Unix is true for unix: addresses; Path is then the socket path,
	// cleaned (filepath.Clean), absolute, at most 107 bytes.
	Unix bool
	Path string
	// Tenant is the tenant of every client on this listener; "" when
	// Credentials is set. Exactly one of the two is set, and Tenant names
	// a tenant of the file.
	Tenant string
	// Credentials makes clients log in (SOCKS5 RFC 1929 user/password, or
	// HTTP Proxy-Authorization Basic): the user name is the tenant, the
	// password its token.
	Credentials bool
	// Mode is the socket file's permission bits: 0600 unless the file says
	// otherwise; 0 for TCP listeners.
	Mode os.FileMode
	// Line is the line of the listener's entry in the file.
	Line int
}

// Tenant is one named policy.
type Tenant struct {
	// Name is a valid RFC 1929 user name: 1 to 255 bytes of printable
	// ASCII, without spaces or ':'.
	Name string
	// Allow and Deny are hostname patterns, each valid for the policy
	// package; nil if not given (an empty allow list denies everything).
	Allow, Deny []string
	// AllowPrivateDest is nil if the tenant does not set it (the global
	// File.AllowPrivateDest applies), and non-nil, possibly empty, if it
	// does.
	AllowPrivateDest []netip.Prefix
	// Upstream overrides the global upstream: "" = not set (use the
	// global one), "none" = direct, else a proxy address valid for
	// dial.ParseUpstream.
	Upstream string
	// Token is the password for credentials listeners, from token: or the
	// trimmed contents of token_file:; "" if neither is given, in which
	// case the tenant cannot log in on credentials listeners. 1 to 255
	// bytes when set.
	Token string
	// MaxTunnels limits this tenant's open tunnels; 0 = unlimited.
	MaxTunnels int
	// Line is the line of the tenant's name in the file.
	Line int
}

// Timeouts holds durations from the timeouts: section; nil means not set
// (flags and defaults apply). Handshake and Dial are positive when set;
// Idle, MaxLifetime and Drain are 0 (never, or no drain) or positive.
type Timeouts struct {
	Handshake, Dial, Idle, MaxLifetime, Drain *time.Duration
}

// Log holds the log: section. Empty strings are unset. Format is "text" or
// "json"; Level is "debug", "info", "warn" or "error" (both lowercased).
// AccessLog is a file path (made absolute against the configuration
// file's directory if relative), or "" for stderr.
type Log struct {
	Format, Level, AccessLog string
}

// Error is one problem in a configuration file. Line is 1-based; 0 when the
// problem concerns the whole file (such as a missing section).
type Error struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as "FILE:LINE: message", or "FILE: message"
// when there is no line.
func (e *Error) Error() string {
	name := e.File
	if name == "" {
		name = "config"
	}
	if e.Line > 0 {
		return name + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return name + ": " + e.Msg
}

// Errors is every problem found in a file, ordered by line (problems of the
// whole file last). Load and Parse return it as a *Errors.
type Errors []*Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems, so errors.As can find an *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// As lets errors.As fill in an Errors value as well as an *Errors pointer.
func (es *Errors) As(target any) bool {
	if t, ok := target.(*Errors); ok {
		*t = *es
		return true
	}
	return false
}

// Load reads the file at path and parses it (see Parse). If the file cannot
// be read, the error is os.ReadFile's (an *fs.PathError, so errors.Is with
// fs.ErrNotExist works); problems in its content come as *Errors.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses and validates data, the content of the file called name
// (used in messages and to resolve relative paths). On any problem it
// returns a nil *File and an *Errors listing all problems found.
func Parse(name string, data []byte) (*File, error) {
	p := newParser(name)
	p.parse(data)
	if len(p.errs) > 0 {
		p.sortErrors()
		errs := p.errs
		return nil, &errs
	}
	return p.f, nil
}
