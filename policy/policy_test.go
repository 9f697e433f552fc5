package policy

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// devAllow is koda-sandbox's default developer allow list (see
// /work/shared/reference/README.md, section Filter).
var devAllow = []string{
	"github.com", "*.githubusercontent.com", "api.github.com", "codeload.github.com",
	"*.npmjs.org", "registry.npmjs.org", "*.pypi.org", "pypi.org",
	"files.pythonhosted.org", "crates.io", "static.crates.io", "index.crates.io",
	"*.docker.io", "registry-1.docker.io", "auth.docker.io",
}

var (
	label63 = strings.Repeat("a", 63)
	label64 = strings.Repeat("a", 64)
	// name253 is a 253-byte name: the longest allowed.
	name253 = label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	// suffix251 is the longest name allowed after a wildcard label.
	suffix251 = label63 + "." + label63 + "." + label63 + "." + strings.Repeat("c", 59)
)

func allowed(rule string) Decision { return Decision{Allowed: true, List: ListAllow, Rule: rule} }
func denied(rule string) Decision  { return Decision{List: ListDeny, Rule: rule} }

var none = Decision{}

// Policies the table rows refer to by name.
var testPolicies = map[string]struct{ allow, deny []string }{
	"dev":   {allow: devAllow},
	"multi": {allow: []string{"**.example.com"}},
	// Deny rules of every form over broad allow rules.
	"denywins": {
		allow: []string{"**.example.com", "github.com", "*.npmjs.org"},
		deny:  []string{"secret.example.com", "*.internal.example.com", "**.corp.example.com", "GitHub.com"},
	},
	"denyonly": {deny: []string{"evil.com"}},
	"empty":    {},
	// Overlapping rules: the most specific is reported, then the first.
	"specific": {allow: []string{
		"**.com", "**.example.com", "*.b.example.com", "a.b.example.com",
		"**.b.example.com", " A.B.Example.com ",
	}},
	"onelabelsuffix": {allow: []string{"*.com"}},
	"chars": {allow: []string{
		"_dmarc.example.com", "*.xn--bcher-kva.example", "a-b.c_d.test", name253,
		"*." + suffix251, "**." + suffix251, "localhost",
	}},
}

type decideCase struct {
	policy string
	host   string
	want   Decision
}

