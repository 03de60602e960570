package akahu

import (
	"context"
	"sync"
	"time"
)

// The governor's constants; see Config.RequestsPerSecond for the algorithm.
const (
	// govBeta is the multiplicative decrease: a 429 sets the pace to
	// govBeta × the rate found to be too high.
	govBeta = 0.9
	// govProbe is how long after a slow-down the pace takes to climb back to
	// the rate that was too high, or the time that rate takes to send
	// govProbeRequests if longer; beyond it the climb accelerates (cubic).
	govProbe         = 2 * time.Second
	govProbeRequests = 20
	// govStartStep is how much each admitted answer raises the pace, in
	// requests/s, in the first climb after a client that started unlimited
	// met its first 429 (its guess of the limit may be far too low): the pace
	// doubles about every 0.35s while it holds requests back.
	govStartStep = 2.0
	// govMaxHold bounds the pause of every request after a slow-down.
	govMaxHold = 200 * time.Millisecond
	// govWindow is the span over which recent answers are counted.
	govWindow = time.Second
	// govHeadroom caps the pace at govHeadroom × the rate actually sent in
	// the last govWindow (when that is above the last rate found too high)
	// while the pace holds no request back, so an idle or lightly used
	// client does not climb without bound.
	govHeadroom = 2
	// govRing is how many recent answers are remembered.
	govRing = 1024
)

