package dial

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const secret = "s3cr3t"

func TestParseUpstream(t *testing.T) {
	basic := func(userpass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
	}
	ok := []struct {
		in, addr, auth, str string
	}{
		{"proxy.corp:3128", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"  proxy.corp:3128\n", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"http://proxy.corp:3128", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"http://proxy.corp:3128/", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"HTTP://Proxy.CORP:3128", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"https://proxy.corp:3128", "proxy.corp:3128", "", "http://proxy.corp:3128"}, // treated as http
		{"http://10.0.0.1:8080", "10.0.0.1:8080", "", "http://10.0.0.1:8080"},
		{"http://[::1]:3128/", "[::1]:3128", "", "http://[::1]:3128"},
		{"http://proxy.corp:03128", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"proxy.corp:65535", "proxy.corp:65535", "", "http://proxy.corp:65535"},
		{"http://alice:" + secret + "@proxy.corp:3128", "proxy.corp:3128", basic("alice:" + secret), "http://alice:***@proxy.corp:3128"},
		{"http://alice:p%40ss@proxy.corp:3128/", "proxy.corp:3128", basic("alice:p@ss"), "http://alice:***@proxy.corp:3128"},
		{"http://dom%5Calice:p%3Ass:x@proxy.corp:3128", "proxy.corp:3128", basic(`dom\alice:p:ss:x`), "http://dom%5Calice:***@proxy.corp:3128"},
		{"http://alice:p@ss@proxy.corp:3128", "proxy.corp:3128", basic("alice:p@ss"), "http://alice:***@proxy.corp:3128"}, // userinfo ends at the last '@'
		{"http://alice:a/b?c#d@proxy.corp:3128", "proxy.corp:3128", basic("alice:a/b?c#d"), "http://alice:***@proxy.corp:3128"},
		{"http://alice:a+b@proxy.corp:3128", "proxy.corp:3128", basic("alice:a+b"), "http://alice:***@proxy.corp:3128"}, // '+' is not a space
		{"http://alice@proxy.corp:3128", "proxy.corp:3128", basic("alice:"), "http://alice@proxy.corp:3128"},
		{"http://alice:@proxy.corp:3128", "proxy.corp:3128", basic("alice:"), "http://alice:***@proxy.corp:3128"},
		{"http://@proxy.corp:3128", "proxy.corp:3128", "", "http://proxy.corp:3128"},
		{"alice:" + secret + "@proxy.corp:3128", "proxy.corp:3128", basic("alice:" + secret), "http://alice:***@proxy.corp:3128"},
	}
	for _, c := range ok {
		u, err := ParseUpstream(c.in)
		if err != nil {
			t.Errorf("ParseUpstream(%q): %v", c.in, err)
			continue
		}
		if u.Addr() != c.addr || u.auth != c.auth || u.String() != c.str {
			t.Errorf("ParseUpstream(%q) = addr %q auth %q str %q, want %q %q %q", c.in, u.Addr(), u.auth, u.String(), c.addr, c.auth, c.str)
		}
		if strings.Contains(u.String(), secret) {
			t.Errorf("String() of %q shows the password: %s", c.in, u)
		}
		if u.HasAuth() != (c.auth != "") {
			t.Errorf("HasAuth() of %q = %v", c.in, u.HasAuth())
		}
	}

	bad := []struct {
		in, why, echo string // echo: the masked value the error must quote
	}{
		{"", "empty", ""},
		{"   ", "empty", ""},
		{"proxy.corp", "no port", "proxy.corp"},
		{"http://alice:" + secret + "@proxy.corp", "no port", "http://alice:***@proxy.corp"},
		{"http://alice:" + secret + "@proxy.corp:", "no port", "http://alice:***@proxy.corp:"},
		{"http://alice:" + secret + "@proxy.corp/", "no port", "http://alice:***@proxy.corp/"},
		{"http://[::1]", "no port", "http://[::1]"},
		{"http://alice:" + secret + "@proxy.corp:0", "port 0", "http://alice:***@proxy.corp:0"},
		{"http://alice:" + secret + "@proxy.corp:65536", "over 65535", "http://alice:***@proxy.corp:65536"},
		{"http://proxy.corp:99999999999999999999", "over 65535", "http://proxy.corp:99999999999999999999"},
		{"http://proxy.corp:http", "not a number", "http://proxy.corp:http"},
		{"http://proxy.corp:-1", "not a number", "http://proxy.corp:-1"},
		{"http://alice:" + secret + "@proxy.corp:3128/path", "path", "http://alice:***@proxy.corp:3128/path"},
		{"http://proxy.corp:3128//", "path", "http://proxy.corp:3128//"},
		{"http://alice:" + secret + "@proxy.corp:3128/?x=1", "query", "http://alice:***@proxy.corp:3128/?x=1"},
		{"http://alice:" + secret + "@proxy.corp:3128?x=1", "query", "http://alice:***@proxy.corp:3128?x=1"},
		{"http://proxy.corp:3128#top", "fragment", "http://proxy.corp:3128#top"},
		{"socks5://alice:" + secret + "@proxy.corp:1080", "unknown scheme \"socks5\"", "socks5://alice:***@proxy.corp:1080"},
		{"ftp://proxy.corp:21", "unknown scheme", "ftp://proxy.corp:21"},
		{"http://alice:s3%zzcr3t@proxy.corp:3128", "bad percent escape in the password", "http://alice:***@proxy.corp:3128"},
		{"http://alice:" + secret + "%@proxy.corp:3128", "bad percent escape in the password", "http://alice:***@proxy.corp:3128"},
		{"http://al%2ice:" + secret + "@proxy.corp:3128", "bad percent escape in the user name", "http://al%2ice:***@proxy.corp:3128"},
		{"http://alice:" + secret + "@:3128", "empty host", "http://alice:***@:3128"},
		{"http://:3128", "empty host", "http://:3128"},
		{"http://", "empty host", "http://"},
		{"http://alice:" + secret + "@", "empty host", "http://alice:***@"},
		{"http://pro xy:3128", "invalid host", "http://pro xy:3128"},
		{"http://::1:3128", "host:port", "http://::1:3128"},
		// A password holding "://" does not make its prefix a scheme.
		{"alice:a://" + secret + "@proxy.corp", "no port", "alice:***@proxy.corp"},
	}
	for _, c := range bad {
		u, err := ParseUpstream(c.in)
		if err == nil {
			t.Errorf("ParseUpstream(%q) = %v, want an error", c.in, u)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, secret) || strings.Contains(msg, "s3%zzcr3t") || strings.Contains(msg, "%zz") {
			t.Errorf("ParseUpstream(%q): error shows the password: %s", c.in, msg)
		}
		if !strings.Contains(msg, c.why) {
			t.Errorf("ParseUpstream(%q): error %q does not say %q", c.in, msg, c.why)
		}
		var ue *UpstreamError
		if !errors.As(err, &ue) || ue.Value != c.echo {
			t.Errorf("ParseUpstream(%q): error %q, want it to echo %q", c.in, msg, c.echo)
		}
	}
}

func TestUpstreamFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name      string
		flag      string
		env       func(string) string
		addr      string // "" for direct
		source    string
		errSubstr string
	}{
		{"nothing set", "", env(), "", "", ""},
		{"flag wins", "flag.corp:1", env("HTTPS_PROXY", "upper.corp:2", "https_proxy", "lower.corp:3"), "flag.corp:1", "--upstream", ""},
		{"upper before lower", "", env("HTTPS_PROXY", "upper.corp:2", "https_proxy", "lower.corp:3"), "upper.corp:2", "HTTPS_PROXY", ""},
		{"lower alone", "", env("https_proxy", "http://lower.corp:3/"), "lower.corp:3", "https_proxy", ""},
		{"empty upper skipped", "", env("HTTPS_PROXY", " ", "https_proxy", "lower.corp:3"), "lower.corp:3", "https_proxy", ""},
		{"none ignores env", "none", env("HTTPS_PROXY", "upper.corp:2"), "", "--upstream", ""},
		{"NONE ignores bad env", "NONE", env("HTTPS_PROXY", "garbage"), "", "--upstream", ""},
		{"http_proxy not read", "", env("HTTP_PROXY", "plain.corp:80", "ALL_PROXY", "all.corp:1"), "", "", ""},
		{"bad flag", "http://u:" + secret + "@flag.corp", env("HTTPS_PROXY", "upper.corp:2"), "", "--upstream", `--upstream: upstream proxy "http://u:***@flag.corp": no port`},
		{"bad upper, no fallback", "", env("HTTPS_PROXY", "http://u:"+secret+"@upper.corp:0", "https_proxy", "lower.corp:3"), "", "HTTPS_PROXY", `HTTPS_PROXY: upstream proxy "http://u:***@upper.corp:0": port 0`},
		{"bad lower", "", env("https_proxy", "socks5://lower.corp:3"), "", "https_proxy", `https_proxy: upstream proxy "socks5://lower.corp:3": unknown scheme`},
	}
	for _, c := range cases {
		u, src, err := UpstreamFromEnv(c.flag, c.env)
		if src != c.source {
			t.Errorf("%s: source %q, want %q", c.name, src, c.source)
		}
		if c.errSubstr != "" {
			if err == nil || u != nil {
				t.Errorf("%s: got %v, %v; want an error and no upstream", c.name, u, err)
				continue
			}
			if !strings.Contains(err.Error(), c.errSubstr) || strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q, want it to contain %q and no password", c.name, err, c.errSubstr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		switch {
		case c.addr == "" && u != nil:
			t.Errorf("%s: upstream %v, want direct", c.name, u)
		case c.addr != "" && (u == nil || u.Addr() != c.addr):
			t.Errorf("%s: upstream %v, want %s", c.name, u, c.addr)
		}
	}
}

