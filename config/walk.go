package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
)

// This file maps the sections of the file onto File and checks each value.

var (
	topSec      = &section{place: placeTop, keys: topKeys}
	timeoutsSec = &section{place: placeTimeouts, in: " in timeouts", keys: timeoutKeys}
	logSec      = &section{place: placeLog, in: " in log", keys: logKeys}
	tenantsSec  = &section{place: placeTenants, in: " in tenants", dup: "tenant"}
)

// top walks the top-level mapping; false if it is not one.
func (p *parser) top(root *yaml.Node) bool {
	if root.Kind != yaml.MappingNode {
		p.errAt(root, "the top level must be a mapping with keys such as listeners: and tenants:, not %s", describe(root))
		return false
	}
	f := p.f
	var listeners *yaml.Node
	for _, kv := range p.fields(root, topSec) {
		if isNull(kv.val) {
			continue // "key:" with no value is the same as no key
		}
		switch kv.name {
		case "listeners":
			listeners = kv.val
			if kv.val.Kind != yaml.SequenceNode {
				p.errAt(kv.val, "%s must be a list of listeners, not %s (e.g. listeners: [{address: \"127.0.0.1:1080\", tenant: default}])", kv.desc, describe(kv.val))
				p.listenersSeen = true
				listeners = nil
			}
		case "tenants":
			p.tenants(kv)
		case "timeouts":
			p.timeouts(kv)
		case "upstream":
			f.Upstream = p.upstream(kv)
		case "no_proxy":
			f.NoProxy = p.noProxy(kv)
		case "allow_private_dest":
			f.AllowPrivateDest = p.prefixes(kv, kv.desc)
		case "loops":
			f.Loops, _ = p.integer(kv, 1, "1 or more (leave it out for one loop per CPU)")
		case "max_dials":
			f.MaxDials, _ = p.integer(kv, 1, "1 or more (leave it out for the default)")
		case "max_tunnels":
			f.MaxTunnels, _ = p.integer(kv, 0, "0 (unlimited) or more")
		case "max_handshakes":
			f.MaxHandshakes, _ = p.integer(kv, 0, "0 (the default: a quarter of the descriptor limit) or more")
		case "max_tunnels_per_client":
			f.MaxTunnelsPerClient, _ = p.integer(kv, 0, "0 (unlimited) or more")
		case "log":
			p.log(kv)
		case "admin":
			if s, ok := p.str(kv); ok && strings.TrimSpace(s) != "" {
				s = strings.TrimSpace(s)
				key, why := tcpKey(s)
				if why != "" {
					p.errAt(kv.val, "bad admin address %q: %s", s, why)
					break
				}
				f.Admin, p.adminNode, p.adminKey = s, kv.val, key
			}
		}
	}
	// Tenants first, so listeners can be checked against them whatever
	// the order of the two sections in the file.
	if listeners != nil {
		p.listeners(listeners)
	}
	return true
}

// finish runs the checks that span sections.
func (p *parser) finish() {
	f := p.f
	if len(f.Listeners) == 0 && !p.listenersSeen {
		p.errorf(0, "no listeners; add at least one, e.g. listeners: [{address: \"127.0.0.1:1080\", tenant: default}]")
	}
	if len(f.Tenants) == 0 && !p.tenantsSeen {
		p.errorf(0, "no tenants; add at least one, e.g. tenants: {default: {allow: [github.com]}}")
	}
	for _, r := range p.refs {
		if _, ok := p.tenantNames[r.name]; ok || p.tenantsBad {
			continue // a broken tenants section is reported already
		}
		p.errAt(r.node, "%s names tenant %q, which is not defined under tenants%s", r.listener, r.name, p.closestTenant(r.name))
	}
	// A tenant without a token just cannot log in; no token at all makes
	// credentials listeners useless. (A token that is there but invalid
	// is reported where it is.)
	if !p.tokenGiven && len(f.Tenants) > 0 {
		for _, n := range p.creds {
			p.errAt(n, "credentials listener %s cannot be used: no tenant has a token or token_file", listenerName(n, 0))
		}
	}
	if p.adminNode != nil && !strings.HasSuffix(p.adminKey, ":0") {
		if line, dup := p.addrs[p.adminKey]; dup {
			p.errAt(p.adminNode, "admin address %q is also a listener's (line %d)", f.Admin, line)
		}
	}
}