var decideCases = []decideCase{
	// Exact patterns.
	{"dev", "github.com", allowed("github.com")},
	{"dev", "api.github.com", allowed("api.github.com")},
	{"dev", "codeload.github.com", allowed("codeload.github.com")},
	{"dev", "www.github.com", none}, // exact means exact
	{"dev", "crates.io", allowed("crates.io")},
	{"dev", "files.pythonhosted.org", allowed("files.pythonhosted.org")},
	{"dev", "pythonhosted.org", none},
	// Case.
	{"dev", "GitHub.COM", allowed("github.com")},
	{"dev", "GITHUB.COM", allowed("github.com")},
	{"dev", "REGISTRY.NpmJS.org", allowed("registry.npmjs.org")},
	// Trailing dot and port.
	{"dev", "github.com.", allowed("github.com")},
	{"dev", "github.com:443", allowed("github.com")},
	{"dev", "github.com.:443", allowed("github.com")},
	{"dev", "GITHUB.COM.:8443", allowed("github.com")},
	{"dev", "github.com:0", allowed("github.com")},
	{"dev", "github.com..", none},       // only one trailing dot is stripped
	{"dev", "github.com:", none},        // empty port: not stripped
	{"dev", "github.com:abc", none},     // not a port
	{"dev", "github.com:44a", none},     // not a port
	{"dev", "github.com:443:443", none}, // only one port is stripped
	{"dev", "github.com:443.", none},    // dot after the port
	{"dev", "github.com:-1", none},
	{"dev", ":443", none},
	{"dev", ".:443", none},
	{"dev", "", none},
	{"dev", ".", none},
	{"dev", "..", none},
	{"dev", ":", none},
	// Suffix and prefix tricks.
	{"dev", "evilgithub.com", none},
	{"dev", "xgithub.com", none},
	{"dev", "github.com.evil.com", none},
	{"dev", "github.com.evil.com.", none},
	{"dev", "github.co", none},
	{"dev", "ithub.com", none},
	{"dev", "github.comx", none},
	{"dev", "github", none},
	{"dev", ".github.com", none},
	{"dev", "github.com/evil", none},
	{"dev", "github.com@evil.com", none},
	{"dev", "evil.com#github.com", none},
	{"dev", " github.com", none}, // hosts are not trimmed
	{"dev", "github.com ", none},
	// One-label wildcards.
	{"dev", "registry.npmjs.org", allowed("registry.npmjs.org")}, // exact beats *.npmjs.org
	{"dev", "foo.npmjs.org", allowed("*.npmjs.org")},
	{"dev", "Foo.NPMJS.org:443", allowed("*.npmjs.org")},
	{"dev", "npmjs.org", none},
	{"dev", "a.b.npmjs.org", none},
	{"dev", "evil.npmjs.org.attacker.com", none},
	{"dev", "npmjs.org.evil", none},
	{"dev", "a..npmjs.org", none},
	{"dev", ".npmjs.org", none},
	{"dev", "..npmjs.org", none},
	{"dev", "xnpmjs.org", none},
	{"dev", "*.npmjs.org", none}, // a pattern is not a host
	{"dev", "raw.githubusercontent.com", allowed("*.githubusercontent.com")},
	{"dev", "githubusercontent.com", none},
	{"dev", "test.pypi.org", allowed("*.pypi.org")},
	{"dev", "pypi.org", allowed("pypi.org")},
	{"dev", "registry-1.docker.io", allowed("registry-1.docker.io")},
	{"dev", "production.docker.io", allowed("*.docker.io")},
	{"dev", "production.cloudflare.docker.io", none}, // two labels
	{"dev", label63 + ".npmjs.org", allowed("*.npmjs.org")},
	{"dev", label64 + ".npmjs.org", none}, // label over 63 bytes
	// Non-ASCII and other bytes never match.
	{"dev", "g\u0456thub.com", none},         // Cyrillic i
	{"dev", "\u212aoda.npmjs.org", none},     // KELVIN SIGN folds to 'k' under strings.ToLower
	{"dev", "github.com\x00", none},          // NUL
	{"dev", "\xffgithub.com", none},          // invalid UTF-8
	{"dev", "foo.npmjs.org\u200b", none},     // zero-width space
	{"dev", "f\u00f6\u00f6.npmjs.org", none}, // IDN not in punycode
	{"dev", "xn--f-1gaa.npmjs.org", allowed("*.npmjs.org")},
	{"dev", "[::1]:443", none},
	{"dev", "::1", none},
	{"dev", "127.0.0.1", none},
	// Multi-label wildcards.
	{"multi", "a.example.com", allowed("**.example.com")},
	{"multi", "a.b.example.com", allowed("**.example.com")},
	{"multi", "a.b.c.d.e.example.com", allowed("**.example.com")},
	{"multi", "A.B.Example.Com.:80", allowed("**.example.com")},
	{"multi", "example.com", none}, // apex not included
	{"multi", "example.com.", none},
	{"multi", "badexample.com", none},
	{"multi", "a.badexample.com", none},
	{"multi", "a.example.com.evil.net", none},
	{"multi", "a..example.com", none},
	{"multi", "a.b..example.com", none},
	{"multi", ".example.com", none},
	{"multi", "com", none},
	// Deny wins.
	{"denywins", "secret.example.com", denied("secret.example.com")},
	{"denywins", "SECRET.example.com:443", denied("secret.example.com")},
	{"denywins", "x.secret.example.com", allowed("**.example.com")},
	{"denywins", "a.internal.example.com", denied("*.internal.example.com")},
	{"denywins", "a.b.internal.example.com", allowed("**.example.com")},
	{"denywins", "internal.example.com", allowed("**.example.com")},
	{"denywins", "a.corp.example.com", denied("**.corp.example.com")},
	{"denywins", "a.b.corp.example.com", denied("**.corp.example.com")},
	{"denywins", "corp.example.com", allowed("**.example.com")},
	{"denywins", "GITHUB.com:443", denied("GitHub.com")}, // rule as written
	{"denywins", "registry.npmjs.org", allowed("*.npmjs.org")},
	{"denywins", "example.com", none},
	// Empty allow list denies everything.
	{"denyonly", "github.com", none},
	{"denyonly", "evil.com", denied("evil.com")},
	{"empty", "github.com", none},
	{"empty", "", none},
	// Most specific rule, then first in list order.
	{"specific", "a.b.example.com", allowed("a.b.example.com")},
	{"specific", "A.b.example.com", allowed("a.b.example.com")},
	{"specific", "x.b.example.com", allowed("*.b.example.com")},
	{"specific", "y.x.b.example.com", allowed("**.b.example.com")},
	{"specific", "b.example.com", allowed("**.example.com")},
	{"specific", "x.example.com", allowed("**.example.com")},
	{"specific", "example.com", allowed("**.com")},
	{"specific", "other.com", allowed("**.com")},
	{"specific", "com", none},
	// A single-label suffix is the operator's choice.
	{"onelabelsuffix", "foo.com", allowed("*.com")},
	{"onelabelsuffix", "a.foo.com", none},
	{"onelabelsuffix", "com", none},
	{"onelabelsuffix", "foo.org", none},
	// Allowed bytes and length limits.
	{"chars", "_dmarc.example.com", allowed("_dmarc.example.com")},
	{"chars", "a.xn--bcher-kva.example", allowed("*.xn--bcher-kva.example")},
	{"chars", "A-B.C_D.TEST", allowed("a-b.c_d.test")},
	{"chars", "localhost", allowed("localhost")},
	{"chars", "localhost.:1080", allowed("localhost")},
	{"chars", name253, allowed(name253)},
	{"chars", name253 + ".", allowed(name253)},
	{"chars", name253 + ".:443", allowed(name253)},
	{"chars", "x." + suffix251, allowed("*." + suffix251)},
	{"chars", "x.y." + suffix251, none}, // 255 bytes: too long for any rule
	{"chars", "xy." + suffix251, none},  // 254 bytes
}

