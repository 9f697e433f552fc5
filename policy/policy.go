// Package policy decides whether a target host name may be reached, by
// matching it against an operator's allow and deny patterns and naming the
// rule that decided.
//
// It is pure: it does no DNS and no I/O and sees only the name the client
// asked for. Guarding against names that resolve to loopback or private
// addresses belongs where names are resolved, not here; IP-literal targets
// are refused by the protocol front ends before a name reaches this package.
//
// # Patterns
//
//	github.com        exactly that host
//	*.npmjs.org       exactly one more label: registry.npmjs.org, not
//	                  npmjs.org, not a.b.npmjs.org
//	**.example.com    one or more labels: a.example.com, a.b.example.com,
//	                  not the apex example.com
//
// Patterns are trimmed of surrounding whitespace and lowercased (ASCII only).
// A wildcard may only be the whole leftmost label. Names are plain ASCII
// host names: letters, digits, '-', '_' and '.', labels of 1 to 63
// characters, at most 253 characters in all; internationalised names must be
// given in punycode (xn--...). A pattern with a trailing dot, an empty label,
// a scheme, a path, a port or whitespace inside is refused, as is a bare "*"
// or "**". Single-label suffixes such as "*.com" are allowed: that is the
// operator's choice.
//
// # Decisions
//
// Deny patterns win over allow patterns; a host that no allow pattern matches
// is denied, so an empty allow list denies everything.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxName is the longest host name, in bytes, that can match (RFC 1035
// limit on a name in text form without its trailing dot).
const maxName = 253

// maxLabel is the longest label of a host name (RFC 1035 section 2.3.4).
const maxLabel = 63

// List says which list a rule came from.
type List uint8

const (
	ListNone  List = iota // no rule matched
	ListAllow             // the allow list
	ListDeny              // the deny list
)

// String returns "none", "allow" or "deny".
func (l List) String() string {
	switch l {
	case ListNone:
		return "none"
	case ListAllow:
		return "allow"
	case ListDeny:
		return "deny"
	}
	return "List(" + strconv.Itoa(int(l)) + ")"
}

// Decision is the outcome of Decide; it names the rule that decided.
// The zero Decision denies with no rule matched.
type Decision struct {
	// Allowed reports whether the host may be reached.
	Allowed bool
	// List is ListAllow when allowed, ListDeny when a deny rule matched
	// and ListNone when nothing matched (denied).
	List List
	// Rule is the pattern that decided as written by the operator, trimmed
	// of surrounding whitespace but not lowercased; "" when List is
	// ListNone.
	Rule string
}

// String describes the decision for logs: `allow rule "*.npmjs.org"`,
// `deny rule "evil.com"` or `no allow rule matched`.
func (d Decision) String() string {
	switch d.List {
	case ListAllow:
		return "allow rule " + strconv.Quote(d.Rule)
	case ListDeny:
		return "deny rule " + strconv.Quote(d.Rule)
	}
	return "no allow rule matched"
}

// Reason returns a short machine-friendly token for error replies and
// metrics: "allowed", "blocked-by-denylist", or "blocked-by-allowlist" when
// no allow rule matched.
func (d Decision) Reason() string {
	switch {
	case d.Allowed:
		return "allowed"
	case d.List == ListDeny:
		return "blocked-by-denylist"
	}
	return "blocked-by-allowlist"
}

// ErrInvalidPattern is wrapped by every error New and ValidatePattern return
// for a pattern they refuse; match it with errors.Is.
var ErrInvalidPattern = errors.New("policy: invalid pattern")

// Policy holds compiled allow and deny lists. It is immutable after New and
// safe for concurrent use. A nil *Policy denies everything.
type Policy struct {
	allow ruleSet
	deny  ruleSet
}

// New compiles the allow and deny patterns (see the package doc for their
// forms). It returns an error wrapping ErrInvalidPattern that names the
// first pattern refused, its list, and why. The slices are copied; the
// caller may reuse them.
func New(allow, deny []string) (*Policy, error) {
	p := &Policy{}
	if err := p.allow.build(allow, "allow"); err != nil {
		return nil, err
	}
	if err := p.deny.build(deny, "deny"); err != nil {
		return nil, err
	}
	return p, nil
}