func (p *parser) closestTenant(name string) string {
	if len(name) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, t := range p.f.Tenants {
		if d := levenshtein(name, t.Name); d < bestD {
			best, bestD = t.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// listenerName names a listener entry in messages: its address if it has
// a readable one, else its position.
func listenerName(n *yaml.Node, pos int) string {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "address" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value != "" && len(v.Value) <= 120 {
				return strconv.Quote(strings.TrimSpace(v.Value))
			}
		}
	}
	if pos > 0 {
		return "#" + strconv.Itoa(pos)
	}
	return "at line " + strconv.Itoa(n.Line)
}

func (p *parser) listeners(seq *yaml.Node) {
	p.listenersSeen = true
	if len(seq.Content) == 0 {
		p.errAt(seq, "listeners is empty; add at least one, e.g. listeners: [{address: \"127.0.0.1:1080\", tenant: default}]")
	}
	for i, c := range seq.Content {
		c = p.resolve(c)
		name := listenerName(c, i+1)
		if c.Kind != yaml.MappingNode {
			p.errAt(c, "listener %s must be a mapping with address: and tenant: (or credentials: true), not %s", name, describe(c))
			continue
		}
		sec := &section{place: placeListener, in: " in listener " + name, keys: listenerKeys}
		l := Listener{Line: c.Line}
		var mode, tenant *yaml.Node
		hasAddr, credBad := false, false
		for _, kv := range p.fields(c, sec) {
			if isNull(kv.val) {
				continue
			}
			switch kv.name {
			case "address":
				hasAddr = true
				if s, ok := p.str(kv); ok {
					p.address(kv.val, s, &l)
				}
			case "tenant":
				tenant = kv.val
				if s, ok := nameValue(kv.val); !ok {
					p.errAt(kv.val, "%s must be a tenant name, not %s", kv.desc, describe(kv.val))
				} else if s == "" {
					p.errAt(kv.val, "%s is empty", kv.desc)
				} else {
					l.Tenant = s
					p.refs = append(p.refs, tenantRef{s, kv.val, "listener " + name})
				}
			case "credentials":
				var ok bool
				l.Credentials, ok = p.boolean(kv)
				credBad = !ok
			case "mode":
				mode = kv.val
			}
		}
		if !hasAddr {
			p.errAt(c, "listener %s has no address (host:port, or unix:/absolute/path.sock)", name)
		}
		switch {
		case tenant != nil && l.Credentials:
			p.errAt(tenant, "listener %s has both tenant: and credentials: true; with credentials the user name selects the tenant, so drop one", name)
		case tenant == nil && !l.Credentials && !credBad:
			p.errAt(c, "listener %s needs tenant: NAME (every client on it belongs to that tenant) or credentials: true (clients log in as a tenant)", name)
		case l.Credentials:
			p.creds = append(p.creds, c)
		}
		if l.Unix {
			l.Mode = 0o600
		}
		if mode != nil {
			if l.Address != "" && !l.Unix {
				p.errAt(mode, "\"mode\" in listener %s applies only to unix: listeners", name)
			} else if m, why := parseMode(mode); why != "" {
				p.errAt(mode, "bad mode in listener %s: %s", name, why)
			} else {
				l.Mode = m
			}
		}
		p.f.Listeners = append(p.f.Listeners, l)
	}
}

// address checks a listener address, fills in l and records the address
// for the duplicate check.
func (p *parser) address(n *yaml.Node, raw string, l *Listener) {
	s := strings.TrimSpace(raw)
	if s == "" {
		p.errAt(n, "listener address is empty (want host:port, or unix:/absolute/path.sock)")
		return
	}
	var key string
	if name, ok := strings.CutPrefix(s, "systemd:"); ok {
		// A socket systemd passes in (socket activation), by its
		// FileDescriptorName=.
		if name == "" || strings.ContainsAny(name, ": \t") {
			p.errAt(n, "bad listener address %q: want systemd:NAME, NAME being the socket unit's FileDescriptorName=", s)
			return
		}
		key = s
	} else if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		path, why := p.unixPath(rest)
		if why != "" {
			p.errAt(n, "bad unix socket address %q: %s", s, why)
			return
		}
		l.Unix, l.Path = true, path
		key = "unix:" + path
	} else {
		k, why := tcpKey(s)
		if why != "" {
			p.errAt(n, "bad listener address %q: %s", s, why)
			return
		}
		key = k
	}
	l.Address = s
	if strings.HasSuffix(key, ":0") && !l.Unix {
		return // port 0: each such listener gets its own port
	}
	if first, dup := p.addrs[key]; dup {
		p.errAt(n, "duplicate listener address %q (first at line %d)", s, first)
		return
	}
	p.addrs[key] = n.Line
	if l.Unix {
		p.socketDir(n, l.Path)
	}
}

