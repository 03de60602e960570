package akahu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const (
	testApp  Token = "app_token_SECRETapp0000000000000"
	testUser Token = "user_token_SECRETusr000000000000"
)

// recorder wraps a handler and records every request it saw.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	h    http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	r.h.ServeHTTP(w, req)
}

func (r *recorder) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// testClient is a Client against an httptest server running h, with fast,
// recorded backoff: sleeps are not slept but logged in waits, and advance a
// fake clock; the rate governor has a fake clock of its own.
type testClient struct {
	*Client
	srv   *httptest.Server
	rec   *recorder
	mu    sync.Mutex
	waits []time.Duration
	clock time.Time // advanced by the recorded waits
	pacer time.Time // the governor's clock, advanced by its pacing waits
}

func (tc *testClient) recordedWaits() []time.Duration {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]time.Duration(nil), tc.waits...)
}

func (tc *testClient) pacerNow() time.Time {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.pacer
}

func newTestClient(t testing.TB, h http.Handler, tweak ...func(*Config)) *testClient {
	t.Helper()
	rec := &recorder{h: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := Config{
		BaseURL:     srv.URL + "/v1",
		AppToken:    testApp,
		HTTPClient:  srv.Client(),
		MaxRetries:  3,
		BaseBackoff: time.Millisecond,
		MaxBackoff:  4 * time.Millisecond,
		// 429s count against MaxRetries unless a test gives them a time budget.
		MaxRateLimitWait: -1,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tc := &testClient{Client: c, srv: srv, rec: rec, clock: time.Unix(1_000_000, 0)}
	c.jitter = func() float64 { return 0.5 } // ×1.0
	c.sleep = func(ctx context.Context, d time.Duration) error {
		tc.mu.Lock()
		tc.waits = append(tc.waits, d)
		tc.clock = tc.clock.Add(d)
		tc.mu.Unlock()
		return ctx.Err()
	}
	c.now = func() time.Time {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		return tc.clock
	}
	// The governor runs on a fake clock of its own, advanced by its pacing
	// waits, so they neither take real time nor count as retry waits.
	tc.pacer = tc.clock
	c.gov.now = tc.pacerNow
	c.gov.sleep = func(ctx context.Context, d time.Duration) error {
		tc.mu.Lock()
		tc.pacer = tc.pacer.Add(d)
		tc.mu.Unlock()
		return ctx.Err()
	}
	return tc
}

// script serves the i-th step for the i-th request, repeating the last.
func script(steps ...http.HandlerFunc) http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := min(n, len(steps)-1)
		n++
		mu.Unlock()
		steps[i](w, r)
	})
}

func status(code int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func okJSON(v any) http.HandlerFunc {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return status(http.StatusOK, string(b))
}

const meBody = `{"success":true,"item":{"_id":"user_1","email":"a@example.com","access_granted_at":"2024-01-01T00:00:00.000Z"}}`

// truncated declares a longer body than it sends, so the client sees an
// unexpected EOF.
func truncated(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body[:len(body)/2]))
	}
}

// hangup closes the connection without any response.
func hangup(w http.ResponseWriter, _ *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