// MustNew is like New but panics on an invalid pattern. It is meant for
// tests and examples with patterns fixed in the source.
func MustNew(allow, deny []string) *Policy {
	p, err := New(allow, deny)
	if err != nil {
		panic(err)
	}
	return p
}

// Allow returns a copy of the allow patterns, in the order given, trimmed
// of surrounding whitespace but otherwise as written. It is meant for logs.
func (p *Policy) Allow() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.allow.rules...)
}

// Deny returns a copy of the deny patterns, in the order given, trimmed of
// surrounding whitespace but otherwise as written. It is meant for logs.
func (p *Policy) Deny() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.deny.rules...)
}

// Decide reports whether host may be reached and which rule decided.
//
// The host is normalised first: a ":port" suffix is stripped (only when
// what follows the last ':' is one or more digits), then one trailing dot,
// and ASCII letters are compared case-insensitively. A host that is then
// not a well-formed name (empty, an empty label, a label over 63 or a name
// over 253 bytes, a byte outside letters, digits, '-', '_' and '.', which
// includes every non-ASCII byte) matches no rule and is denied with
// ListNone.
//
// Deny rules are checked first. When several rules of the deciding list
// match, the most specific is reported: an exact pattern, then "*.x", then
// the "**.x" with the longest suffix; among equal patterns the first in
// list order. Decide does not allocate.
func (p *Policy) Decide(host string) Decision {
	if p == nil {
		return Decision{}
	}
	var buf [maxName]byte
	n, ok := canonical(&buf, host)
	if !ok {
		return Decision{}
	}
	name := buf[:n]
	if i, ok := p.deny.match(name); ok {
		return Decision{List: ListDeny, Rule: p.deny.rules[i]}
	}
	if i, ok := p.allow.match(name); ok {
		return Decision{Allowed: true, List: ListAllow, Rule: p.allow.rules[i]}
	}
	return Decision{}
}

// canonical writes the normalised, lowercased form of host into buf and
// returns its length, or false when host cannot match any pattern.
func canonical(buf *[maxName]byte, host string) (int, bool) {
	if c := strings.LastIndexByte(host, ':'); c >= 0 && allDigits(host[c+1:]) {
		host = host[:c]
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) == 0 || len(host) > maxName {
		return 0, false
	}
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c == '.':
			if label == 0 {
				return 0, false
			}
			label = 0
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
			label++
		case nameByte(c):
			label++
		default:
			return 0, false
		}
		if label > maxLabel {
			return 0, false
		}
		buf[i] = c
	}
	if label == 0 {
		return 0, false
	}
	return len(host), true
}

// allDigits reports whether s is non-empty and all ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// nameByte reports whether c may appear in a lowercased label.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// kind is the form of a pattern.
type kind uint8

const (
	kindExact kind = iota // github.com
	kindOne               // *.npmjs.org: exactly one more label
	kindMulti             // **.example.com: one or more labels
)

// ruleSet is one compiled list. Each map is keyed by a lowercased name
// (the suffix after the wildcard label for kindOne and kindMulti) and holds
// the index in rules of the first pattern with that key. The length sets
// let match skip lookups for lengths no key has.
type ruleSet struct {
	rules []string // trimmed, as written

	exact, one, multi          map[string]int
	exactLen, oneLen, multiLen lengths
}

// build compiles patterns, which come from the list named which.
func (s *ruleSet) build(patterns []string, which string) error {
	s.rules = make([]string, len(patterns))
	for i, raw := range patterns {
		k, key, why := parse(raw)
		if why != "" {
			return fmt.Errorf("%w %q in %s list: %s", ErrInvalidPattern, raw, which, why)
		}
		s.rules[i] = strings.TrimSpace(raw)
		m, ls := &s.exact, &s.exactLen
		switch k {
		case kindOne:
			m, ls = &s.one, &s.oneLen
		case kindMulti:
			m, ls = &s.multi, &s.multiLen
		}
		if *m == nil {
			*m = make(map[string]int)
		}
		if _, dup := (*m)[key]; !dup {
			(*m)[key] = i
			ls.add(len(key))
		}
	}
	return nil
}

