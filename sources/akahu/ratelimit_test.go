package akahu_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// fleetLoad is what TestRateLimitFleet measured.
type fleetLoad struct {
	requests, refused, admitted int64
	failed                      []error
	elapsed                     time.Duration
	stats                       akahu.Stats
}

// fleet walks every account of users fake users at once (each user's accounts
// concurrently, as a pipeline does) through one client with the default
// retry settings and the given budget, against a fake limited to rate
// requests per second with the given burst and answering after latency. It
// measures the first d of the load, while the walks still want more than the
// limit (so the figures do not depend on how fast the machine finishes the
// last walks), then cancels them.
func fleet(t *testing.T, users int, budget, rate float64, burst int, latency, d time.Duration) fleetLoad {
	t.Helper()
	from := time.Date(2026, 9, 1, 0, 0, 0, 0, nz)
	srv := akahutest.NewServer(akahutest.Options{Seed: 40, Users: users, AccountsPerUser: 2, From: from,
		To: time.Date(2026, 10, 31, 0, 0, 0, 0, nz), TxPerAccountPerMonth: 60, PageSize: 10, EmptyPageEvery: -1})
	t.Cleanup(srv.Close)
	c, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()),
		HTTPClient: srv.Client(), RequestsPerSecond: budget})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(latency)
	srv.SetRateLimit(rate, burst)
	w := akahu.LocalDates(from, time.Date(2026, 10, 31, 0, 0, 0, 0, nz), nz)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		failed []error
		wg     sync.WaitGroup
	)
	fail := func(err error) {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // the measurement is over
		}
		mu.Lock()
		failed = append(failed, err)
		mu.Unlock()
	}
	start := time.Now()
	for _, u := range srv.Users() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := akahu.Token(u.Token)
			if _, err := c.Me(ctx, tok); err != nil {
				fail(err)
				return
			}
			accs, err := c.Accounts(ctx, tok)
			if err != nil {
				fail(err)
				return
			}
			var uw sync.WaitGroup
			for _, a := range accs {
				uw.Add(1)
				go func() {
					defer uw.Done()
					if err := c.Transactions(ctx, tok, a.ID, w, func(akahu.Page) error { return nil }); err != nil {
						fail(err)
					}
				}()
			}
			uw.Wait()
		}()
	}
	time.Sleep(d)
	// The client counts a 429 after the server answered it: its stats first, so
	// that they lag the server's by at most the requests in flight, never lead.
	cs := c.Stats()
	st := srv.Stats()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return fleetLoad{requests: st.Requests, refused: st.RateRefused, admitted: st.RateAdmitted,
		failed: failed, elapsed: elapsed, stats: cs}
}

// TestRateLimitFleet: forty users' walks at once through one client, told no
// budget, against an API limited to 40 requests/s that
// does not say so (429 without Retry-After), for 12 seconds: no call fails, at
// most 5% of the requests are answered 429, and the useful (admitted) rate is
// near the limit. That the algorithm reaches at least 95% of the limit is
// asserted on a fake clock (TestGovernorSimulation: this case, a budget above
// the limit, other bursts, latencies and limits); here, in real time over real
// HTTP, a loaded machine can starve the client of CPU for a few percent of the
// run (92% was seen at load 8 on 2 cores, 98-100% idle), so the floor is 85%:
// what it catches is the wiring (429s not slowing the client, or slowing it for
// good), not the last percent.
func TestRateLimitFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("a 12-second load, skipped in -short mode")
	}
	const limit, burst = 40, 10 // a quarter of a second's worth of burst
	l := fleet(t, 40, 0, limit, burst, 20*time.Millisecond, 12*time.Second)
	useful := float64(l.admitted) / l.elapsed.Seconds()
	t.Logf("%d requests in %v, %d answered 429 (%.1f%%), useful rate %.1f/s (%.0f%% of the limit %d/s), %d calls failed; client: pace %.1f/s, %d slow-downs, %d retries",
		l.requests, l.elapsed.Round(time.Millisecond), l.refused, 100*float64(l.refused)/float64(l.requests),
		useful, 100*useful/limit, limit, len(l.failed), l.stats.RateLimit, l.stats.Slowdowns, l.stats.Retries)
	for i, err := range l.failed {
		if i == 3 {
			t.Errorf("... %d failed calls in all", len(l.failed))
			break
		}
		t.Errorf("call failed: %v (rate limited: %v)", err, errors.Is(err, akahu.ErrRateLimited))
	}
	if l.refused*20 > l.requests {
		t.Errorf("%d of %d requests answered 429, want at most 5%%", l.refused, l.requests)
	}
	if useful < 0.85*limit {
		t.Errorf("useful rate %.1f/s, want at least 85%% of %d/s (95%% on an idle machine)", useful, limit)
	}
	// Counted while the load runs: the answers in flight may not have reached the
	// client yet (up to MaxInFlight of them).
	if l.stats.RateLimited > l.refused || l.stats.RateLimited < l.refused-akahu.DefaultMaxInFlight || l.stats.Slowdowns == 0 || l.stats.RateLimit <= 0 {
		t.Errorf("client stats %+v: want the %d 429s counted (less at most the %d in flight), slow-downs and a pace", l.stats, l.refused, akahu.DefaultMaxInFlight)
	}
}