func compile(t testing.TB, name string) *Policy {
	t.Helper()
	spec, ok := testPolicies[name]
	if !ok {
		t.Fatalf("no test policy %q", name)
	}
	p, err := New(spec.allow, spec.deny)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return p
}

func TestDecide(t *testing.T) {
	policies := map[string]*Policy{}
	for name := range testPolicies {
		policies[name] = compile(t, name)
	}
	for _, c := range decideCases {
		got := policies[c.policy].Decide(c.host)
		if got != c.want {
			t.Errorf("%s: Decide(%q) = %+v, want %+v", c.policy, c.host, got, c.want)
		}
		if got.Allowed != (got.List == ListAllow) || (got.List == ListNone) != (got.Rule == "") {
			t.Errorf("%s: Decide(%q) = %+v: inconsistent fields", c.policy, c.host, got)
		}
	}
}

// TestDecideMatchesReference runs the table through the slow reference
// matcher too, so the reference is checked against the table before the
// fuzz target trusts it.
func TestDecideMatchesReference(t *testing.T) {
	for _, c := range decideCases {
		spec := testPolicies[c.policy]
		if got := refDecide(spec.allow, spec.deny, c.host); got != c.want {
			t.Errorf("%s: refDecide(%q) = %+v, want %+v", c.policy, c.host, got, c.want)
		}
	}
}

func TestDecideNilPolicy(t *testing.T) {
	var p *Policy
	for _, host := range []string{"github.com", "", "x"} {
		if got := p.Decide(host); got != none {
			t.Errorf("nil Policy: Decide(%q) = %+v, want denied with no rule", host, got)
		}
	}
	if p.Allow() != nil || p.Deny() != nil {
		t.Errorf("nil Policy: Allow() = %q, Deny() = %q, want nil", p.Allow(), p.Deny())
	}
}

