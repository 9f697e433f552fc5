package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file walks the yaml.Node tree: mappings with known keys, scalars of
// the right type, lists. Every error is attached to the node it is about, so
// it carries that node's line.

// maxExpanded bounds the values aliases may expand to ("billion laughs"):
// each use of an alias counts the items of what it names.
const maxExpanded = 1 << 22

// minimal is a minimal valid file, shown when the file is empty.
const minimal = `listeners:
  - address: 127.0.0.1:1080
    tenant: default
tenants:
  default:
    allow: [github.com]
`

type parser struct {
	name string
	dir  string // directory relative paths are taken from
	f    *File
	errs Errors

	// reported holds nodes already blamed, so a node reached through
	// several aliases or merges is reported once.
	reported map[*yaml.Node]bool
	expanded int // values reached through aliases
	budget   int // limit on expanded: maxExpanded
	tooDeep  bool

	// Filled while walking, checked at the end.
	listenersSeen bool // listeners: present and a list
	tenantsSeen   bool // tenants: present
	tenantsBad    bool // tenants: present but not a mapping
	tokenGiven    bool // some tenant has token: or token_file:, valid or not
	tenantNames   map[string]int
	refs          []tenantRef
	creds         []*yaml.Node // credentials listeners' entries
	addrs         map[string]int
	adminNode     *yaml.Node
	adminKey      string
	dirChecked    map[string]bool
}

type tenantRef struct {
	name     string
	node     *yaml.Node
	listener string
}

func newParser(name string) *parser {
	return &parser{
		name:        name,
		dir:         filepath.Dir(name),
		f:           &File{Path: name},
		reported:    map[*yaml.Node]bool{},
		budget:      maxExpanded,
		tenantNames: map[string]int{},
		addrs:       map[string]int{},
		dirChecked:  map[string]bool{},
	}
}

// errorf records a problem at line (0: the whole file).
func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// errAt records a problem about node n, once per node.
func (p *parser) errAt(n *yaml.Node, format string, args ...any) {
	if p.reported[n] {
		return
	}
	p.reported[n] = true
	p.errorf(n.Line, format, args...)
}

func (p *parser) sortErrors() {
	key := func(e *Error) int {
		if e.Line == 0 {
			return math.MaxInt // whole-file problems last
		}
		return e.Line
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(key(a), key(b)) })
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 reports their line 0-based, and scanner lines 1-based;
// both leave the line out when the 0-based line is 0.
var parserProblems = []string{
	"did not find expected ",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// scannerPrefixes start the messages of yaml.v3's scanner.
var scannerPrefixes = []string{"found ", "did not find ", "could not find ", "mapping ", "block sequence "}

// readerProblems are the messages of yaml.v3's reader, which give no line.
var readerProblems = []string{
	"invalid leading UTF-8 octet",
	"incomplete UTF-8 octet sequence",
	"invalid trailing UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid Unicode character",
	"control characters are not allowed",
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// yamlError turns a yaml.v3 parse error into a located problem, correcting
// yaml.v3's line numbers (see parserProblems) and finding the line itself
// where yaml.v3 gives none.
func (p *parser) yamlError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	isParser := false
	for _, pp := range parserProblems {
		// The scanner also says "did not find expected" for some
		// tokens; those name a character in quotes other than ',' or
		// ']' / '}', or end differently.
		if strings.HasPrefix(msg, pp) {
			isParser = pp != "did not find expected " || parserDidNotFind(msg)
			break
		}
	}
	switch {
	case isParser:
		line++
	case slices.Contains(readerProblems, msg):
		line = badCharLine(data)
	case hasAnyPrefix(msg, scannerPrefixes):
		if line == 0 {
			line = 1
		}
	default:
		if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
			line = lineOf(data, "*"+m[1])
		}
	}
	p.errorf(line, "invalid YAML: %s", msg)
}

