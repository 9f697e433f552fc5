package engine

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// perClient counts the connections open from each client address, for
// Config.MaxConnsPerClient. It is sharded so loops accepting at once
// rarely wait on each other.
type perClient struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		n  map[netip.Addr]int32
	}
}

func newPerClient() *perClient {
	return &perClient{seed: maphash.MakeSeed()}
}

func (p *perClient) shard(a netip.Addr) int {
	b := a.As16()
	return int(maphash.Bytes(p.seed, b[:]) % uint64(len(p.shards)))
}

// add counts one more connection from a unless it already has max; it
// reports whether it did.
func (p *perClient) add(a netip.Addr, max int) bool {
	s := &p.shards[p.shard(a)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = make(map[netip.Addr]int32)
	}
	if int(s.n[a]) >= max {
		return false
	}
	s.n[a]++
	return true
}

func (p *perClient) remove(a netip.Addr) {
	s := &p.shards[p.shard(a)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[a] <= 1 {
		delete(s.n, a)
		return
	}
	s.n[a]--
}