func TestDecideNilLists(t *testing.T) {
	p, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Decide("github.com"); got != none {
		t.Errorf("Decide = %+v, want denied with no rule", got)
	}
}

// invalidPatterns are refused by ValidatePattern and New.
var invalidPatterns = []string{
	"", "   ", "\t\n",
	"*", "**", "***", " * ",
	"*.", "**.", "*..", "*.*", "**.*",
	"foo.*.com", "foo.*", "*.*.com", "**.*.com", "*.**.com", "***.com",
	"*foo.com", "f*o.com", "foo*.com", "foo.com*", "*-.com", "**foo.com",
	"git hub.com", "github.com\t.x", "git\u00a0hub.com", "a\nb.com",
	"https://github.com", "http://x", "socks5h://x.com", "://x.com",
	"x.com/a", "x.com/", "/x.com",
	"x.com:443", "x.com:", "[::1]", "::1", "[::1]:443",
	"a..com", ".com", "..com", "com.", "github.com.", "*.com.", "*..com", "**..com", ".",
	"b\u00fccher.de", "g\u0456thub.com", "\u212aoda.dev", "github.com\x00", "\xff.com",
	"a@b.com", "a,b.com", "a+b.com", "a!b.com", "a\\b.com", "a%2eb.com", "a\"b.com",
	label64 + ".com", "*." + label64 + ".com", "x." + label64,
	name253 + "x", "x." + name253,
	"*." + suffix251 + "x", "**." + suffix251 + "x",
}

// validPatterns are accepted.
var validPatterns = []string{
	"github.com", "  GitHub.COM  ", "\tgithub.com\n", "localhost", "*.npmjs.org", "**.example.com",
	"*.com", "**.com", "*.COM", "**.Example.Com", "_dmarc.example.com", "xn--bcher-kva.example",
	"a-b.c_d.e", "-", "-a-.b", "1.2", "123",
	label63 + ".com", "*." + label63 + ".com", name253, "*." + suffix251, "**." + suffix251,
}

func TestValidatePatternInvalid(t *testing.T) {
	for _, s := range invalidPatterns {
		err := ValidatePattern(s)
		if err == nil {
			t.Errorf("ValidatePattern(%q) = nil, want an error", s)
			continue
		}
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("ValidatePattern(%q) = %v, does not wrap ErrInvalidPattern", s, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "policy: invalid pattern "+strconv.Quote(s)+": ") {
			t.Errorf("ValidatePattern(%q) = %q, want it to start with `policy: invalid pattern %q: `", s, msg, s)
		}
		if strings.HasSuffix(msg, ": ") {
			t.Errorf("ValidatePattern(%q) = %q, says no reason", s, msg)
		}
	}
}

func TestValidatePatternValid(t *testing.T) {
	for _, s := range validPatterns {
		if err := ValidatePattern(s); err != nil {
			t.Errorf("ValidatePattern(%q) = %v, want nil", s, err)
		}
	}
	if _, err := New(validPatterns, validPatterns); err != nil {
		t.Errorf("New(validPatterns, validPatterns) = %v, want nil", err)
	}
}

