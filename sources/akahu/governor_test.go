package akahu

import (
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
				w.state, w.at = 1, now
			}
			if w.state == 1 && !now.Before(w.at) { // a waiter sleeps until its slot, as in wait
				var ok bool
				var slot time.Time
				if slot, w.epoch, ok = g.acquire(now); !ok {
					w.at = slot
				} else {
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

// TestGovernorSimulation runs the governor against simulated token-bucket
// servers on a fake clock: deterministic figures of the algorithm itself.
func TestGovernorSimulation(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name                 string
		ceiling, rate        float64
		burst, workers       int
		latency, d           time.Duration
		maxRefused, minUsefl float64 // fractions of requests sent, of rate
	}{
		{"no burst", 0, 40, 1, 8, 20 * ms, 60 * time.Second, 0.05, 0.90},
		{"burst 5", 0, 40, 5, 8, 20 * ms, 60 * time.Second, 0.05, 0.95},
		{"burst 10", 0, 40, 10, 8, 20 * ms, 60 * time.Second, 0.05, 0.95},
		{"burst 40", 0, 40, 40, 8, 20 * ms, 60 * time.Second, 0.05, 0.95},
		{"burst 100", 0, 40, 100, 8, 20 * ms, 60 * time.Second, 0.05, 0.95},
		{"burst 10 short run", 0, 40, 10, 8, 20 * ms, 8 * time.Second, 0.05, 0.95},
		{"slow API, 64 in flight", 0, 40, 10, 64, 200 * ms, 60 * time.Second, 0.07, 0.95},
		{"fast limit", 0, 400, 40, 32, 20 * ms, 20 * time.Second, 0.05, 0.95},
		{"slow limit", 0, 4, 4, 8, 20 * ms, 120 * time.Second, 0.06, 0.90},
		{"budget above the limit", 100, 40, 10, 8, 20 * ms, 60 * time.Second, 0.05, 0.95},
		{"budget below the limit", 20, 40, 10, 8, 20 * ms, 20 * time.Second, 0, 0.49},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := simulate(tt.ceiling, tt.rate, tt.burst, tt.workers, tt.latency, tt.d)
			useful := float64(r.admitted) / tt.d.Seconds()
			refused := float64(r.refused) / float64(r.sent)
			t.Logf("%d sent, %d refused (%.1f%%), useful %.1f/s (%.0f%% of %v/s), %d slow-downs, pace %.1f/s",
				r.sent, r.refused, 100*refused, useful, 100*useful/tt.rate, tt.rate, r.slowdowns, r.pace)
			if refused > tt.maxRefused {
				t.Errorf("%.1f%% of requests refused, want at most %.0f%%", 100*refused, 100*tt.maxRefused)
			}
			if useful < tt.minUsefl*tt.rate {
				t.Errorf("useful rate %.1f/s, want at least %.0f%% of %v/s", useful, 100*tt.minUsefl, tt.rate)
			}
			if tt.ceiling > 0 && useful > tt.ceiling*1.01 {
				t.Errorf("useful rate %.1f/s above the budget %v/s", useful, tt.ceiling)
			}
		})
	}
}