// maxSunPath is the longest socket path that fits sockaddr_un.sun_path
// (108 bytes on Linux, with the terminating NUL).
const maxSunPath = 107

func (p *parser) unixPath(rest string) (string, string) {
	switch {
	case rest == "":
		return "", "no path; write unix:/absolute/path.sock"
	case strings.ContainsRune(rest, 0):
		return "", "the path contains a NUL byte"
	case rest[0] == '@':
		return "", "abstract sockets are not supported; give an absolute path"
	case !filepath.IsAbs(rest):
		return "", "the path must be absolute (unix:/run/fastsocks/NAME.sock)"
	case strings.HasSuffix(rest, "/"):
		return "", "the path names a directory; add the socket's file name"
	}
	path := filepath.Clean(rest)
	if len(path) > maxSunPath {
		return "", fmt.Sprintf("the path is %d bytes; a unix socket path may have at most %d", len(path), maxSunPath)
	}
	return path, ""
}

// tcpKey validates host:port and returns a normalised form for
// comparisons, or why it is refused.
func tcpKey(s string) (string, string) {
	host, port, err := splitHostPort(s)
	if err != "" {
		if strings.HasPrefix(s, "/") {
			err += "; for a unix socket write unix:" + s
		}
		return "", err
	}
	if host == "" {
		return "", "the host is empty (write 0.0.0.0:" + port + " or [::]:" + port + " to listen on every interface)"
	}
	if port == "" {
		return "", "no port"
	}
	if strings.TrimLeft(port, "0123456789") != "" {
		return "", fmt.Sprintf("port %q is not a number", port)
	}
	pn, perr := strconv.ParseUint(port, 10, 16)
	if perr != nil {
		return "", fmt.Sprintf("port %s is over 65535", port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	} else if s[0] == '[' {
		return "", fmt.Sprintf("%q in brackets is not an IPv6 address", host)
	} else {
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		if !hostName(h) {
			return "", fmt.Sprintf("invalid host %q (want an IP address or a host name)", host)
		}
		host = h
	}
	return joinHostPort(host, strconv.FormatUint(pn, 10)), ""
}

func splitHostPort(s string) (host, port, why string) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "missing ']' after the IPv6 address"
		}
		if end+1 == len(s) || s[end+1] != ':' {
			return "", "", "no port after the IPv6 address (want [addr]:port)"
		}
		return s[1:end], s[end+2:], ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", "no port (want host:port)"
	}
	if strings.IndexByte(s[:i], ':') >= 0 {
		return "", "", "too many colons (write IPv6 addresses in brackets: [::1]:1080)"
	}
	return s[:i], s[i+1:], ""
}

func joinHostPort(host, port string) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func hostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseMode reads a socket file mode. It is always octal, like chmod:
// "0660", "660", 0660, 0o660 and 660 (a YAML number) all mean rw-rw----.
func parseMode(n *yaml.Node) (os.FileMode, string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" && n.ShortTag() != "!!int" {
		return 0, "want octal permission bits such as \"0660\", not " + describe(n)
	}
	raw := strings.TrimSpace(n.Value)
	digits := raw
	if len(digits) > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O') {
		digits = digits[2:]
	}
	v, err := strconv.ParseUint(digits, 8, 32)
	switch {
	case err != nil || digits == "" || strings.TrimLeft(digits, "01234567") != "":
		return 0, fmt.Sprintf("%q is not an octal mode such as \"0660\"", raw)
	case v > 0o777:
		return 0, fmt.Sprintf("%q has bits beyond 0777 (setuid, setgid, sticky); give permission bits only", raw)
	case v&0o222 == 0:
		return 0, fmt.Sprintf("%q lets nobody connect: connecting to a unix socket needs write permission", raw)
	}
	return os.FileMode(v), ""
}

func (p *parser) tenants(kv field) {
	p.tenantsSeen = true
	n := kv.val
	if n.Kind != yaml.MappingNode {
		p.errAt(n, "tenants must be a mapping of tenant name to settings, not %s (e.g. tenants: {default: {allow: [github.com]}})", describe(n))
		p.tenantsBad = true
		return
	}
	if len(n.Content) == 0 {
		p.errAt(n, "tenants is empty; add at least one, e.g. tenants: {default: {allow: [github.com]}}")
	}
	for _, tf := range p.fields(n, tenantsSec) {
		name, ok := nameValue(tf.key)
		if !ok {
			p.errAt(tf.key, "a tenant name must be a string, not %s", describe(tf.key))
			continue
		}
		p.tenantNames[name] = tf.key.Line
		if why := checkTenantName(name); why != "" {
			p.errAt(tf.key, "bad tenant name %q: %s", name, why)
		}
		p.f.Tenants = append(p.f.Tenants, p.tenant(name, tf))
	}
}