// TestValidatePatternReasons pins the reason given for each kind of
// mistake, so operators get a message that says what to fix.
func TestValidatePatternReasons(t *testing.T) {
	for _, c := range []struct{ pattern, reason string }{
		{"", "empty pattern"},
		{"*", "bare wildcard"},
		{"*.", "nothing after the wildcard"},
		{"foo.*.com", `"*" may only be the whole leftmost label`},
		{"*foo.com", `"*" may only be the whole leftmost label`},
		{"git hub.com", "whitespace"},
		{"https://x", "scheme"},
		{"x.com/a", "path"},
		{"x.com:443", "port"},
		{"a..com", "empty label"},
		{".com", "empty label"},
		{"com.", "trailing dot"},
		{"b\u00fccher.de", "punycode"},
		{"a@b.com", `character '@' not allowed`},
		{label64 + ".com", "label longer than 63"},
		{name253 + "x", "name longer than 253"},
		{"*." + suffix251 + "x", "longer than 251"},
	} {
		err := ValidatePattern(c.pattern)
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("ValidatePattern(%q) = %v, want a reason containing %q", c.pattern, err, c.reason)
		}
	}
	const want = `policy: invalid pattern "foo.*.com": "*" may only be the whole leftmost label`
	if err := ValidatePattern("foo.*.com"); err == nil || err.Error() != want {
		t.Errorf("ValidatePattern(%q) = %v, want %s", "foo.*.com", err, want)
	}
}

func TestNewInvalid(t *testing.T) {
	for _, s := range invalidPatterns {
		for _, list := range []string{"allow", "deny"} {
			allow, deny := []string{"github.com"}, []string{"evil.com"}
			if list == "allow" {
				allow = append(allow, s)
			} else {
				deny = append(deny, s)
			}
			p, err := New(allow, deny)
			if err == nil {
				t.Errorf("New with %s pattern %q: no error", list, s)
				continue
			}
			if p != nil {
				t.Errorf("New with %s pattern %q: non-nil Policy with error", list, s)
			}
			if !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("New with %s pattern %q: %v does not wrap ErrInvalidPattern", list, s, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, strconv.Quote(s)) || !strings.Contains(msg, list+" list") {
				t.Errorf("New with %s pattern %q: %q does not name the pattern and its list", list, s, msg)
			}
		}
	}
}

func TestMustNewPanics(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("MustNew panicked with %v, want an error wrapping ErrInvalidPattern", r)
		}
	}()
	MustNew([]string{"foo.*.com"}, nil)
	t.Error("MustNew did not panic")
}

func TestAllowDenyAreCopies(t *testing.T) {
	allow := []string{" GitHub.com ", "*.npmjs.org"}
	deny := []string{"evil.com"}
	p := MustNew(allow, deny)
	allow[0], deny[0] = "changed.com", "github.com"
	if got := p.Decide("github.com"); got != allowed("GitHub.com") {
		t.Errorf("after changing the caller's slices: Decide = %+v", got)
	}
	a, d := p.Allow(), p.Deny()
	if strings.Join(a, ",") != "GitHub.com,*.npmjs.org" || strings.Join(d, ",") != "evil.com" {
		t.Errorf("Allow() = %q, Deny() = %q", a, d)
	}
	a[0], d[0] = "x", "github.com"
	if p.Allow()[0] != "GitHub.com" || p.Deny()[0] != "evil.com" {
		t.Errorf("changing the returned slices changed the Policy")
	}
	if got := p.Decide("github.com"); !got.Allowed {
		t.Errorf("changing Deny()'s slice changed decisions: %+v", got)
	}
}

func TestDecisionStringAndReason(t *testing.T) {
	for _, c := range []struct {
		d           Decision
		str, reason string
	}{
		{allowed("*.npmjs.org"), `allow rule "*.npmjs.org"`, "allowed"},
		{denied("evil.com"), `deny rule "evil.com"`, "blocked-by-denylist"},
		{none, "no allow rule matched", "blocked-by-allowlist"},
	} {
		if got := c.d.String(); got != c.str {
			t.Errorf("%+v.String() = %q, want %q", c.d, got, c.str)
		}
		if got := c.d.Reason(); got != c.reason {
			t.Errorf("%+v.Reason() = %q, want %q", c.d, got, c.reason)
		}
	}
	p := compile(t, "denywins")
	for host, want := range map[string]string{
		"a.example.com":      "allowed",
		"secret.example.com": "blocked-by-denylist",
		"other.org":          "blocked-by-allowlist",
	} {
		if got := p.Decide(host).Reason(); got != want {
			t.Errorf("Decide(%q).Reason() = %q, want %q", host, got, want)
		}
	}
}