// match returns the index of the most specific rule that matches name,
// which is canonical (see canonical).
func (s *ruleSet) match(name []byte) (int, bool) {
	if s.exactLen.has(len(name)) {
		if i, ok := s.exact[string(name)]; ok {
			return i, true
		}
	}
	dot := bytes.IndexByte(name, '.')
	if dot < 0 {
		return 0, false // one label: no wildcard can match
	}
	rest := name[dot+1:]
	if s.oneLen.has(len(rest)) {
		if i, ok := s.one[string(rest)]; ok {
			return i, true
		}
	}
	if len(s.multi) == 0 {
		return 0, false
	}
	for {
		if s.multiLen.has(len(rest)) {
			if i, ok := s.multi[string(rest)]; ok {
				return i, true
			}
		}
		dot := bytes.IndexByte(rest, '.')
		if dot < 0 {
			return 0, false
		}
		rest = rest[dot+1:]
	}
}

// lengths is a set of name lengths 0..255.
type lengths [4]uint64

func (l *lengths) add(n int)      { l[n>>6&3] |= 1 << (n & 63) }
func (l *lengths) has(n int) bool { return n < 256 && l[n>>6&3]&(1<<(n&63)) != 0 }

// ValidatePattern reports whether s is a valid pattern (see the package
// doc), so config loaders can report errors line by line. The error wraps
// ErrInvalidPattern and names the pattern and why it was refused, e.g.
// `policy: invalid pattern "foo.*.com": "*" may only be the whole leftmost label`.
func ValidatePattern(s string) error {
	if _, _, why := parse(s); why != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidPattern, s, why)
	}
	return nil
}

// parse validates one pattern and returns its kind and its lowercased key
// (the name after the wildcard label for wildcard patterns), or why it is
// refused.
func parse(raw string) (k kind, key, why string) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return 0, "", "empty pattern"
	case s == "*" || s == "**":
		return 0, "", "a bare wildcard would match every host; name a suffix such as \"*.example.com\""
	case strings.Contains(s, "://"):
		return 0, "", "a scheme is not allowed; give the host name only"
	case strings.ContainsRune(s, '/'):
		return 0, "", "a path is not allowed; give the host name only"
	case strings.ContainsRune(s, ':'):
		return 0, "", "a port is not allowed; patterns match the host on every port"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return 0, "", "non-ASCII character; give internationalised names in punycode (xn--...)"
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return 0, "", "whitespace inside the pattern"
		}
	}
	s = asciiLower(s)
	name, max := s, maxName
	switch {
	case strings.HasPrefix(s, "**."):
		k, name, max = kindMulti, s[3:], maxName-2
	case strings.HasPrefix(s, "*."):
		k, name, max = kindOne, s[2:], maxName-2
	}
	if strings.ContainsRune(name, '*') {
		return 0, "", "\"*\" may only be the whole leftmost label"
	}
	if name == "" {
		return 0, "", "nothing after the wildcard"
	}
	if why := checkName(name, max); why != "" {
		return 0, "", why
	}
	return k, name, ""
}

// checkName checks a lowercased name without wildcards: allowed bytes,
// no empty label, label and name lengths.
func checkName(name string, max int) string {
	if strings.HasSuffix(name, ".") {
		return "trailing dot not allowed; write the name without it"
	}
	if len(name) > max {
		if max < maxName {
			return "name after the wildcard longer than " + strconv.Itoa(max) + " characters"
		}
		return "name longer than " + strconv.Itoa(max) + " characters"
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if label == 0 {
				return "empty label"
			}
			label = 0
			continue
		case !nameByte(c):
			return "character " + strconv.QuoteRune(rune(c)) + " not allowed; use letters, digits, '-', '_' and '.'"
		}
		label++
		if label > maxLabel {
			return "label longer than " + strconv.Itoa(maxLabel) + " characters"
		}
	}
	return ""
}

// asciiLower lowercases ASCII letters only. strings.ToLower would also fold
// some non-ASCII letters into ASCII ones (U+212A KELVIN SIGN to 'k').
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
