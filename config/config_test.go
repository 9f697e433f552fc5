package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// errorCases are files with problems and the exact message Parse gives for
// them, parsed as "fastsocks.yaml". In both, $TMP is replaced by a fresh
// directory that exists and is writable.
var errorCases = []struct {
	name, yaml, want string
}{
	// Unknown keys, at every level, with suggestions.
	{"unknown key in tenant", `
listeners:
  - address: 127.0.0.1:1080
    tenant: default
tenants:
  default:
    alow: [github.com]
`, `fastsocks.yaml:7: unknown key "alow" in tenant "default" (did you mean "allow"?)`},
	{"unknown key at top level belongs in a tenant", `
allow: [github.com]
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
`, `fastsocks.yaml:2: unknown key "allow" at the top level ("allow" belongs in a tenant, under "tenants")`},
	{"flag spelling at top level", `
idle_timeout: 5m
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
`, `fastsocks.yaml:2: unknown key "idle_timeout" at the top level (did you mean "idle" under "timeouts"?)`},
	{"misspelt top-level key", `
listener: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
`, `fastsocks.yaml:2: unknown key "listener" at the top level (did you mean "listeners"?)
fastsocks.yaml: no listeners; add at least one, e.g. listeners: [{address: "127.0.0.1:1080", tenant: default}]`},
	{"unknown key in listener", `
listeners:
  - address: 127.0.0.1:1080
    tenant: default
    token: x
tenants: {default: {}}
`, `fastsocks.yaml:5: unknown key "token" in listener "127.0.0.1:1080" ("token" belongs in a tenant, under "tenants")`},
	{"unknown keys in timeouts and log", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
timeouts:
  idel: 5m
log:
  colour: true
`, `fastsocks.yaml:5: unknown key "idel" in timeouts (did you mean "idle"?)
fastsocks.yaml:7: unknown key "colour" in log`},
	{"key that is not a name", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
[a, b]: 1
`, `fastsocks.yaml:4: a key must be a plain name, not a list`},

	// Types, durations, numbers.
	{"string where a list is expected", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default:
    allow: github.com
`, `fastsocks.yaml:5: "allow" in tenant "default" must be a list, not a string (write allow: [github.com], or one "- item" a line)`},
	{"list item of the wrong type", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default:
    deny: [ok.example, {a: b}]
`, `fastsocks.yaml:5: item 2 of "deny" in tenant "default" must be a string, not a mapping`},
	{"tenants as a list", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  - default
`, `fastsocks.yaml:4: tenants must be a mapping of tenant name to settings, not a list (e.g. tenants: {default: {allow: [github.com]}})`},
	{"listeners as a mapping", `
listeners:
  address: 127.0.0.1:1080
tenants: {default: {}}
`, `fastsocks.yaml:3: "listeners" must be a list of listeners, not a mapping (e.g. listeners: [{address: "127.0.0.1:1080", tenant: default}])`},
	{"tenant settings not a mapping", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default: [github.com]
`, `fastsocks.yaml:4: tenant "default" must be a mapping of settings such as allow: and deny:, not a list`},
	{"bad durations", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants: {default: {}}
timeouts:
  idle: 5 minutes
  max_lifetime: 3600
  drain: -5s
  handshake: 0
  dial: [10s]
`, `fastsocks.yaml:5: bad duration "5 minutes" for "idle" in timeouts (want a number and a unit, e.g. 90s, 5m, 1h30m)
fastsocks.yaml:6: "max_lifetime" in timeouts is a bare number; give a unit, e.g. 3600s or 3600m
fastsocks.yaml:7: "drain" in timeouts is negative (-5s); want 0 (never) or more
fastsocks.yaml:8: "handshake" in timeouts is 0s; want more than 0
fastsocks.yaml:9: "dial" in timeouts must be a duration such as 10s or 5m, not a list`},
	{"bad numbers", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default:
    max_tunnels: -1
loops: 0
max_dials: many
max_tunnels: 1.5
max_handshakes: 99999999999999999999
`, `fastsocks.yaml:5: "max_tunnels" in tenant "default" is -1; want 0 (unlimited) or more
fastsocks.yaml:6: "loops" is 0; want 1 or more (leave it out for one loop per CPU)
fastsocks.yaml:7: "max_dials" must be a whole number, not a string
fastsocks.yaml:8: "max_tunnels" must be a whole number, not a number
fastsocks.yaml:9: "max_handshakes" must be a whole number, not a number`},
	{"credentials not a bool", `
listeners: [{address: "127.0.0.1:1080", credentials: "yes"}]
tenants: {default: {token: x}}
`, `fastsocks.yaml:2: "credentials" in listener "127.0.0.1:1080" must be true or false, not a string`},

	// Patterns.
	{"bad patterns", `
listeners: [{address: "127.0.0.1:1080", tenant: sbx-1}]
tenants:
  sbx-1:
    allow:
      - github.com
      - foo.*.com
    deny: ["https://evil.com"]
`, `fastsocks.yaml:7: bad pattern "foo.*.com" in the allow list of tenant "sbx-1": "*" may only be the whole leftmost label
fastsocks.yaml:8: bad pattern "https://evil.com" in the deny list of tenant "sbx-1": a scheme is not allowed; give the host name only`},

	// Duplicates.
	{"duplicate TCP listener", `
listeners:
  - address: 127.0.0.1:1080
    tenant: default
  - address: 127.0.0.1:01080
    tenant: default
  - address: "[::1]:1080"
    tenant: default
  - address: "[0:0::1]:1080"
    tenant: default
  - address: 127.0.0.1:0
    tenant: default
  - address: 127.0.0.1:0
    tenant: default
tenants: {default: {}}
`, `fastsocks.yaml:5: duplicate listener address "127.0.0.1:01080" (first at line 3)
fastsocks.yaml:9: duplicate listener address "[0:0::1]:1080" (first at line 7)`},
	{"duplicate unix listener", `
listeners:
  - address: unix:$TMP/a.sock
    tenant: default
  - address: unix:$TMP/sub/../a.sock
    tenant: default
tenants: {default: {}}
`, `fastsocks.yaml:5: duplicate listener address "unix:$TMP/sub/../a.sock" (first at line 3)`},
	{"duplicate tenant", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default:
    allow: [a.example]
  other: {}
  default:
    allow: [b.example]
`, `fastsocks.yaml:7: duplicate tenant "default" (first at line 4)`},
	{"duplicate keys", `
listeners: [{address: "127.0.0.1:1080", tenant: default}]
tenants:
  default:
    allow: [a.example]
    allow: [b.example]
tenants: {}
`, `fastsocks.yaml:6: duplicate key "allow" in tenant "default" (first at line 5)
fastsocks.yaml:7: duplicate key "tenants" at the top level (first at line 3)`},

	// Listener to tenant binding.
	{"unknown tenant", `
listeners:
  - address: 127.0.0.1:1080
    tenant: sbx-24
  - address: 127.0.0.1:1081
    tenant: nobody
tenants: {sbx-42: {}}
`, `fastsocks.yaml:4: listener "127.0.0.1:1080" names tenant "sbx-24", which is not defined under tenants (did you mean "sbx-42"?)
fastsocks.yaml:6: listener "127.0.0.1:1081" names tenant "nobody", which is not defined under tenants`},
	{"tenant and credentials", `
listeners:
  - address: 127.0.0.1:1080
    tenant: default
    credentials: true
tenants: {default: {token: x}}
`, `fastsocks.yaml:4: listener "127.0.0.1:1080" has both tenant: and credentials: true; with credentials the user name selects the tenant, so drop one`},
	{"neither tenant nor credentials", `
listeners:
  - address: 127.0.0.1:1080
  - address: 127.0.0.1:1081
    credentials: false
tenants: {default: {}}
`, `fastsocks.yaml:3: listener "127.0.0.1:1080" needs tenant: NAME (every client on it belongs to that tenant) or credentials: true (clients log in as a tenant)
fastsocks.yaml:4: listener "127.0.0.1:1081" needs tenant: NAME (every client on it belongs to that tenant) or credentials: true (clients log in as a tenant)`},
	{"no address", `
listeners:
  - tenant: default
tenants: {default: {}}
`, `fastsocks.yaml:3: listener #1 has no address (host:port, or unix:/absolute/path.sock)`},
	{"credentials listener without any token", `
listeners:
  - address: 127.0.0.1:1081
    credentials: true
tenants: {a: {}, b: {}}
`, `fastsocks.yaml:3: credentials listener "127.0.0.1:1081" cannot be used: no tenant has a token or token_file`},
	{"bad tenant names", `
listeners: [{address: "127.0.0.1:1080", tenant: ok}]
tenants:
  ok: {}
  "a:b": {}
  "a b": {}
  "": {}
  ` + strings.Repeat("n", 256) + `: {}
`, `fastsocks.yaml:5: bad tenant name "a:b": contains ':'; HTTP Basic credentials end the user name at the first ':'
fastsocks.yaml:6: bad tenant name "a b": use printable ASCII without spaces (it is the SOCKS5 user name)
fastsocks.yaml:7: bad tenant name "": empty
fastsocks.yaml:8: bad tenant name "` + strings.Repeat("n", 256) + `": 256 bytes; a SOCKS5 user name (RFC 1929) has at most 255`},

	// Tokens. Messages never show a token.
	{"bad tokens", `
listeners: [{address: "127.0.0.1:1080", credentials: true}]
tenants:
  a: {token: ""}
  b: {token: ` + strings.Repeat("S", 256) + `}
  c: {token: 12345}
  d:
    token: x
    token_file: $TMP/token
`, `fastsocks.yaml:4: "token" in tenant "a" is empty
fastsocks.yaml:5: "token" in tenant "b" is 256 bytes; a SOCKS5 password (RFC 1929) has at most 255
fastsocks.yaml:6: "token" in tenant "c" must be a string, not a whole number (put it in quotes)
fastsocks.yaml:9: tenant "d" has both token and token_file; keep one`},
	{"bad token files", `
listeners: [{address: "127.0.0.1:1080", credentials: true}]
tenants:
  a: {token_file: $TMP/missing}
  b: {token_file: $TMP/empty}
  c: {token_file: $TMP}
  d: {token_file: $TMP/big}
  e: {token_file: $TMP/long}
  f: {token_file: ""}
  g: {token_file: $TMP/token}
`, `fastsocks.yaml:4: token_file $TMP/missing of tenant "a": does not exist
fastsocks.yaml:5: token_file $TMP/empty of tenant "b" is empty
fastsocks.yaml:6: token_file $TMP of tenant "c" is not a regular file
fastsocks.yaml:7: token_file $TMP/big of tenant "d" is larger than 4 KiB; it should hold one token
fastsocks.yaml:8: the token in token_file $TMP/long of tenant "e" is 300 bytes; a SOCKS5 password (RFC 1929) has at most 255
fastsocks.yaml:9: "token_file" in tenant "f" is empty`},

	// Unix socket listeners.
	{"unix paths", `
listeners:
  - {address: "unix:run/x.sock", tenant: t}
  - {address: "unix:", tenant: t}
  - {address: "unix:@abstract", tenant: t}
  - {address: "unix:$TMP/", tenant: t}
  - {address: "unix:/` + strings.Repeat("d", 107) + `", tenant: t}
  - {address: "unix:$TMP/nodir/x.sock", tenant: t}
  - {address: "unix:$TMP/file/x.sock", tenant: t}
  - {address: "unix:$TMP/file", tenant: t}
tenants: {t: {}}
`, `fastsocks.yaml:3: bad unix socket address "unix:run/x.sock": the path must be absolute (unix:/run/fastsocks/NAME.sock)
fastsocks.yaml:4: bad unix socket address "unix:": no path; write unix:/absolute/path.sock
fastsocks.yaml:5: bad unix socket address "unix:@abstract": abstract sockets are not supported; give an absolute path
fastsocks.yaml:6: bad unix socket address "unix:$TMP/": the path names a directory; add the socket's file name
fastsocks.yaml:7: bad unix socket address "unix:/` + strings.Repeat("d", 107) + `": the path is 108 bytes; a unix socket path may have at most 107
fastsocks.yaml:8: socket directory $TMP/nodir does not exist
fastsocks.yaml:9: socket directory $TMP/file is not a directory
fastsocks.yaml:10: $TMP/file exists and is not a socket; fastsocks replaces only stale sockets, so move it or pick another path`},
	{"socket modes", `
listeners:
  - {address: "unix:$TMP/a.sock", tenant: t, mode: "0999"}
  - {address: "unix:$TMP/b.sock", tenant: t, mode: rw}
  - {address: "unix:$TMP/c.sock", tenant: t, mode: "4755"}
  - {address: "unix:$TMP/d.sock", tenant: t, mode: "0444"}
  - {address: "unix:$TMP/e.sock", tenant: t, mode: [1]}
  - {address: "127.0.0.1:1080", tenant: t, mode: "0660"}
tenants: {t: {}}
`, `fastsocks.yaml:3: bad mode in listener "unix:$TMP/a.sock": "0999" is not an octal mode such as "0660"
fastsocks.yaml:4: bad mode in listener "unix:$TMP/b.sock": "rw" is not an octal mode such as "0660"
fastsocks.yaml:5: bad mode in listener "unix:$TMP/c.sock": "4755" has bits beyond 0777 (setuid, setgid, sticky); give permission bits only
fastsocks.yaml:6: bad mode in listener "unix:$TMP/d.sock": "0444" lets nobody connect: connecting to a unix socket needs write permission
fastsocks.yaml:7: bad mode in listener "unix:$TMP/e.sock": want octal permission bits such as "0660", not a list
fastsocks.yaml:8: "mode" in listener "127.0.0.1:1080" applies only to unix: listeners`},

	// TCP listeners.
	{"tcp addresses", `
listeners:
  - {address: "127.0.0.1", tenant: t}
  - {address: "127.0.0.1:70000", tenant: t}
  - {address: ":1080", tenant: t}
  - {address: "localhost:http", tenant: t}
  - {address: "exa mple:1080", tenant: t}
  - {address: "/run/x.sock", tenant: t}
  - {address: "::1:1080", tenant: t}
  - {address: "127.0.0.1:", tenant: t}
  - {address: "", tenant: t}
  - {address: 1080, tenant: t}
  - {address: "[foo]:1080", tenant: t}
  - {address: "[::1]", tenant: t}
  - {address: "h:99999999999999999999", tenant: t}
tenants: {t: {}}
`, `fastsocks.yaml:3: bad listener address "127.0.0.1": no port (want host:port)
fastsocks.yaml:4: bad listener address "127.0.0.1:70000": port 70000 is over 65535
fastsocks.yaml:5: bad listener address ":1080": the host is empty (write 0.0.0.0:1080 or [::]:1080 to listen on every interface)
fastsocks.yaml:6: bad listener address "localhost:http": port "http" is not a number
fastsocks.yaml:7: bad listener address "exa mple:1080": invalid host "exa mple" (want an IP address or a host name)
fastsocks.yaml:8: bad listener address "/run/x.sock": no port (want host:port); for a unix socket write unix:/run/x.sock
fastsocks.yaml:9: bad listener address "::1:1080": too many colons (write IPv6 addresses in brackets: [::1]:1080)
fastsocks.yaml:10: bad listener address "127.0.0.1:": no port
fastsocks.yaml:11: listener address is empty (want host:port, or unix:/absolute/path.sock)
fastsocks.yaml:12: "address" in listener #10 must be a string, not a whole number (put it in quotes)
fastsocks.yaml:13: bad listener address "[foo]:1080": "foo" in brackets is not an IPv6 address
fastsocks.yaml:14: bad listener address "[::1]": no port after the IPv6 address (want [addr]:port)
fastsocks.yaml:15: bad listener address "h:99999999999999999999": port 99999999999999999999 is over 65535`},

	// Upstreams: the password never appears.
	{"bad upstreams", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants:
  t: {upstream: "ftp://proxy.corp:21"}
  u: {upstream: none}
upstream: http://alice:hunter2@proxy.corp:0
`, `fastsocks.yaml:4: bad "upstream" in tenant "t": upstream proxy "ftp://proxy.corp:21": unknown scheme "ftp" (want http://)
fastsocks.yaml:6: bad "upstream": upstream proxy "http://alice:***@proxy.corp:0": port 0`},

	// Private destinations.
	{"bad CIDRs", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants:
  t: {allow_private_dest: [10.0.0.1]}
allow_private_dest: [10.1.0.0/8, bogus, "fd00::/129"]
`, `fastsocks.yaml:4: "10.0.0.1" in "allow_private_dest" in tenant "t" is an address, not a CIDR; write 10.0.0.1/32
fastsocks.yaml:5: CIDR "10.1.0.0/8" in "allow_private_dest" has bits set after the first 8; did you mean 10.0.0.0/8?
fastsocks.yaml:5: bad CIDR "bogus" in "allow_private_dest" (want e.g. 10.0.0.0/8 or fd00::/8)
fastsocks.yaml:5: bad CIDR "fd00::/129" in "allow_private_dest" (want e.g. 10.0.0.0/8 or fd00::/8)`},

	// Logging and admin.
	{"bad log settings", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants: {t: {}}
log:
  format: xml
  level: verbose
  access_log: $TMP
`, `fastsocks.yaml:5: "format" in log is "xml"; want text or json
fastsocks.yaml:6: "level" in log is "verbose"; want debug, info, warn or error
fastsocks.yaml:7: "access_log" in log $TMP: is a directory`},
	{"access log in a missing directory", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants: {t: {}}
log: {access_log: $TMP/nodir/access.log}
`, `fastsocks.yaml:4: "access_log" in log $TMP/nodir/access.log: directory $TMP/nodir does not exist`},
	{"bad admin", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants: {t: {}}
admin: 9090
`, `fastsocks.yaml:4: "admin" must be a string, not a whole number (put it in quotes)`},
	{"admin on a listener's address", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants: {t: {}}
admin: 127.0.0.1:1080
`, `fastsocks.yaml:4: admin address "127.0.0.1:1080" is also a listener's (line 2)`},

	// Whole-file problems.
	{"empty file", ``, `fastsocks.yaml: the file is empty; a minimal one is:
  listeners:
    - address: 127.0.0.1:1080
      tenant: default
  tenants:
    default:
      allow: [github.com]`},
	{"comments only", "# nothing yet\n", `fastsocks.yaml: the file is empty; a minimal one is:
  listeners:
    - address: 127.0.0.1:1080
      tenant: default
  tenants:
    default:
      allow: [github.com]`},
	{"null document", "--- ~\n", `fastsocks.yaml: the file is empty; a minimal one is:
  listeners:
    - address: 127.0.0.1:1080
      tenant: default
  tenants:
    default:
      allow: [github.com]`},
	{"no listeners or tenants", `
timeouts: {idle: 5m}
`, `fastsocks.yaml: no listeners; add at least one, e.g. listeners: [{address: "127.0.0.1:1080", tenant: default}]
fastsocks.yaml: no tenants; add at least one, e.g. tenants: {default: {allow: [github.com]}}`},
	{"empty sections", `
listeners: []
tenants: {}
`, `fastsocks.yaml:2: listeners is empty; add at least one, e.g. listeners: [{address: "127.0.0.1:1080", tenant: default}]
fastsocks.yaml:3: tenants is empty; add at least one, e.g. tenants: {default: {allow: [github.com]}}`},
	{"top level not a mapping", `
- address: 127.0.0.1:1080
`, `fastsocks.yaml:2: the top level must be a mapping with keys such as listeners: and tenants:, not a list`},
	{"YAML syntax error", `
listeners: [{address: "127.0.0.1:1080", tenant: t}
tenants: {t: {}}
`, `fastsocks.yaml:2: invalid YAML: did not find expected ',' or ']'`},
	{"tab indentation", "listeners:\n\t- address: 127.0.0.1:1080\n", `fastsocks.yaml:2: invalid YAML: found character that cannot start any token`},
	{"tab on the first line", "\tlisteners: []\n", `fastsocks.yaml:1: invalid YAML: found character that cannot start any token`},
	{"control character", "listeners: []\ntenants: {}\nloops: \x01\n", `fastsocks.yaml:3: invalid YAML: control characters are not allowed`},
	{"unknown anchor", "listeners: []\ntenants: {a: {allow: *common}}\n", `fastsocks.yaml:2: invalid YAML: unknown anchor 'common' referenced`},
	{"merge loop", "listeners: [{address: \"127.0.0.1:1080\", tenant: a}]\ntenants:\n  a: &a {<<: *a}\n", `fastsocks.yaml:3: a merge key (<<) includes the mapping it is in`},
	{"two documents", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants: {t: {}}
---
loops: 2
`, `fastsocks.yaml:4: a second YAML document starts here; put the whole configuration in one`},
	{"bad merge", `
listeners: [{address: "127.0.0.1:1080", tenant: t}]
tenants:
  t:
    <<: [1]
`, `fastsocks.yaml:5: a merge key (<<) takes a mapping or a list of mappings, not a whole number`},
	{"errors in a merged mapping are reported once", `
listeners: [{address: "127.0.0.1:1080", tenant: a}]
tenants:
  a: &base
    allow: [ok.example, bad..example]
    alow: []
  b: {<<: *base}
  c: {<<: *base}
`, `fastsocks.yaml:5: bad pattern "bad..example" in the allow list of tenant "a": empty label
fastsocks.yaml:6: unknown key "alow" in tenant "a" (did you mean "allow"?)`},
}

// setupTmp makes the files the error cases refer to.
func setupTmp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token", "tok\n")
	write("empty", " \n\t\n")
	write("big", strings.Repeat("B", 5000))
	write("long", strings.Repeat("L", 300)+"\n")
	write("file", "not a directory\n")
	return dir
}

func TestErrors(t *testing.T) {
	tmp := setupTmp(t)
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.ReplaceAll(tc.yaml, "$TMP", tmp)
			want := strings.ReplaceAll(tc.want, "$TMP", tmp)
			f, err := Parse("fastsocks.yaml", []byte(in))
			if err == nil {
				t.Fatalf("no error; want:\n%s\nfile: %+v", want, f)
			}
			if f != nil {
				t.Errorf("got a *File with an error")
			}
			if got := err.Error(); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Errorf("error is %T, want a non-empty *Errors", err)
			}
		})
	}
}

// TestNoSecretsInErrors checks that tokens and upstream passwords never
// appear in messages, whatever is wrong with them.
func TestNoSecretsInErrors(t *testing.T) {
	tmp := t.TempDir()
	secret := "hunter2-" + strings.Repeat("Z", 300)
	tokenFile := filepath.Join(tmp, "tok")
	if err := os.WriteFile(tokenFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `
listeners: [{address: "127.0.0.1:1080", credentials: true}]
tenants:
  a: {token: "` + secret + `"}
  b: {token_file: ` + tokenFile + `}
  c: {token: 73310, upstream: "http://u:73311@proxy:0"}
  d: {token: [hunter2], upstream: "http://u:hunter2@proxy:99999/x"}
upstream: "http://u:hunter2@:3128"
`
	_, err := Parse("fastsocks.yaml", []byte(in))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	t.Log(msg)
	for _, s := range []string{"hunter2", "73310", "73311", "ZZZ"} {
		if strings.Contains(msg, s) {
			t.Errorf("message shows secret %q", s)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 7 {
		t.Errorf("got %d problems, want 7", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestFull parses the file from the package documentation, with every key
// set, and checks every field.
func TestFull(t *testing.T) {
	tmp := setupTmp(t)
	in := strings.ReplaceAll(`
# every key
listeners:
  - address: 127.0.0.1:1080
    tenant: default
  - address: unix:$TMP/sbx-42.sock
    tenant: sbx-42
    mode: "0660"
  - address: unix:$TMP/sbx-43.sock
    tenant: "43"
    mode: 660
  - address: 127.0.0.1:1081
    credentials: true
tenants:
  default:
    allow: [github.com, "*.npmjs.org"]
    deny: [evil.github.com]
    allow_private_dest: [10.0.0.0/8]
    upstream: http://proxy.corp:3128
    token: "s3cret"
    max_tunnels: 100
  sbx-42:
    allow: []
    allow_private_dest: []
    upstream: NONE
    token_file: token
  43:
timeouts:
  handshake: 10s
  dial: 10s
  idle: 5m
  max_lifetime: 0
  drain: "0"
upstream: http://proxy.corp:3128
no_proxy: [internal.corp, .svc]
allow_private_dest: [127.0.0.0/8]
loops: 2
max_dials: 512
max_tunnels: 0
max_handshakes: 1_000
log:
  format: JSON
  level: debug
  access_log: access.log
admin: "127.0.0.1:9090"
`, "$TMP", tmp)
	f, err := Parse(filepath.Join(tmp, "fastsocks.yaml"), []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Path: filepath.Join(tmp, "fastsocks.yaml"),
		Listeners: []Listener{
			{Address: "127.0.0.1:1080", Tenant: "default", Line: 4},
			{Address: "unix:" + tmp + "/sbx-42.sock", Unix: true, Path: tmp + "/sbx-42.sock", Tenant: "sbx-42", Mode: 0o660, Line: 6},
			{Address: "unix:" + tmp + "/sbx-43.sock", Unix: true, Path: tmp + "/sbx-43.sock", Tenant: "43", Mode: 0o660, Line: 9},
			{Address: "127.0.0.1:1081", Credentials: true, Line: 12},
		},
		Tenants: []Tenant{
			{
				Name: "default", Allow: []string{"github.com", "*.npmjs.org"}, Deny: []string{"evil.github.com"},
				AllowPrivateDest: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				Upstream:         "http://proxy.corp:3128", Token: "s3cret", MaxTunnels: 100, Line: 15,
			},
			{Name: "sbx-42", Allow: []string{}, AllowPrivateDest: []netip.Prefix{}, Upstream: "none", Token: "tok", Line: 22},
			{Name: "43", Line: 27},
		},
		Timeouts: Timeouts{
			Handshake: ptr(10 * time.Second), Dial: ptr(10 * time.Second), Idle: ptr(5 * time.Minute),
			MaxLifetime: ptr(time.Duration(0)), Drain: ptr(time.Duration(0)),
		},
		Upstream:         "http://proxy.corp:3128",
		NoProxy:          ptr("internal.corp,.svc"),
		AllowPrivateDest: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Loops:            2, MaxDials: 512, MaxTunnels: 0, MaxHandshakes: 1000,
		Log:   Log{Format: "json", Level: "debug", AccessLog: filepath.Join(tmp, "access.log")},
		Admin: "127.0.0.1:9090",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
		for i := range min(len(f.Tenants), len(want.Tenants)) {
			if !reflect.DeepEqual(f.Tenants[i], want.Tenants[i]) {
				t.Errorf("tenant %d: got %#v, want %#v", i, f.Tenants[i], want.Tenants[i])
			}
		}
		for i := range min(len(f.Listeners), len(want.Listeners)) {
			if f.Listeners[i] != want.Listeners[i] {
				t.Errorf("listener %d: got %#v, want %#v", i, f.Listeners[i], want.Listeners[i])
			}
		}
	}
}

// TestMinimal checks that the file the empty-file message suggests is
// valid, and that unset keys stay unset.
func TestMinimal(t *testing.T) {
	f, err := Parse("fastsocks.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Listeners) != 1 || len(f.Tenants) != 1 || f.Tenants[0].Allow[0] != "github.com" {
		t.Errorf("got %+v", f)
	}
	if f.NoProxy != nil || f.Timeouts != (Timeouts{}) || f.Tenants[0].AllowPrivateDest != nil || f.Upstream != "" {
		t.Errorf("unset keys got values: %+v", f)
	}
}

// TestNulls checks that "key:" with no value is the same as no key.
func TestNulls(t *testing.T) {
	f, err := Parse("fastsocks.yaml", []byte(`
listeners:
  - address: 127.0.0.1:1080
    tenant: t
    mode:
tenants:
  t:
    allow:
    token:
timeouts:
upstream:
no_proxy: ~
log:
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.NoProxy != nil || f.Tenants[0].Allow != nil || f.Listeners[0].Mode != 0 {
		t.Errorf("got %+v", f)
	}
}

// TestMerge checks anchors, aliases and merge keys shared between tenants.
func TestMerge(t *testing.T) {
	f, err := Parse("fastsocks.yaml", []byte(`
listeners:
  - {address: "127.0.0.1:1080", tenant: a}
  - {address: "127.0.0.1:1081", tenant: b}
tenants:
  a: &base
    allow: &common [github.com, pypi.org]
    max_tunnels: 10
  b:
    <<: *base
    max_tunnels: 20
    deny: *common
`))
	if err != nil {
		t.Fatal(err)
	}
	b := f.Tenants[1]
	if b.MaxTunnels != 20 || !reflect.DeepEqual(b.Allow, []string{"github.com", "pypi.org"}) || !reflect.DeepEqual(b.Deny, b.Allow) {
		t.Errorf("merged tenant: %+v", b)
	}
}

// TestAliasBudget checks that aliases cannot expand without bound.
func TestAliasBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners: [{address: \"127.0.0.1:1080\", tenant: t0}]\ntenants:\n  t0: {allow: &l [a.example, b.example, c.example, d.example]}\n")
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "  t%d: {allow: *l}\n", i)
	}
	p := newParser("fastsocks.yaml")
	p.budget = 100
	p.parse([]byte(b.String()))
	if len(p.errs) != 1 || p.errs[0].Msg != "aliases expand to more than 100 values; the rest are ignored" || p.errs[0].Line != 24 {
		t.Errorf("got %v", p.errs)
	}
}

// TestSocketDirNotWritable uses /proc/sys, which even root cannot create
// files in.
func TestSocketDirNotWritable(t *testing.T) {
	dir := "/proc/sys"
	if unix.Access(dir, unix.W_OK|unix.X_OK) == nil {
		if os.Geteuid() == 0 {
			t.Skip("root can write to /proc/sys here")
		}
		dir = t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Parse("fastsocks.yaml", []byte(`
listeners:
  - address: unix:`+dir+`/a.sock
    tenant: t
  - address: unix:`+dir+`/b.sock
    tenant: t
tenants: {t: {}}
`))
	want := "fastsocks.yaml:3: socket directory " + dir + " is not writable"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s (once)", err, want)
	}
}

// TestExample parses the example the README shows, with its socket
// directory moved to a temporary one (the test cannot create /run/fastsocks).
func TestExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	data = []byte(strings.ReplaceAll(string(data), "/run/fastsocks", tmp))
	f, err := Parse("testdata/example.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Listeners) != 3 || len(f.Tenants) != 2 {
		t.Fatalf("got %d listeners, %d tenants", len(f.Listeners), len(f.Tenants))
	}
	l := f.Listeners
	if !l[0].Unix || l[0].Tenant != "sbx-1" || l[0].Mode != 0o660 || l[1].Mode != 0o600 || !l[2].Credentials || l[2].Unix {
		t.Errorf("listeners: %+v", l)
	}
	if f.Tenants[0].Token == "" || f.Tenants[1].Token != "" {
		t.Errorf("tokens: sbx-1 should have one (from its token_file), sbx-2 none")
	}
	if reflect.DeepEqual(f.Tenants[0].Allow, f.Tenants[1].Allow) {
		t.Errorf("the two sandboxes should have different allow lists")
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}

	path := filepath.Join(t.TempDir(), "fastsocks.yaml")
	if err := os.WriteFile(path, []byte(minimal+"loops: -1\nlop: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	want := path + `:7: "loops" is -1; want 1 or more (leave it out for one loop per CPU)` + "\n" +
		path + `:8: unknown key "lop" at the top level (did you mean "log"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// Both forms of errors.As work, and so does finding one *Error.
	var ptrs *Errors
	var vals Errors
	var one *Error
	if !errors.As(err, &ptrs) || !errors.As(err, &vals) || !errors.As(err, &one) {
		t.Fatalf("errors.As failed on %T", err)
	}
	if len(*ptrs) != 2 || len(vals) != 2 || one.Line != 7 || one.File != path {
		t.Errorf("got %v / %v / %+v", *ptrs, vals, one)
	}

	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(path); err != nil || f.Path != path {
		t.Errorf("Load: %v, %+v", err, f)
	}
}

// TestManyTenants generates a farm of 1,000 tenants, each with its own unix
// socket and allow list, plus a shared credentials listener, and logs how
// long Parse takes (measured, not asserted).
func TestManyTenants(t *testing.T) {
	tmp := t.TempDir()
	var b strings.Builder
	b.WriteString("listeners:\n  - address: 127.0.0.1:1081\n    credentials: true\n")
	const n = 1000
	for i := range n {
		fmt.Fprintf(&b, "  - address: unix:%s/sbx-%d.sock\n    tenant: sbx-%d\n    mode: \"0660\"\n", tmp, i, i)
	}
	b.WriteString("tenants:\n")
	for i := range n {
		fmt.Fprintf(&b, "  sbx-%d:\n    allow: [github.com, \"*.githubusercontent.com\", pypi.org, files.pythonhosted.org, pkg-%d.example.com]\n    deny: [evil-%d.example.com]\n    token: tok-%d\n    max_tunnels: 50\n", i, i, i, i)
	}
	data := []byte(b.String())
	start := time.Now()
	f, err := Parse("farm.yaml", data)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tenants) != n || len(f.Listeners) != n+1 {
		t.Fatalf("got %d tenants, %d listeners", len(f.Tenants), len(f.Listeners))
	}
	t.Logf("parsed %d tenants and %d listeners (%d KiB) in %v", n, n+1, len(data)/1024, elapsed)
}

// TestErrorsSorted checks that problems found in different passes (values
// while walking, tenant references at the end) come out in line order.
func TestErrorsSorted(t *testing.T) {
	_, err := Parse("f.yaml", []byte(`
listeners:
  - address: 127.0.0.1:1080
    tenant: nope
tenants:
  t:
    alow: []
`))
	want := `f.yaml:4: listener "127.0.0.1:1080" names tenant "nope", which is not defined under tenants
f.yaml:7: unknown key "alow" in tenant "t" (did you mean "allow"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"alow", "allow", 1}, {"idel", "idle", 2}, {"kitten", "sitting", 3}, {"", "abc", 3}} {
		if d := levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// FuzzParse checks that Parse never panics, and that its two outcomes are
// consistent: a valid file has listeners bound to defined tenants; an
// invalid one gives located, non-empty messages.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	for _, tc := range errorCases {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("a *File with an error")
			}
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("error %T is not a non-empty *Errors", err)
			}
			for _, e := range *errs {
				if e.Msg == "" || e.File != "fuzz.yaml" || e.Line < 0 {
					t.Fatalf("bad problem %+v", e)
				}
			}
			return
		}
		if len(file.Listeners) == 0 || len(file.Tenants) == 0 {
			t.Fatal("valid file without listeners or tenants")
		}
		names := map[string]bool{}
		for _, tn := range file.Tenants {
			if names[tn.Name] {
				t.Fatalf("duplicate tenant %q", tn.Name)
			}
			names[tn.Name] = true
		}
		for _, l := range file.Listeners {
			if l.Credentials == (l.Tenant != "") || l.Tenant != "" && !names[l.Tenant] {
				t.Fatalf("bad listener %+v", l)
			}
		}
	})
}
