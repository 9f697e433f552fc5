package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a concurrent log-linear latency histogram: 32 sub-buckets per
// power of two of nanoseconds, so a percentile is within 1/32 (3%) of the
// true value. Record is a few atomic adds; it never allocates.
type hist struct {
	shards [histShards][histBuckets]atomic.Uint64
}

const (
	histSub     = 32 // sub-buckets per power of two
	histSubBits = 5
	histBuckets = 64 * histSub
	histShards  = 8
)

func histIndex(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 - histSubBits // >= 0
	sub := (ns >> uint(exp)) & (histSub - 1)
	return (exp+1)*histSub + int(sub)
}

// histLow is the smallest value that falls into bucket i.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	sub := uint64(i % histSub)
	return (histSub + sub) << uint(exp)
}

// Record adds d; shard spreads contention (pass a worker number).
func (h *hist) Record(shard int, d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.shards[shard&(histShards-1)][histIndex(uint64(d))].Add(1)
}

// Count is the number of values recorded.
func (h *hist) Count() uint64 {
	var n uint64
	for s := range h.shards {
		for i := range h.shards[s] {
			n += h.shards[s][i].Load()
		}
	}
	return n
}

// Quantile returns the value at quantile q (0..1), as the middle of its
// bucket; 0 if nothing was recorded.
func (h *hist) Quantile(q float64) time.Duration {
	var counts [histBuckets]uint64
	var total uint64
	for s := range h.shards {
		for i := range h.shards[s] {
			c := h.shards[s][i].Load()
			counts[i] += c
			total += c
		}
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			lo, hi := histLow(i), histLow(i+1)
			return time.Duration((lo + hi) / 2)
		}
	}
	return 0
}