// governor paces a Client's requests at an adaptive rate shared by all of
// them (AIMD with a cubic climb): see Config.RequestsPerSecond. Its methods
// are safe for concurrent use; acquire and observe take the time explicitly
// so the adaptation can be tested with a fake clock.
type governor struct {
	mu      sync.Mutex
	ceiling float64 // configured budget, requests/s; 0: none
	floor   float64 // the lowest pace, requests/s (> 0)

	limited bool      // false: unlimited (no budget and no 429 yet)
	high    float64   // the last rate found too high (or the ceiling)
	cutAt   time.Time // when the pace was last cut
	start   bool      // the climb after the first 429 of an unlimited client
	startAt float64   // the pace during that climb
	cutPace float64   // the pace set by the last cut
	pace    float64   // the pace at the last acquire or cut, for Stats
	queued  time.Time // when a request last had to wait for its slot

	last  time.Time // when the last slot was taken
	hold  time.Time // no slot before this (set by a slow-down)
	epoch uint64    // slow-downs so far

	ring  [govRing]answer // recent answers, oldest overwritten
	ringN uint64          // answers recorded so far

	slowdowns int64

	// now and sleep are the clock of wait; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

type answer struct {
	at      time.Time
	limited bool // 429
}

func newGovernor(ceiling, floor float64) *governor {
	g := &governor{ceiling: ceiling, floor: floor, now: time.Now, sleep: sleepCtx}
	if ceiling > 0 {
		g.limited, g.high, g.pace = true, ceiling, ceiling
	}
	return g
}

// wait blocks until the caller may send a request, and returns the epoch
// its slot belongs to (to be passed to observe).
func (g *governor) wait(ctx context.Context) (uint64, error) {
	for {
		now := g.now()
		at, epoch, ok := g.acquire(now)
		if ok {
			return epoch, nil
		}
		if err := g.sleep(ctx, at.Sub(now)); err != nil {
			return 0, err
		}
	}
}

// acquire takes a send slot at now if one is free (ok); otherwise at is when
// the next one will be, at the current pace. Slots are not booked ahead, so
// a change of pace applies to the next slot, whoever waits for it.
func (g *governor) acquire(now time.Time) (at time.Time, epoch uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.limited {
		return now, g.epoch, true
	}
	rate := g.rate(now)
	g.pace = rate
	interval := time.Duration(float64(time.Second) / rate)
	next := g.last.Add(interval)
	if g.hold.After(next) {
		next = g.hold
	}
	if now.Before(next) {
		g.queued = now
		return next, g.epoch, false
	}
	g.last = now
	if now.Sub(next) < 2*interval {
		// Keep the cadence when the request came (or its waiter woke) a
		// little late: a slot lost to a busy scheduler is made up at once.
		g.last = next
	}
	return now, g.epoch, true
}

// rate is the pace at now. After a cut at cutAt from the rate high it climbs
// from govBeta×high back to high in govProbe, concave then convex (the
// cubic of TCP CUBIC, scaled to high); after the first 429 of a client that
// started unlimited it rises by govStartStep per admitted answer instead, as
// the guess of high is crude. It never exceeds the ceiling nor, while it holds
// no request back, govHeadroom × the rate sent recently. Callers hold mu.
func (g *governor) rate(now time.Time) float64 {
	t := now.Sub(g.cutAt).Seconds()
	var r float64
	switch {
	case g.cutAt.IsZero():
		r = g.high
	case g.start:
		r = g.startAt
	default:
		k := max(govProbe.Seconds(), govProbeRequests/g.high)
		c := (1 - govBeta) / (k * k * k)
		d := t - k
		r = g.high * (1 + c*d*d*d)
	}
	if now.Sub(g.queued) > govWindow {
		// The pace has not held anyone back lately: climb no further than
		// govHeadroom × the rate in use.
		if used := govHeadroom * float64(g.sentSince(now.Add(-govWindow))) / govWindow.Seconds(); used > g.high && r > used {
			r = used
		}
	}
	if g.ceiling > 0 && r > g.ceiling {
		r = g.ceiling
	}
	return max(r, g.floor)
}

// observe records an answer received at now to a request sent in epoch;
// limited means it was a 429. A 429 to a request sent at the current pace
// (or while unlimited) slows the governor down; one to a request sent before
// the last slow-down is already accounted for.
func (g *governor) observe(now time.Time, epoch uint64, limited bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ring[g.ringN%govRing] = answer{at: now, limited: limited}
	g.ringN++
	if !limited {
		if g.start && epoch == g.epoch {
			g.startAt += govStartStep
			if g.ceiling > 0 {
				g.startAt = min(g.startAt, g.ceiling)
			}
		}
		return
	}
	if g.limited && epoch != g.epoch {
		return
	}
	// The rate found too high.
	var high float64
	if !g.limited {
		// Started unlimited: the first guess is what was sent in the last
		// window (the server's burst may inflate or the short history deflate
		// it); the start climb corrects a low guess quickly, further cuts a
		// high one.
		high = float64(g.sentSince(now.Add(-govWindow))) / govWindow.Seconds()
		g.limited, g.start = true, true
	} else {
		high = g.rate(now)
		// What the server admitted since the last cut (it refused a request
		// then and now) measures its limit, if the pace was above that all
		// along: then the cut was not deep enough, and is repeated deeper
		// (down to half).
		since := now.Add(-govWindow)
		if g.cutAt.After(since) {
			since = g.cutAt
		}
		if d := now.Sub(since); d > 0 {
			if est := float64(g.admittedSince(since)) / d.Seconds(); est < g.cutPace && est < high {
				high = max(est, high/2)
			}
		}
		g.start = false
	}
	g.high = max(high, g.floor)
	g.cutAt = now
	g.epoch++
	g.slowdowns++
	pace := max(govBeta*g.high, g.floor)
	if g.ceiling > 0 {
		pace = min(pace, g.ceiling)
	}
	g.pace, g.startAt, g.cutPace = pace, pace, pace
	// Hold every request off for two intervals at the new pace, at most govMaxHold.
	g.hold = now.Add(min(time.Duration(2*float64(time.Second)/pace), govMaxHold))
}

// admittedSince counts the non-429 answers recorded after t. Callers hold mu.
func (g *governor) admittedSince(t time.Time) int {
	return g.count(t, true)
}

// sentSince counts the answers recorded after t. Callers hold mu.
func (g *governor) sentSince(t time.Time) int {
	return g.count(t, false)
}

func (g *governor) count(t time.Time, onlyAdmitted bool) int {
	n := 0
	for i := uint64(0); i < min(g.ringN, govRing); i++ {
		a := &g.ring[(g.ringN-1-i)%govRing]
		if !a.at.After(t) {
			break
		}
		if !onlyAdmitted || !a.limited {
			n++
		}
	}
	return n
}

// stats returns the current pace (0: unlimited) and the slow-downs so far.
func (g *governor) stats() (pace float64, slowdowns int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.limited {
		return 0, g.slowdowns
	}
	return g.pace, g.slowdowns
}
