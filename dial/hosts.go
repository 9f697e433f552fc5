package dial

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// hostsFile answers lookups of names listed in a hosts file (/etc/hosts)
// without a worker: reading a local file does not wait on the network, so
// an event loop may call it. It re-reads the file when its size or
// modification time changes, looking at most once a second. Names not in
// the file are for the resolver (a worker).
//
// It answers as the system does with "hosts: files dns" in
// /etc/nsswitch.conf (the usual order, and what Go's resolver does then):
// a name in the file gets the file's addresses and no DNS query.
type hostsFile struct {
	path string

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	byName  map[string][]netip.Addr
}

func newHostsFile(path string) *hostsFile {
	return &hostsFile{path: path}
}

// lookup returns the addresses listed for name (case-insensitive, one
// trailing dot ignored), in the order to try them (Interleave), or nil.
// The slice is shared: callers must not modify it.
func (h *hostsFile) lookup(name string) []netip.Addr {
	if h == nil || name == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.checked) >= time.Second {
		h.checked = now
		h.reload()
	}
	if len(h.byName) == 0 {
		return nil
	}
	key := strings.TrimSuffix(name, ".")
	if addrs, ok := h.byName[key]; ok {
		return addrs
	}
	return h.byName[strings.ToLower(key)]
}

func (h *hostsFile) reload() {
	fi, err := os.Stat(h.path)
	if err != nil {
		h.byName, h.size, h.mtime = nil, 0, time.Time{}
		return
	}
	if fi.Size() == h.size && fi.ModTime().Equal(h.mtime) && h.byName != nil {
		return
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		return
	}
	h.size, h.mtime = fi.Size(), fi.ModTime()
	h.byName = parseHosts(data)
}

// parseHosts reads hosts-file lines: an address, then names; # starts a
// comment.
func parseHosts(data []byte) map[string][]netip.Addr {
	m := make(map[string][]netip.Addr)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || ip.Zone() != "" {
			continue
		}
		ip = ip.Unmap()
		for _, name := range f[1:] {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			m[name] = append(m[name], ip)
		}
	}
	// Ordered once here, so a lookup on the hot path allocates nothing.
	for name, addrs := range m {
		m[name] = Interleave(addrs)
	}
	return m
}