func TestNoProxy(t *testing.T) {
	type probe struct {
		host string
		port uint16
		want bool
	}
	cases := []struct {
		list   string
		probes []probe
	}{
		// The reference README's cases (koda-sandbox upstream.rs).
		{"walmart.com", []probe{
			{"walmart.com", 443, true},
			{"pypi.ci.artifacts.walmart.com", 443, true},
			{"evilwalmart.com", 443, false},
			{"walmart.com.evil.com", 443, false},
		}},
		{"*", []probe{{"anything.example", 1, true}, {"10.1.2.3", 80, true}}},
		{"a.test, *", []probe{{"b.test", 1, true}}},
		{".example.com", []probe{
			{"example.com", 443, true},
			{"www.example.com", 443, true},
			{"a.b.example.com", 80, true},
			{"evilexample.com", 443, false},
			{"example.org", 443, false},
		}},
		{"*.example.com", []probe{{"example.com", 1, true}, {"x.example.com", 1, true}, {"xexample.com", 1, false}}},
		{"example.com:8443", []probe{
			{"example.com", 8443, true},
			{"api.example.com", 8443, true},
			{"example.com", 443, false},
		}},
		{" Example.COM. , ,internal.corp:443,", []probe{
			{"EXAMPLE.com", 1, true},
			{"www.example.com.", 1, true}, // one trailing dot on the host ignored
			{"internal.corp", 443, true},
			{"git.INTERNAL.corp", 443, true},
			{"internal.corp", 80, false},
			{"corp", 443, false},
		}},
		// IP entries match that literal only, no suffix games; CIDR
		// entries are kept as names and match nothing.
		{"10.1.2.3,::1,[fe80::1]:22,10.0.0.0/8", []probe{
			{"10.1.2.3", 80, true},
			{"110.1.2.3", 80, false},
			{"x.10.1.2.3", 80, false},
			{"::1", 80, true},
			{"[::1]", 80, true},
			{"fe80::1", 22, true},
			{"fe80::1", 23, false},
			{"10.9.9.9", 80, false},
		}},
		// localhost always goes direct, whatever the list says.
		{"", []probe{
			{"localhost", 80, true},
			{"LOCALHOST.", 80, true},
			{"db.localhost", 5432, true},
			{"localhost.example", 80, false},
			{"notlocalhost", 80, false},
			{"127.0.0.1", 80, false},
			{"example.com", 80, false},
		}},
		{"example.com:0,example.com:x", []probe{{"example.com", 443, false}}},
	}
	for _, c := range cases {
		n := ParseNoProxy(c.list)
		for _, p := range c.probes {
			if got := n.Bypass(p.host, p.port); got != p.want {
				t.Errorf("ParseNoProxy(%q).Bypass(%q, %d) = %v, want %v (parsed %q)", c.list, p.host, p.port, got, p.want, n.String())
			}
		}
	}
	var zero NoProxy
	if !zero.Bypass("localhost", 1) || zero.Bypass("example.com", 1) {
		t.Error("zero NoProxy: want only localhost bypassed")
	}
	if got := ParseNoProxy(" .A.test:80 , *.b.test,*").String(); got != "*,a.test:80,b.test" {
		t.Errorf("String() = %q", got)
	}
}

func TestNoProxyFromEnv(t *testing.T) {
	env := map[string]string{"NO_PROXY": "upper.test", "no_proxy": "lower.test"}
	get := func(k string) string { return env[k] }
	if n := NoProxyFromEnv(get); !n.Bypass("upper.test", 1) || n.Bypass("lower.test", 1) {
		t.Errorf("NO_PROXY should win over no_proxy: %v", n)
	}
	env["NO_PROXY"] = ""
	if n := NoProxyFromEnv(get); !n.Bypass("lower.test", 1) {
		t.Errorf("no_proxy not read: %v", n)
	}
	env = map[string]string{}
	if n := NoProxyFromEnv(get); n.Bypass("lower.test", 1) {
		t.Errorf("empty environment bypasses: %v", n)
	}
}