// TestGovernorSteps follows the governor's adaptation step by step on a fake
// clock.
func TestGovernorSteps(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := time.Millisecond
	near := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if got < want*0.999 || got > want*1.001 {
			t.Errorf("%s = %.3f, want %.3f", what, got, want)
		}
	}

	t.Run("unlimited until the first 429", func(t *testing.T) {
		g := newGovernor(0, 1)
		for i := range 50 { // 50 requests in the first 500ms, all at once when asked
			now := at(time.Duration(i) * 10 * ms)
			if slot, _, ok := g.acquire(now); !ok || !slot.Equal(now) {
				t.Fatalf("unlimited governor held request %d back until %v", i, slot)
			}
			g.observe(now, 0, false)
		}
		if pace, cuts := g.stats(); pace != 0 || cuts != 0 {
			t.Fatalf("pace %v cuts %d before any 429, want unlimited", pace, cuts)
		}
		g.observe(at(500*ms), 0, true) // the first 429: 51 answers in the last second
		pace, cuts := g.stats()
		near(t, "pace after the first 429", pace, 0.9*51)
		if cuts != 1 {
			t.Errorf("cuts = %d, want 1", cuts)
		}
		// A 429 to a request sent before the cut is already accounted for.
		g.observe(at(501*ms), 0, true)
		if _, cuts := g.stats(); cuts != 1 {
			t.Errorf("a stale 429 cut again: %d cuts", cuts)
		}
		// Everyone is held off for two intervals at the new pace.
		pace51 := 0.9 * 51
		hold := time.Duration(2 * float64(time.Second) / pace51)
		if slot, _, ok := g.acquire(at(502 * ms)); ok || !slot.Equal(at(500*ms).Add(hold)) {
			t.Errorf("slot %v ok %v right after the cut, want held until %v", slot, ok, at(500*ms).Add(hold))
		}
		// The start climb: +2 requests/s per admitted answer of the new epoch.
		g.observe(at(600*ms), 1, false)
		g.observe(at(610*ms), 1, false)
		g.observe(at(620*ms), 0, false) // sent before the cut: no credit
		if _, _, ok := g.acquire(at(700 * ms)); !ok {
			t.Fatal("no slot after the hold")
		}
		pace, _ = g.stats()
		near(t, "pace after two admitted answers", pace, 0.9*51+4)
	})

	t.Run("cut, climb back in two seconds, then probe beyond", func(t *testing.T) {
		g := newGovernor(100, 1) // a budget: limited from the start
		if pace, _ := g.stats(); pace != 100 {
			t.Fatalf("pace %v, want the budget 100", pace)
		}
		now := at(0)
		for i := range 200 { // 2s at 100/s, every request admitted
			if _, _, ok := g.acquire(now); !ok {
				t.Fatalf("request %d held back at the budget's own pace", i)
			}
			g.observe(now, 0, false)
			now = now.Add(10 * ms)
		}
		g.observe(now, 0, true) // a 429 at 100/s: 100 is too high
		cut := now
		pace, cuts := g.stats()
		near(t, "pace after the cut", pace, 90)
		if cuts != 1 {
			t.Fatalf("cuts = %d", cuts)
		}
		// The cubic climb, sampled while requests keep the pace busy.
		for _, s := range []struct {
			after time.Duration
			want  float64
		}{
			{1 * time.Second, 100 * (1 - 0.1/8)}, // concave: most of the way back
			{2 * time.Second, 100},               // back at the rate found too high
			{3 * time.Second, 100},               // the budget caps the probe
		} {
			g.mu.Lock()
			g.queued = cut.Add(s.after) // requests are waiting: the climb is not capped by use
			r := g.rate(cut.Add(s.after))
			g.mu.Unlock()
			near(t, "pace "+s.after.String()+" after the cut", r, s.want)
		}
		// Without a budget the probe goes beyond, ever faster.
		g.ceiling = 0
		g.mu.Lock()
		g.queued = cut.Add(4 * time.Second)
		r4 := g.rate(cut.Add(4 * time.Second))
		g.mu.Unlock()
		near(t, "pace 4s after the cut, no budget", r4, 110)
	})

	t.Run("a far too high pace is corrected by what the server admitted", func(t *testing.T) {
		g := newGovernor(0, 1)
		now := at(0)
		g.observe(now, 0, true) // the first 429, no history: floor pace
		for i := range 50 {
			g.observe(now.Add(time.Duration(i)*ms), 1, false)
		}
		// Pace after the start climb: 1 + 50×2 = 101/s. The server admitted
		// 50 in the 500ms since the cut: 100/s, not below the pace of the
		// cut (1/s), so the estimate is not trusted; the cut is from 101/s.
		g.observe(now.Add(500*ms), 1, true)
		pace, _ := g.stats()
		near(t, "pace after the second cut", pace, 0.9*101)
		// 90.9/s then, climbing back toward 101/s, but the server admits only
		// 10 in the next second: the pace was too high all along, so the next
		// cut goes by the admitted rate, at most halving the pace of the time.
		for i := range 10 {
			g.observe(now.Add(600*ms+time.Duration(i)*100*ms), 2, false)
		}
		g.observe(now.Add(1500*ms), 2, true)
		pace, cuts := g.stats()
		near(t, "pace after the cut by the admitted rate", pace, 0.9*101*(1-0.1/8)/2)
		if cuts != 3 {
			t.Errorf("cuts = %d, want 3", cuts)
		}
	})
}
