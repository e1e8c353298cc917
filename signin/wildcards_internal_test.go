package signin

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestLooksAtRandomTimes draws 1,000 waits between looks for wildcard
// subscriptions: they spread over 10 ms to twice the mean, so that no
// stretch after a look is safe for a user who learned when one came.
func TestLooksAtRandomTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	least, most, sum := time.Hour, time.Duration(0), time.Duration(0)
	const n = 1000
	for range n {
		d := nextLook(r)
		least, most, sum = min(least, d), max(most, d), sum+d
	}
	if least < 10*time.Millisecond || most >= 2*wildcardEvery {
		t.Errorf("waits from %v to %v, want them within [10ms, %v)", least, most, 2*wildcardEvery)
	}
	if least > 20*time.Millisecond || most < 2*wildcardEvery-20*time.Millisecond {
		t.Errorf("waits from %v to %v: not spread over [10ms, %v)", least, most, 2*wildcardEvery)
	}
	if mean := sum / n; mean < wildcardEvery-20*time.Millisecond || mean > wildcardEvery+20*time.Millisecond {
		t.Errorf("mean wait %v, want about %v", mean, wildcardEvery)
	}
}
