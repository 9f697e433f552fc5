package policy

import (
	"strconv"
	"testing"
)

// bigLists returns about n allow patterns (a third of each form, plus the
// developer list) and n/10 deny patterns, as a large site might configure.
func bigLists(n int) (allow, deny []string) {
	allow = append(allow, devAllow...)
	for i := 0; len(allow) < n; i++ {
		s := strconv.Itoa(i)
		switch i % 3 {
		case 0:
			allow = append(allow, "host"+s+".service"+s+".example.com")
		case 1:
			allow = append(allow, "*.svc"+s+".example.net")
		case 2:
			allow = append(allow, "**.zone"+s+".corp.example.org")
		}
	}
	for i := 0; i < n/10; i++ {
		s := strconv.Itoa(i)
		deny = append(deny, "blocked"+s+".example.com", "**.quarantine"+s+".example.net")
	}
	return allow, deny
}

var benchHosts = []struct{ name, host string }{
	{"exact", "github.com"},
	{"one-label", "registry2.npmjs.org"},
	{"miss", "www.example.invalid"},
	{"mixed-case-port", "Registry.NPMJS.org.:443"},
	{"deep-miss", "a.b.c.d.e.f.g.h.example.invalid"},
	{"big-exact", "host9999.service9999.example.com"},
	{"big-one-label", "x.svc7000.example.net"},
	{"big-multi", "a.b.c.zone5000.corp.example.org"},
}

func BenchmarkDecide(b *testing.B) {
	bigAllow, bigDeny := bigLists(10000)
	for _, pol := range []struct {
		name string
		p    *Policy
	}{
		{"dev", MustNew(devAllow, nil)},
		{"10k", MustNew(bigAllow, bigDeny)},
	} {
		for _, h := range benchHosts {
			b.Run(pol.name+"/"+h.name, func(b *testing.B) {
				b.ReportAllocs()
				var d Decision
				for b.Loop() {
					d = pol.p.Decide(h.host)
				}
				sinkDecision = d
			})
		}
	}
}

func BenchmarkNew10k(b *testing.B) {
	allow, deny := bigLists(10000)
	b.ReportAllocs()
	for b.Loop() {
		MustNew(allow, deny)
	}
}
