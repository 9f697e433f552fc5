package dial

import (
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Upstream is a parsed corporate HTTP proxy address that dials are chained
// through with CONNECT. Its String form never contains the password.
type Upstream struct {
	addr   string // host:port dialed (IPv6 literals bracketed)
	auth   string // Proxy-Authorization value ("Basic base64(user:pass)"), or ""
	masked string // canonical URL with the password replaced by "***"
}

// String returns the upstream as a URL with any password masked, such as
// "http://alice:***@proxy.corp:3128". It is safe to log.
func (u *Upstream) String() string { return u.masked }

// Addr returns the host:port the pool connects to.
func (u *Upstream) Addr() string { return u.addr }

// HasAuth reports whether credentials are sent to the upstream.
func (u *Upstream) HasAuth() bool { return u.auth != "" }

// ParseUpstream parses a corporate proxy address in one of these forms:
//
//	host:port
//	http://host:port
//	http://user:pass@host:port
//
// with an optional trailing "/". The scheme is case-insensitive, and
// "https://" is accepted and treated as "http://" (the CONNECT goes to the
// proxy in clear text; TLS to the proxy itself is not supported), as
// koda-sandbox does. The userinfo ends at the last '@' and is
// percent-decoded ("p%40ss" is "p@ss"); the user name ends at its first
// ':'. A user without a password sends "user:" as Basic credentials.
// IPv6 literals are written in brackets ("[::1]:3128").
//
// Errors name the problem (no port, port 0 or over 65535, a path, a query,
// an unknown scheme, a bad percent escape, an empty host) and echo the
// value with its password masked as "***"; they never contain the password.
func ParseUpstream(raw string) (*Upstream, error) {
	s := strings.TrimSpace(raw)
	bad := func(why string) error {
		return &UpstreamError{Value: maskUpstream(s), Reason: why}
	}
	if s == "" {
		return nil, bad("empty value")
	}
	scheme, rest := splitScheme(s)
	switch strings.ToLower(scheme) {
	case "", "http", "https":
	default:
		return nil, bad("unknown scheme " + strconv.Quote(scheme) + " (want http://)")
	}
	var user, pass string
	hasUser, hasPass := false, false
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		if userinfo != "" {
			hasUser = true
			rawUser, rawPass, ok := strings.Cut(userinfo, ":")
			var err error
			if user, err = url.PathUnescape(rawUser); err != nil {
				// The escape error quotes the bad escape, which may be
				// part of a secret: do not pass it on.
				return nil, bad("bad percent escape in the user name")
			}
			if ok {
				hasPass = true
				if pass, err = url.PathUnescape(rawPass); err != nil {
					return nil, bad("bad percent escape in the password")
				}
			}
		}
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if rest[i] == '?' {
			return nil, bad("has a query (want host:port)")
		}
		return nil, bad("has a fragment (want host:port)")
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		if rest[i:] != "/" {
			return nil, bad("has a path (want host:port)")
		}
		rest = rest[:i]
	}
	if rest == "" {
		return nil, bad("empty host")
	}
	if !strings.Contains(rest, ":") || rest[0] == '[' && rest[len(rest)-1] == ']' {
		return nil, bad("no port (want host:port)")
	}
	host, port, err := net.SplitHostPort(rest)
	switch {
	case err != nil:
		return nil, bad("want host:port (IPv6 literals in brackets)")
	case host == "":
		return nil, bad("empty host")
	case !validProxyHost(host):
		return nil, bad("invalid host " + strconv.Quote(host))
	case port == "":
		return nil, bad("no port (want host:port)")
	}
	pn, err := strconv.ParseUint(port, 10, 32)
	switch {
	case err != nil && !allDigits(port):
		return nil, bad("port " + strconv.Quote(port) + " is not a number")
	case err != nil || pn > 65535:
		return nil, bad("port " + port + " is over 65535")
	case pn == 0:
		return nil, bad("port 0")
	}
	host = strings.ToLower(host)
	u := &Upstream{addr: net.JoinHostPort(host, strconv.FormatUint(pn, 10))}
	var m strings.Builder
	m.WriteString("http://")
	if hasUser {
		m.WriteString(url.PathEscape(user))
		if hasPass {
			m.WriteString(":***")
		}
		m.WriteByte('@')
		u.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	m.WriteString(u.addr)
	u.masked = m.String()
	return u, nil
}

// UpstreamError is a malformed upstream proxy setting. Value is the
// setting with any password masked.
type UpstreamError struct {
	Source string // "--upstream", "HTTPS_PROXY", "https_proxy", or "" when parsed directly
	Value  string // the value as given, password masked
	Reason string
}

func (e *UpstreamError) Error() string {
	s := "upstream proxy " + strconv.Quote(e.Value) + ": " + e.Reason
	if e.Source != "" {
		s = e.Source + ": " + s
	}
	return s
}

// maskUpstream returns raw with everything between the first ':' of its
// userinfo and the last '@' replaced by "***". The userinfo is taken up to
// the last '@' anywhere after the scheme, so a password holding unescaped
// '/', '?', '#' or '@' is masked too (over-masking a malformed value is
// harmless; leaking a password is not).
func maskUpstream(raw string) string {
	_, rest := splitScheme(raw)
	prefix := raw[:len(raw)-len(rest)]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return raw
	}
	c := strings.IndexByte(rest[:at], ':')
	if c < 0 {
		return raw
	}
	return prefix + rest[:c] + ":***" + rest[at:]
}