// checkTenantName checks a name against what RFC 1929 (and HTTP Basic)
// can carry as a user name.
func checkTenantName(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > 255:
		return fmt.Sprintf("%d bytes; a SOCKS5 user name (RFC 1929) has at most 255", len(name))
	case strings.IndexByte(name, ':') >= 0:
		return "contains ':'; HTTP Basic credentials end the user name at the first ':'"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return "use printable ASCII without spaces (it is the SOCKS5 user name)"
		}
	}
	return ""
}

func (p *parser) tenant(name string, tf field) Tenant {
	t := Tenant{Name: name, Line: tf.key.Line}
	in := " in tenant " + strconv.Quote(name)
	sec := &section{place: placeTenant, in: in, keys: tenantKeys}
	n := tf.val
	if isNull(n) {
		return t
	}
	if n.Kind != yaml.MappingNode {
		p.errAt(n, "tenant %q must be a mapping of settings such as allow: and deny:, not %s", name, describe(n))
		return t
	}
	patternsOK := true
	var token, tokenFile *yaml.Node
	var tokenFilePath string
	for _, kv := range p.fields(n, sec) {
		if isNull(kv.val) {
			continue
		}
		switch kv.name {
		case "allow", "deny":
			items, ok := p.list(kv)
			patternsOK = patternsOK && ok
			out := make([]string, 0, len(items))
			for _, it := range items {
				if err := policy.ValidatePattern(it.s); err != nil {
					p.errAt(it.n, "bad pattern %q in the %s list of tenant %q: %s", it.s, kv.name, name, patternWhy(err, it.s))
					patternsOK = false
					continue
				}
				out = append(out, it.s)
			}
			if kv.name == "allow" {
				t.Allow = out
			} else {
				t.Deny = out
			}
		case "allow_private_dest":
			t.AllowPrivateDest = p.prefixes(kv, kv.desc)
		case "upstream":
			t.Upstream = p.upstream(kv)
		case "token":
			token = kv.key
			p.tokenGiven = true
			if s, ok := p.str(kv); ok {
				if why := checkToken(s); why != "" {
					p.errAt(kv.val, "%s %s", kv.desc, why)
				} else {
					t.Token = s
				}
			}
		case "token_file":
			tokenFile = kv.key
			p.tokenGiven = true
			if s, ok := p.str(kv); ok {
				if strings.TrimSpace(s) == "" {
					p.errAt(kv.val, "%s is empty", kv.desc)
				} else {
					tokenFilePath = s
				}
			}
		case "max_tunnels":
			t.MaxTunnels, _ = p.integer(kv, 0, "0 (unlimited) or more")
		}
	}
	switch {
	case token != nil && tokenFile != nil:
		later := tokenFile
		if token.Line > later.Line {
			later = token
		}
		p.errAt(later, "tenant %q has both token and token_file; keep one", name)
		t.Token = ""
	case tokenFilePath != "":
		t.Token = p.readToken(tokenFile, tokenFilePath, name)
	}
	if patternsOK {
		if _, err := policy.New(t.Allow, t.Deny); err != nil {
			p.errAt(tf.key, "tenant %q: %v", name, err)
		}
	}
	return t
}

// patternWhy returns the reason from a policy.ValidatePattern error,
// without the prefix that repeats the pattern.
func patternWhy(err error, s string) string {
	msg := err.Error()
	prefix := policy.ErrInvalidPattern.Error() + " " + strconv.Quote(s) + ": "
	if r, ok := strings.CutPrefix(msg, prefix); ok {
		return r
	}
	return msg
}

// maxToken is the longest password RFC 1929 can carry.
const maxToken = 255

func checkToken(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxToken:
		return fmt.Sprintf("is %d bytes; a SOCKS5 password (RFC 1929) has at most %d", len(s), maxToken)
	}
	return ""
}

