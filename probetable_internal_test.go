package openconsole

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestProbeTableMatchesMap drives a probeTable of sessions and a Go map with the same random inserts,
// updates and removals and compares them after every step. The hashes are cut to a few bits so
// that probe runs are long, collide and wrap around the end of the table, which is where the
// backward shift of remove can go wrong.
func TestProbeTableMatchesMap(t *testing.T) {
	for _, bits := range []uint{3, 7, 64} {
		hash := func(k sessionKey) uint64 {
			h := binary.LittleEndian.Uint64(k[:8]) * 0x9e3779b97f4a7c15
			if bits < 64 {
				h >>= 64 - bits
			}
			return h
		}
		rng := rand.New(rand.NewPCG(1, uint64(bits)))
		tab := newProbeTable[sessionKey, cachedSession](hash)
		ref := map[sessionKey]cachedSession{}
		var keys []sessionKey
		key := func(i int) (k sessionKey) {
			binary.LittleEndian.PutUint64(k[:8], uint64(i+1)) // never the zero key
			k[15] = byte(i)
			return k
		}
		for step := range 20000 {
			i := rng.IntN(600)
			k := key(i)
			switch op := rng.IntN(10); {
			case op < 5: // insert or update
				e := cachedSession{ts: int64(step), licenseID: uint32(1 + rng.IntN(50)), lastSeen: uint32(step)}
				if _, ok := ref[k]; !ok {
					keys = append(keys, k)
				}
				tab.set(k, hash(k), e)
				ref[k] = e
			case op < 9:
				_, want := ref[k]
				if got := tab.remove(k, hash(k)); got != want {
					t.Fatalf("bits %d step %d: remove(%d) = %v, want %v", bits, step, i, got, want)
				}
				delete(ref, k)
			default:
				if got, ok := tab.get(k, hash(k)); ok != (ref[k] != cachedSession{}) || got != ref[k] {
					t.Fatalf("bits %d step %d: get(%d) = %v %v, want %v", bits, step, i, got, ok, ref[k])
				}
			}
			if tab.n != len(ref) {
				t.Fatalf("bits %d step %d: n = %d, want %d", bits, step, tab.n, len(ref))
			}
			if step%97 == 0 { // everything inserted is found exactly when the map has it
				for _, k := range keys {
					want, in := ref[k]
					if got, ok := tab.get(k, hash(k)); ok != in || got != want {
						t.Fatalf("bits %d step %d: get(%x) = %v %v, want %v %v", bits, step, k[:2], got, ok, want, in)
					}
				}
			}
		}
		if len(tab.slots) == 0 || tab.n*4 > len(tab.slots)*3 {
			t.Fatalf("bits %d: %d entries in %d slots", bits, tab.n, len(tab.slots))
		}
	}
}

// TestProbeTableZeroKey: the zero key, which marks empty slots, is never found.
func TestProbeTableZeroKey(t *testing.T) {
	tab := newProbeTable[uint32, int](func(k uint32) uint64 { return uint64(k) })
	for k := uint32(1); k <= 40; k++ {
		tab.set(k, uint64(k), int(k))
	}
	if _, ok := tab.get(0, 0); ok || tab.find(0, 0) != nil || tab.remove(0, 0) {
		t.Fatal("the zero key was found")
	}
	if v, ok := tab.get(40, 40); !ok || v != 40 || tab.n != 40 {
		t.Fatalf("get(40) = %d %v, n = %d", v, ok, tab.n)
	}
}
