package dial

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestHostsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(path, []byte("# comment\n127.0.0.1 localhost Box.Local.  # trailing\n::1 localhost ip6-localhost\nbogus line\n10.0.0.1\n"), 0o644)
	p := New(Config{HostsFile: path})
	defer p.Close()
	want := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	if got := p.LookupStatic("localhost"); !reflect.DeepEqual(got, want) {
		t.Fatalf("localhost = %v, want %v", got, want)
	}
	if got := p.LookupStatic("BOX.local."); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("case and trailing dot: %v", got)
	}
	if got := p.LookupStatic("example.com"); got != nil {
		t.Fatalf("unlisted name: %v", got)
	}
	// A changed file is read again (at most once a second).
	os.WriteFile(path, []byte("127.0.0.2 newname\n"), 0o644)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(path, future, future)
	p.hosts.mu.Lock()
	p.hosts.checked = time.Time{}
	p.hosts.mu.Unlock()
	if got := p.LookupStatic("newname"); len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("after rewrite: %v", got)
	}
	if got := p.LookupStatic("localhost"); got != nil {
		t.Fatalf("removed name still answered: %v", got)
	}
}

func TestInterleave(t *testing.T) {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	got := Interleave(a("2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2", "2001:db8::3"))
	want := a("2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "2001:db8::3")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Interleave = %v, want %v", got, want)
	}
	if got := Interleave(a("::ffff:192.0.2.1")); got[0] != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("mapped address not unmapped: %v", got)
	}
}

// TestLookupStaticAllocs: the loop calls LookupStatic per connection.
func TestLookupStaticAllocs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(path, []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644)
	p := New(Config{HostsFile: path})
	defer p.Close()
	p.LookupStatic("localhost") // first read of the file
	if n := testing.AllocsPerRun(1000, func() { p.LookupStatic("localhost") }); n != 0 {
		t.Fatalf("LookupStatic allocates %v times per call", n)
	}
}