// readToken reads a token file. Messages never include its content.
func (p *parser) readToken(key *yaml.Node, path, tenant string) string {
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.dir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		p.errAt(key, "token_file %s of tenant %q: %s", path, tenant, pathErr(err))
		return ""
	}
	if !fi.Mode().IsRegular() {
		p.errAt(key, "token_file %s of tenant %q is not a regular file", path, tenant)
		return ""
	}
	fh, err := os.Open(path)
	if err != nil {
		p.errAt(key, "token_file %s of tenant %q: %s", path, tenant, pathErr(err))
		return ""
	}
	defer fh.Close()
	buf := make([]byte, 4096+1)
	nr := 0
	for nr < len(buf) {
		m, err := fh.Read(buf[nr:])
		nr += m
		if err != nil || m == 0 {
			break
		}
	}
	if nr > 4096 {
		p.errAt(key, "token_file %s of tenant %q is larger than 4 KiB; it should hold one token", path, tenant)
		return ""
	}
	tok := strings.TrimSpace(string(buf[:nr]))
	if tok == "" {
		p.errAt(key, "token_file %s of tenant %q is empty", path, tenant)
		return ""
	}
	if why := checkToken(tok); why != "" {
		p.errAt(key, "the token in token_file %s of tenant %q %s", path, tenant, why)
		return ""
	}
	return tok
}

// pathErr returns the reason of an *fs.PathError without the path, which
// the message already names.
func pathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		if os.IsNotExist(err) {
			return "does not exist"
		}
		return pe.Err.Error()
	}
	return err.Error()
}

func (p *parser) upstream(kv field) string {
	s, ok := p.str(kv)
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return ""
	case strings.EqualFold(s, "none"):
		return "none"
	}
	// dial's error masks any password.
	if _, err := dial.ParseUpstream(s); err != nil {
		p.errAt(kv.val, "bad %s: %v", kv.desc, err)
		return ""
	}
	return s
}

func (p *parser) noProxy(kv field) *string {
	var s string
	if kv.val.Kind == yaml.SequenceNode {
		items, ok := p.list(kv)
		if !ok {
			return nil
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = strings.TrimSpace(it.s)
		}
		s = strings.Join(parts, ",")
	} else {
		v, ok := p.str(kv)
		if !ok {
			return nil
		}
		s = strings.TrimSpace(v)
	}
	_ = dial.ParseNoProxy(s) // accepts anything; called to keep the forms in step
	return &s
}

// prefixes reads a list of CIDRs. The result is non-nil when the key is
// given, even as [].
func (p *parser) prefixes(kv field, desc string) []netip.Prefix {
	items, _ := p.list(kv)
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		s := strings.TrimSpace(it.s)
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p.errAt(it.n, "%q in %s is an address, not a CIDR; write %s/%d", s, desc, a, a.BitLen())
			} else {
				p.errAt(it.n, "bad CIDR %q in %s (want e.g. 10.0.0.0/8 or fd00::/8)", s, desc)
			}
			continue
		}
		if m := pr.Masked(); m != pr {
			p.errAt(it.n, "CIDR %q in %s has bits set after the first %d; did you mean %s?", s, desc, pr.Bits(), m)
			continue
		}
		out = append(out, pr)
	}
	return out
}

func (p *parser) timeouts(kv field) {
	fs, _ := p.mapping(kv, timeoutsSec, "timeouts: {idle: 5m}")
	t := &p.f.Timeouts
	for _, f := range fs {
		if isNull(f.val) {
			continue
		}
		switch f.name {
		case "handshake":
			t.Handshake = p.duration(f, true)
		case "dial":
			t.Dial = p.duration(f, true)
		case "idle":
			t.Idle = p.duration(f, false)
		case "max_lifetime":
			t.MaxLifetime = p.duration(f, false)
		case "drain":
			t.Drain = p.duration(f, false)
		}
	}
}

func (p *parser) log(kv field) {
	fs, _ := p.mapping(kv, logSec, "log: {format: json, level: info}")
	l := &p.f.Log
	for _, f := range fs {
		if isNull(f.val) {
			continue
		}
		s, ok := p.str(f)
		if !ok {
			continue
		}
		v := strings.ToLower(strings.TrimSpace(s))
		switch f.name {
		case "format":
			if v != "text" && v != "json" {
				p.errAt(f.val, "%s is %q; want text or json", f.desc, s)
				continue
			}
			l.Format = v
		case "level":
			if v != "debug" && v != "info" && v != "warn" && v != "error" {
				p.errAt(f.val, "%s is %q; want debug, info, warn or error", f.desc, s)
				continue
			}
			l.Level = v
		case "access_log":
			path := strings.TrimSpace(s)
			if path == "" {
				continue
			}
			if !filepath.IsAbs(path) {
				if abs, err := filepath.Abs(filepath.Join(p.dir, path)); err == nil {
					path = abs
				}
			}
			if why := checkLogPath(path); why != "" {
				p.errAt(f.val, "%s %s: %s", f.desc, path, why)
				continue
			}
			l.AccessLog = path
		}
	}
}
