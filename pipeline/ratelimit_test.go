package pipeline_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var fleetFull = flag.Bool("fleet.full", false, "TestRateLimitedFleetRun on 40 users × 4 accounts over two years (about 2,300 requests, a minute at the limit)")

// TestRateLimitedFleetRun: a run of 40 users against an API limited to 40
// requests/s that does not say so, 20ms per answer, with the client's default
// settings and no budget: no account fails, at most 5% of the requests are
// answered 429, and the manifest reports the achieved rate and the client's
// slow-downs.
func TestRateLimitedFleetRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a load of several seconds, skipped in -short mode")
	}
	const limit, burst = 40, 10
	opts := akahutest.Options{Seed: 40, Users: 40, AccountsPerUser: 2, TxPerAccountPerMonth: 40,
		From: date(2026, 1, 1), To: date(2026, 2, 28), PageSize: 25, PendingPerAccount: 1}
	if *fleetFull {
		opts = akahutest.Options{Seed: 40, Users: 40}
	}
	h := newHarness(t, newLocal(t), opts)
	client, err := akahu.New(akahu.Config{BaseURL: h.srv.URL, AppToken: akahu.Token(h.srv.AppToken()), HTTPClient: h.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	h.client = client
	h.srv.SetLatency(20 * time.Millisecond)
	h.srv.SetRateLimit(limit, burst)
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.Workers = pipeline.DefaultWorkers
	m, err := pipeline.Run(context.Background(), cfg)
	if m == nil {
		t.Fatalf("nothing committed: %v", err)
	}
	st := h.srv.Stats()
	useful := float64(st.RateAdmitted) / m.FinishedAt.Sub(m.StartedAt).Seconds()
	t.Logf("%d requests, %d answered 429 (%.1f%%), %.1f requests/s achieved, useful %.1f/s (%.0f%% of the limit %d/s), %d failures; client: %d slow-downs, pace %.1f/s at the end",
		m.API.Requests, m.API.RateLimited, 100*float64(m.API.RateLimited)/float64(m.API.Requests), m.API.AchievedRPS,
		useful, 100*useful/limit, limit, len(m.Failures), m.API.RateLimitSlowdowns, m.API.RateLimitRPS)
	if err != nil || len(m.Failures) > 0 {
		t.Fatalf("run: %v; failures %q", err, m.Failures)
	}
	if m.API.RateLimited*20 > m.API.Requests {
		t.Errorf("%d of %d requests answered 429, want at most 5%%", m.API.RateLimited, m.API.Requests)
	}
	if m.API.Requests != st.Requests || m.API.RateLimited != st.RateRefused {
		t.Errorf("manifest counts %d requests, %d 429s; the fake saw %d and refused %d", m.API.Requests, m.API.RateLimited, st.Requests, st.RateRefused)
	}
	if m.API.RateLimitSlowdowns == 0 || m.API.RateLimitRPS <= 0 || m.API.RPSBudget != 0 {
		t.Errorf("manifest API figures %+v: want slow-downs, a pace and no budget", m.API)
	}
	if want := float64(m.API.Requests) / m.FinishedAt.Sub(m.StartedAt).Seconds(); m.API.AchievedRPS < want*0.99 || m.API.AchievedRPS > want*1.01 {
		t.Errorf("achieved_rps %.2f, want requests over the run's duration %.2f", m.API.AchievedRPS, want)
	}
}