// splitScheme splits "scheme://rest". A prefix before "://" that is not a
// scheme token (RFC 3986: a letter, then letters, digits, '+', '-', '.')
// is not a scheme: it may be a user name and password, so the value is
// taken as having none (and the prefix is never echoed as a scheme).
func splitScheme(s string) (scheme, rest string) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", s
	}
	for j := 0; j < i; j++ {
		c := s[j]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", s
		}
	}
	return s[:i], s[i+3:]
}

// validProxyHost accepts DNS names, IPv4 literals and (unbracketed, as
// SplitHostPort returns them) IPv6 literals.
func validProxyHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':':
		default:
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Environment variables UpstreamFromEnv and NoProxyFromEnv read, in order.
// Only the HTTPS variables are read: the pool only makes CONNECT tunnels,
// which is what tools send to the HTTPS proxy.
var (
	upstreamEnv = [...]string{"HTTPS_PROXY", "https_proxy"}
	noProxyEnv  = [...]string{"NO_PROXY", "no_proxy"}
)

// UpstreamFromEnv picks the upstream proxy. flagValue (the --upstream flag)
// wins if non-empty; "none" (any case) means direct and ignores the
// environment. Otherwise the first non-empty of HTTPS_PROXY and https_proxy
// is parsed. getenv is os.Getenv in production.
//
// u is nil when dials go direct. source names where the answer came from,
// for logs: "--upstream" (also for "none"), "HTTPS_PROXY", "https_proxy",
// or "" when nothing is set. A set but malformed value is an error (an
// *UpstreamError naming the source and the masked value): callers must
// refuse to start rather than fall back to direct.
func UpstreamFromEnv(flagValue string, getenv func(string) string) (u *Upstream, source string, err error) {
	var v string
	if f := strings.TrimSpace(flagValue); f != "" {
		source, v = "--upstream", f
		if strings.EqualFold(f, "none") {
			return nil, source, nil
		}
	} else {
		for _, name := range upstreamEnv {
			if e := strings.TrimSpace(getenv(name)); e != "" {
				source, v = name, e
				break
			}
		}
		if source == "" {
			return nil, "", nil
		}
	}
	u, err = ParseUpstream(v)
	if err != nil {
		var ue *UpstreamError
		if errors.As(err, &ue) {
			ue.Source = source
		}
		return nil, source, err
	}
	return u, source, nil
}