func parserDidNotFind(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected '-' indicator", "did not find expected <document start>",
		"did not find expected <stream-start>", "did not find expected key",
		"did not find expected node content":
		return true
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// badCharLine returns the line of the first byte YAML refuses (invalid
// UTF-8 or a control character), or 0.
func badCharLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line
		case r == '\n':
			line++
		case r == '\t' || r == '\r' || r == 0x85 || r == 0xFEFF:
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 || r == 0xfffe || r == 0xffff:
			return line
		}
		i += size
	}
	return 0
}

// lineOf returns the line of the first occurrence of s in data, or 0.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return 1 + bytes.Count(data[:i], []byte("\n"))
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// parse decodes data and walks it.
func (p *parser) parse(data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		p.errorf(0, "the file is empty; a minimal one is:\n%s", indent(minimal))
		return
	}
	if err != nil {
		p.yamlError(err, data)
		return
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.errorf(next.Line, "a second YAML document starts here; put the whole configuration in one")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.errorf(0, "the file is empty; a minimal one is:\n%s", indent(minimal))
			return
		}
		root = root.Content[0]
	}
	root = p.resolve(root)
	if isNull(root) {
		p.errorf(0, "the file is empty; a minimal one is:\n%s", indent(minimal))
		return
	}
	if p.top(root) {
		p.finish()
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ")
}

// resolve follows alias nodes to what they name, counting the expansion.
// Past the budget it reports once and returns a null node.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	for range 8 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		if n.Alias == nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
		}
		p.expanded += 1 + len(n.Alias.Content)
		if p.expanded > p.budget {
			if !p.tooDeep {
				p.tooDeep = true
				p.errorf(n.Line, "aliases expand to more than %d values; the rest are ignored", p.budget)
			}
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
		}
		n = n.Alias
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
}

// describe names the kind of a node's value for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "a whole number"
		case "!!float":
			return "a number"
		case "!!bool":
			return "true/false"
		case "!!null":
			return "empty"
		case "!!timestamp":
			return "a date"
		case "!!binary":
			return "binary data"
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an unexpected YAML node"
}

// section describes a mapping the file may contain.
type section struct {
	place place
	// in ends messages about its keys: ` in tenant "x"`, " in timeouts";
	// "" at the top level.
	in string
	// keys are the keys known here; nil means any key (the tenants map).
	keys []string
	// dup names what a duplicated key is, for the any-key mapping.
	dup string
}

type place int

const (
	placeTop place = iota
	placeListener
	placeTenant
	placeTimeouts
	placeLog
	placeTenants
)

var (
	topKeys      = []string{"listeners", "tenants", "timeouts", "upstream", "no_proxy", "allow_private_dest", "loops", "max_dials", "max_tunnels", "max_handshakes", "max_tunnels_per_client", "log", "admin"}
	listenerKeys = []string{"address", "tenant", "credentials", "mode"}
	tenantKeys   = []string{"allow", "deny", "allow_private_dest", "upstream", "token", "token_file", "max_tunnels"}
	timeoutKeys  = []string{"handshake", "dial", "idle", "max_lifetime", "drain"}
	logKeys      = []string{"format", "level", "access_log"}
)

// places lists where each key belongs, for "did you mean" across sections.
var places = []struct {
	place place
	keys  []string
	where string
}{
	{placeTop, topKeys, "at the top level"},
	{placeListener, listenerKeys, `in a listener, under "listeners"`},
	{placeTenant, tenantKeys, `in a tenant, under "tenants"`},
	{placeTimeouts, timeoutKeys, `under "timeouts"`},
	{placeLog, logKeys, `under "log"`},
}

// flagHints maps command-line flag spellings (normalised: lowercase, '_'
// for '-') to their place in the file.
var flagHints = map[string]struct {
	key   string
	place place
}{
	"listen":            {"listeners", placeTop},
	"handshake_timeout": {"handshake", placeTimeouts},
	"dial_timeout":      {"dial", placeTimeouts},
	"idle_timeout":      {"idle", placeTimeouts},
	"drain_timeout":     {"drain", placeTimeouts},
	"lifetime":          {"max_lifetime", placeTimeouts},
	"log_format":        {"format", placeLog},
	"log_level":         {"level", placeLog},
	"password":          {"token", placeTenant},
	"user":              {"tenant", placeListener},
	"username":          {"tenant", placeListener},
	"auth":              {"credentials", placeListener},
	"listen_address":    {"address", placeListener},
	"addr":              {"address", placeListener},
	"path":              {"address", placeListener},
}

