package engine

// wheel is a hashed timing wheel of tunnels, one per loop (DESIGN.md
// invariant 6). Each tunnel sits in at most one slot, the one of its next
// deadline; deadlines further away than the wheel's span are parked in the
// farthest slot and re-examined when it comes round. Deadlines that move on
// every byte (idle) are not re-slotted per byte: the check at the slot
// recomputes them and re-inserts the tunnel if it is not due yet.
type wheel struct {
	slots []*tunnel
	mask  uint32
}

func newWheel(size int) wheel {
	n := 1
	for n < size {
		n <<= 1
	}
	return wheel{slots: make([]*tunnel, n), mask: uint32(n - 1)}
}

// add puts t into the slot for tick due, clamped to (now, now+span).
func (w *wheel) add(t *tunnel, now, due uint32) {
	if t.wslot >= 0 {
		w.remove(t)
	}
	d := due - now
	if int32(d) <= 0 {
		d = 1
	}
	if d > w.mask {
		d = w.mask
	}
	s := (now + d) & w.mask
	t.wprev = nil
	t.wnext = w.slots[s]
	if t.wnext != nil {
		t.wnext.wprev = t
	}
	w.slots[s] = t
	t.wslot = int32(s)
}

func (w *wheel) remove(t *tunnel) {
	if t.wslot < 0 {
		return
	}
	if t.wprev != nil {
		t.wprev.wnext = t.wnext
	} else {
		w.slots[t.wslot] = t.wnext
	}
	if t.wnext != nil {
		t.wnext.wprev = t.wprev
	}
	t.wprev, t.wnext, t.wslot = nil, nil, -1
}

// take detaches and returns the list of the slot for tick.
func (w *wheel) take(tick uint32) *tunnel {
	s := tick & w.mask
	head := w.slots[s]
	w.slots[s] = nil
	for t := head; t != nil; t = t.wnext {
		t.wslot = -1
	}
	return head
}
