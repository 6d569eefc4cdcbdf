package openconsole

import (
	"sync"
	"testing"
)

// TestStripedCounterSums: adds from many goroutines over every stripe (and byte values past the
// stripe count) are all counted, once.
func TestStripedCounterSums(t *testing.T) {
	var c StripedCounter
	const workers, each = 8, 10000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.add(byte(w*31 + i))
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got != workers*each {
		t.Fatalf("Load = %d, want %d", got, workers*each)
	}
	if stripeOf("") != 0 || stripeOf("ab") != 'b' {
		t.Errorf("stripeOf: %d %d", stripeOf(""), stripeOf("ab"))
	}
}