// suggest returns a parenthesised hint for an unknown key in sec, or "".
func suggest(key string, sec *section) string {
	if len(key) > 64 {
		return ""
	}
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	best, bestD := "", 3
	for _, k := range sec.keys {
		if d := levenshtein(norm, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	whereOf := func(pl place) string {
		for _, x := range places {
			if x.place == pl {
				return x.where
			}
		}
		return ""
	}
	if h, ok := flagHints[norm]; ok {
		if h.place == sec.place {
			return fmt.Sprintf(" (did you mean %q?)", h.key)
		}
		return fmt.Sprintf(" (did you mean %q %s?)", h.key, whereOf(h.place))
	}
	for maxD := 0; maxD <= 1; maxD++ {
		for _, x := range places {
			if x.place == sec.place {
				continue
			}
			for _, k := range x.keys {
				if levenshtein(norm, k) > maxD {
					continue
				}
				if k == key {
					return fmt.Sprintf(" (%q belongs %s)", k, x.where)
				}
				return fmt.Sprintf(" (did you mean %q %s?)", k, x.where)
			}
		}
	}
	return ""
}

// levenshtein is the edit distance between a and b (bytes).
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// field is one key: value pair of a mapping.
type field struct {
	key, val *yaml.Node // both resolved
	name     string
	desc     string // `"idle" in timeouts`, for messages
}

// fields returns the pairs of mapping n in order, with aliases resolved
// and merge keys ("<<: *base") expanded: keys written in n win over merged
// ones, and earlier merged mappings over later ones. It reports keys that
// are not scalars, duplicated keys and, if sec.keys is set, unknown keys;
// such pairs are left out.
func (p *parser) fields(n *yaml.Node, sec *section) []field {
	var out []field
	seen := map[string]int{}
	p.collect(n, sec, &out, seen, true, []*yaml.Node{n})
	return out
}

// collect adds the pairs of n to out; stack holds the mappings being
// merged into, outermost first, n last.
func (p *parser) collect(n *yaml.Node, sec *section, out *[]field, seen map[string]int, explicit bool, stack []*yaml.Node) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.errAt(k, "a key must be a plain name, not %s", describe(k))
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			if !explicit {
				continue // an earlier or explicit key wins over a merged one
			}
			if sec.dup != "" {
				p.errAt(k, "duplicate %s %q (first at line %d)", sec.dup, name, first)
			} else {
				p.errAt(k, "duplicate key %q%s (first at line %d)", name, sec.inOrTop(), first)
			}
			continue
		}
		seen[name] = k.Line
		if sec.keys != nil && !slices.Contains(sec.keys, name) {
			p.errAt(k, "unknown key %q%s%s", name, sec.inOrTop(), suggest(name, sec))
			continue
		}
		*out = append(*out, field{key: k, val: p.resolve(v), name: name, desc: strconv.Quote(name) + sec.in})
	}
	if len(merges) > 0 && len(stack) > 16 {
		p.errAt(merges[0], "merge keys (<<) nested too deeply")
		return
	}
	for _, m := range merges {
		m = p.resolve(m)
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, s := range m.Content {
				srcs = append(srcs, p.resolve(s))
			}
		}
		for _, s := range srcs {
			if s.Kind != yaml.MappingNode {
				p.errAt(s, "a merge key (<<) takes a mapping or a list of mappings, not %s", describe(s))
				continue
			}
			if slices.Contains(stack, s) {
				p.errAt(m, "a merge key (<<) includes the mapping it is in")
				continue
			}
			p.collect(s, sec, out, seen, false, append(stack[:len(stack):len(stack)], s))
		}
		if m.Kind != yaml.MappingNode && m.Kind != yaml.SequenceNode {
			p.errAt(m, "a merge key (<<) takes a mapping or a list of mappings, not %s", describe(m))
		}
	}
}

func (sec *section) inOrTop() string {
	if sec.in == "" {
		return " at the top level"
	}
	return sec.in
}

