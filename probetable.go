package openconsole

// probeTable is an open-addressing hash table with linear probing, at most three quarters full,
// that the validate cache keeps its sessions and licenses in. With a million sessions cached,
// every lookup is a miss to main memory; a Go map keeps an entry's control word and the entry in
// different cache lines (and the table's header in a third), where a lookup here reads the slot it
// lands on and, now and then, the next one: one miss instead of two or three. A session's slot is
// 32 bytes, a license's 64.
//
// The zero key marks an empty slot and cannot be stored. The caller hashes keys (with hash, which
// growing and removing use too) and guards the table with a lock: it is not safe for concurrent use.
type probeTable[K comparable, V any] struct {
	slots []probeSlot[K, V] // a power of two long, or empty
	n     int
	hash  func(K) uint64
}

type probeSlot[K comparable, V any] struct {
	key K
	val V
}

func newProbeTable[K comparable, V any](hash func(K) uint64) probeTable[K, V] {
	return probeTable[K, V]{hash: hash}
}

// find returns the value of k, whose hash is h, or nil. The pointer is valid until the next insert
// or remove.
func (t *probeTable[K, V]) find(k K, h uint64) *V {
	if i, ok := t.index(k, h); ok {
		return &t.slots[i].val
	}
	return nil
}

// get returns the value of k, whose hash is h.
func (t *probeTable[K, V]) get(k K, h uint64) (V, bool) {
	if i, ok := t.index(k, h); ok {
		return t.slots[i].val, true
	}
	var zero V
	return zero, false
}

// index returns the index of the slot holding k, whose hash is h.
func (t *probeTable[K, V]) index(k K, h uint64) (uint64, bool) {
	var zero K
	if len(t.slots) == 0 || k == zero {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch t.slots[i].key {
		case k:
			return i, true
		case zero:
			return 0, false
		}
	}
}

// set stores v as the value of k, whose hash is h (k must not be the zero key), growing the table
// first when one more entry would make it more than three quarters full.
func (t *probeTable[K, V]) set(k K, h uint64, v V) {
	if p := t.find(k, h); p != nil {
		*p = v
		return
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]probeSlot[K, V], max(16, 2*len(old)))
		var zero K
		for _, s := range old {
			if s.key != zero {
				t.place(s, t.hash(s.key))
			}
		}
	}
	t.place(probeSlot[K, V]{k, v}, h)
	t.n++
}

// place puts s into the first empty slot of its probe run.
func (t *probeTable[K, V]) place(s probeSlot[K, V], h uint64) {
	var zero K
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].key != zero {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// remove deletes k, whose hash is h, and reports whether it was there. The slots after it in its
// probe run that may move are moved back into the gap (no tombstones), so that a lookup never
// stops early at an empty slot that lies between a key's home slot and the key.
func (t *probeTable[K, V]) remove(k K, h uint64) bool {
	gap, ok := t.index(k, h)
	if !ok {
		return false
	}
	var zero K
	mask := uint64(len(t.slots) - 1)
	for j := (gap + 1) & mask; t.slots[j].key != zero; j = (j + 1) & mask {
		// The slot at j may fill the gap if the gap lies in its run: from its home slot up to j.
		if home := t.hash(t.slots[j].key) & mask; (j-home)&mask >= (j-gap)&mask {
			t.slots[gap] = t.slots[j]
			gap = j
		}
	}
	t.slots[gap] = probeSlot[K, V]{}
	t.n--
	return true
}