func TestListString(t *testing.T) {
	for l, want := range map[List]string{ListNone: "none", ListAllow: "allow", ListDeny: "deny", 7: "List(7)"} {
		if got := l.String(); got != want {
			t.Errorf("List(%d).String() = %q, want %q", uint8(l), got, want)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	p := MustNew(append([]string{"**.example.com"}, devAllow...), []string{"evil.com", "**.corp.example.com"})
	for _, host := range []string{
		"registry.npmjs.org",           // allowed, exact
		"foo.npmjs.org",                // allowed, one-label wildcard
		"a.b.c.d.example.com",          // allowed, multi-label walk
		"x.corp.example.com",           // denied by a deny rule
		"evil.com",                     // denied by a deny rule
		"nothing.example.org",          // denied, no rule
		"GitHub.COM",                   // mixed case
		"REGISTRY.NPMJS.ORG.:443",      // mixed case, trailing dot, port
		"github.com:443",               // port
		name253,                        // longest name
		strings.ToUpper(name253) + ".", // longest name, upper case
		"g\u0456thub.com",              // non-ASCII
		"",                             // empty
	} {
		if n := testing.AllocsPerRun(1000, func() { sinkDecision = p.Decide(host) }); n != 0 {
			t.Errorf("Decide(%q): %v allocations, want 0", host, n)
		}
	}
}

var sinkDecision Decision

func TestDecideConcurrent(t *testing.T) {
	p := compile(t, "denywins")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				for _, c := range decideCases {
					if c.policy == "denywins" && p.Decide(c.host) != c.want {
						t.Errorf("Decide(%q) differs under concurrency", c.host)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// fuzzAllow and fuzzDeny are the fixed lists FuzzDecide starts from; each
// input may add one pattern to each.
var (
	fuzzAllow = append([]string{
		"**.example.com", "*.Example.COM", "**.b.example.com", "exact.example.com",
		"x_y.test", "*.com", "**.org",
	}, devAllow...)
	fuzzDeny = []string{"evil.com", "**.evil.com", "*.bad.example.com", "secret.example.com"}
)

func FuzzDecide(f *testing.F) {
	for _, c := range decideCases {
		f.Add(c.host, "", "")
	}
	for _, s := range validPatterns {
		f.Add("a."+strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "**."), "*."), s, "")
	}
	for _, s := range invalidPatterns {
		f.Add(s, s, s)
	}
	f.Add("a.b.c.example.net", "**.c.example.net", "*.b.c.example.net")
	f.Add("x.registry.npmjs.org", "", "REGISTRY.npmjs.org")
	f.Fuzz(func(t *testing.T, host, extraAllow, extraDeny string) {
		allow, deny := fuzzAllow, fuzzDeny
		for _, x := range []struct {
			pattern string
			list    *[]string
		}{{extraAllow, &allow}, {extraDeny, &deny}} {
			err := ValidatePattern(x.pattern)
			if refValid(x.pattern) != (err == nil) {
				t.Fatalf("ValidatePattern(%q) = %v, reference says valid = %v", x.pattern, err, refValid(x.pattern))
			}
			if err == nil {
				*x.list = append((*x.list)[:len(*x.list):len(*x.list)], x.pattern)
			} else if _, err := New([]string{x.pattern}, nil); !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("New accepted %q, which ValidatePattern refuses", x.pattern)
			}
		}
		p, err := New(allow, deny)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		got := p.Decide(host)
		if want := refDecide(allow, deny, host); got != want {
			t.Fatalf("allow %q deny %q: Decide(%q) = %+v, reference says %+v", allow, deny, host, got, want)
		}
		if got.Allowed != (got.List == ListAllow) || (got.List == ListNone) != (got.Rule == "") {
			t.Fatalf("Decide(%q) = %+v: inconsistent fields", host, got)
		}
		// A valid exact pattern admits itself, in any case, with a port.
		if refValid(extraAllow) && !strings.Contains(extraAllow, "*") {
			q := MustNew([]string{extraAllow}, nil)
			h := strings.ToUpper(strings.TrimSpace(extraAllow)) + ".:443"
			if d := q.Decide(h); !d.Allowed {
				t.Fatalf("pattern %q does not admit %q: %+v", extraAllow, h, d)
			}
		}
	})
}

// The reference matcher: slow, allocating, and written differently from
// the package (split on dots and compare labels) so the two check each
// other.

type refRule struct {
	raw    string   // trimmed
	wild   string   // "", "*" or "**"
	labels []string // lowercased labels after the wildcard
}

// refValid reports whether s is a valid pattern, by the package doc.
func refValid(s string) bool {
	s = strings.TrimSpace(s)
	for _, r := range s {
		if r >= 0x80 || r == 0xfffd {
			return false
		}
	}
	labels := strings.Split(strings.ToLower(s), ".")
	max := 253
	if len(labels) > 1 && (labels[0] == "*" || labels[0] == "**") {
		labels = labels[1:]
		max = 251
	}
	if len(strings.Join(labels, ".")) > max {
		return false
	}
	for _, l := range labels {
		if !refLabel(l) {
			return false
		}
	}
	return true
}

// refLabel reports whether l is a valid lowercased label.
func refLabel(l string) bool {
	if l == "" || len(l) > 63 {
		return false
	}
	for _, c := range []byte(l) {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789-_", rune(c)) {
			return false
		}
	}
	return true
}

func refCompile(patterns []string) []refRule {
	rules := make([]refRule, len(patterns))
	for i, s := range patterns {
		s = strings.TrimSpace(s)
		labels := strings.Split(strings.ToLower(s), ".")
		r := refRule{raw: s, labels: labels}
		if labels[0] == "*" || labels[0] == "**" {
			r.wild, r.labels = labels[0], labels[1:]
		}
		rules[i] = r
	}
	return rules
}

// refHost returns the lowercased labels of host, or false when it cannot
// match anything.
func refHost(host string) ([]string, bool) {
	if i := strings.LastIndex(host, ":"); i >= 0 {
		if port := host[i+1:]; port != "" && strings.Trim(port, "0123456789") == "" {
			host = host[:i]
		}
	}
	if strings.HasSuffix(host, ".") {
		host = host[:len(host)-1]
	}
	if host == "" || len(host) > 253 {
		return nil, false
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return nil, false
		}
	}
	labels := strings.Split(strings.ToLower(host), ".")
	for _, l := range labels {
		if !refLabel(l) {
			return nil, false
		}
	}
	return labels, true
}

