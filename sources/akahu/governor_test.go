package akahu

import (
	"fmt"
	"testing"
	"time"
)

// simBucket is a server's token bucket, as in akahutest.
type simBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *simBucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type simResult struct {
	sent, refused, admitted int
	slowdowns               int64
	pace                    float64
}

// simulate runs workers closed-loop walks (each sends its next request as soon
// as the previous one is answered) through a governor against a server
// admitting rate requests per second with the given burst, with the given
// round-trip latency, for d of simulated time in 1ms steps. A 429 is retried
// after the client's backoff (100ms doubling, no jitter).
func simulate(ceiling, rate float64, burst, workers int, latency, d time.Duration) simResult {
	t0 := time.Unix(1_000_000, 0)
	g := newGovernor(ceiling, DefaultMinRequestsPerSecond)
	srv := simBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: t0}
	type worker struct {
		state   int // 0 ready, 1 waiting for its slot, 2 in flight
		at      time.Time
		epoch   uint64
		refused bool
		n429    int
	}
	ws := make([]worker, workers)
	var res simResult
	for now := t0; now.Before(t0.Add(d)); now = now.Add(time.Millisecond) {
		for i := range ws {
			w := &ws[i]
			if w.state == 2 && !now.Before(w.at) {
				g.observe(now, w.epoch, w.refused)
				w.state = 0
				w.at = now
				if w.refused {
					w.at = now.Add(100 * time.Millisecond << min(w.n429, 8))
					w.n429++
				} else {
					w.n429 = 0
				}
			}
			if w.state == 0 && !now.Before(w.at) {
				w.state = 1
			}
			if w.state == 1 {
				var ok bool
				if _, w.epoch, ok = g.acquire(now); ok {
					res.sent++
					w.refused = !srv.take(now.Add(latency / 2))
					if w.refused {
						res.refused++
					} else {
						res.admitted++
					}
					w.state, w.at = 2, now.Add(latency)
				}
			}
		}
	}
	res.pace, res.slowdowns = g.stats()
	return res
}

func TestGovernorSimulation(t *testing.T) {
	for _, burst := range []int{1, 5, 10, 40, 100} {
		for _, d := range []time.Duration{5 * time.Second, 10 * time.Second, 60 * time.Second} {
			for _, lat := range []time.Duration{20 * time.Millisecond, 200 * time.Millisecond} {
				r := simulate(0, 40, burst, int(8*lat/(20*time.Millisecond)), lat, d)
				useful := float64(r.admitted) / d.Seconds()
				fmt.Printf("burst %3d lat %3dms %3.0fs: sent %5d refused %4d (%4.1f%%) useful %5.1f/s (%3.0f%%) slowdowns %3d pace %.1f\n",
					burst, lat.Milliseconds(), d.Seconds(), r.sent, r.refused, 100*float64(r.refused)/float64(r.sent), useful, 100*useful/40, r.slowdowns, r.pace)
			}
		}
	}
}