// mapping returns the fields of f's value, which must be a mapping (or
// empty: no fields).
func (p *parser) mapping(f field, sec *section, example string) ([]field, bool) {
	switch {
	case isNull(f.val):
		return nil, true
	case f.val.Kind != yaml.MappingNode:
		p.errAt(f.val, "%s must be a mapping, not %s (e.g. %s)", f.desc, describe(f.val), example)
		return nil, false
	}
	return p.fields(f.val, sec), true
}

// str returns a string value. Non-string scalars are refused without
// echoing them: the value may be a secret.
func (p *parser) str(f field) (string, bool) {
	n := f.val
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return n.Value, true
	}
	hint := ""
	if n.Kind == yaml.ScalarNode {
		hint = " (put it in quotes)"
	}
	p.errAt(n, "%s must be a string, not %s%s", f.desc, describe(n), hint)
	return "", false
}

// nameValue is like str but also takes whole numbers as written, for
// tenant names ("42").
func nameValue(n *yaml.Node) (string, bool) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" || n.ShortTag() == "!!int") {
		return n.Value, true
	}
	return "", false
}

func (p *parser) boolean(f field) (bool, bool) {
	n := f.val
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	p.errAt(n, "%s must be true or false, not %s", f.desc, describe(n))
	return false, false
}

// integer returns a whole number of at least lo; want describes the
// allowed range for the message.
func (p *parser) integer(f field, lo int64, want string) (int, bool) {
	n := f.val
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errAt(n, "%s must be a whole number, not %s", f.desc, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v > math.MaxInt || v < math.MinInt {
		p.errAt(n, "%s: %s is out of range", f.desc, n.Value)
		return 0, false
	}
	if v < lo {
		p.errAt(n, "%s is %d; want %s", f.desc, v, want)
		return 0, false
	}
	return int(v), true
}

// duration parses a duration such as "10s"; a bare 0 is accepted. If
// positive, 0 is refused too.
func (p *parser) duration(f field, positive bool) *time.Duration {
	n := f.val
	var d time.Duration
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		var v int64
		if err := n.Decode(&v); err != nil || v != 0 {
			p.errAt(n, "%s is a bare number; give a unit, e.g. %ss or %sm", f.desc, n.Value, n.Value)
			return nil
		}
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		var err error
		d, err = time.ParseDuration(strings.TrimSpace(n.Value))
		if err != nil {
			p.errAt(n, "bad duration %q for %s (want a number and a unit, e.g. 90s, 5m, 1h30m)", n.Value, f.desc)
			return nil
		}
	default:
		p.errAt(n, "%s must be a duration such as 10s or 5m, not %s", f.desc, describe(n))
		return nil
	}
	switch {
	case positive && d <= 0:
		p.errAt(n, "%s is %v; want more than 0", f.desc, d)
		return nil
	case d < 0:
		p.errAt(n, "%s is negative (%v); want 0 (never) or more", f.desc, d)
		return nil
	}
	return &d
}

// item is one string of a list, with its node for messages.
type item struct {
	s string
	n *yaml.Node
}

// list returns a list of strings. A null value is an empty list (nil,
// true); an explicit [] is non-nil.
func (p *parser) list(f field) ([]item, bool) {
	n := f.val
	switch {
	case isNull(n):
		return nil, true
	case n.Kind == yaml.ScalarNode:
		ex := n.Value
		if len(ex) > 60 || n.ShortTag() != "!!str" {
			ex = "..."
		}
		p.errAt(n, "%s must be a list, not %s (write %s: [%s], or one \"- item\" a line)", f.desc, describe(n), f.name, ex)
		return nil, false
	case n.Kind != yaml.SequenceNode:
		p.errAt(n, "%s must be a list, not %s", f.desc, describe(n))
		return nil, false
	}
	out := make([]item, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		c = p.resolve(c)
		if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" {
			p.errAt(c, "item %d of %s must be a string, not %s", i+1, f.desc, describe(c))
			ok = false
			continue
		}
		out = append(out, item{c.Value, c})
	}
	return out, ok
}