func equalLabels(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// refScore says how specifically r matches host's labels: exact beats
// one-label beats multi-label, and a longer multi-label suffix beats a
// shorter one. Zero means no match.
func refScore(r refRule, host []string) int {
	switch r.wild {
	case "":
		if equalLabels(r.labels, host) {
			return 1000
		}
	case "*":
		if len(host) == len(r.labels)+1 && equalLabels(host[1:], r.labels) {
			return 500
		}
	case "**":
		if n := len(host) - len(r.labels); n >= 1 && equalLabels(host[n:], r.labels) {
			return len(r.labels)
		}
	}
	return 0
}

// refBest returns the most specific matching rule, the first on ties.
func refBest(rules []refRule, host []string) (string, bool) {
	best, score := -1, 0
	for i, r := range rules {
		if s := refScore(r, host); s > score {
			best, score = i, s
		}
	}
	if best < 0 {
		return "", false
	}
	return rules[best].raw, true
}

func refDecide(allow, deny []string, host string) Decision {
	labels, ok := refHost(host)
	if !ok {
		return Decision{}
	}
	if rule, ok := refBest(refCompile(deny), labels); ok {
		return Decision{List: ListDeny, Rule: rule}
	}
	if rule, ok := refBest(refCompile(allow), labels); ok {
		return Decision{Allowed: true, List: ListAllow, Rule: rule}
	}
	return Decision{}
}
