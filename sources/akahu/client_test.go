package akahu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetryClassification(t *testing.T) {
	t.Parallel()
	// A Retry-After date 45s from when the answer is sent (subtests may wait
	// long for their turn behind other parallel tests).
	retryAt45s := func(w http.ResponseWriter, r *http.Request) {
		status(429, ``, "Retry-After", time.Now().Add(45*time.Second).UTC().Format(http.TimeFormat))(w, r)
	}
	tests := []struct {
		name        string
		steps       []http.HandlerFunc
		wantErr     error // nil: success
		wantStatus  int
		wantReqs    int
		wantRetries int64
		want429     int64
		want5xx     int64
		wantWaits   []time.Duration // nil: not checked
		wantWaitMin time.Duration   // checked when > 0 (HTTP-date)
		wantText    string          // substring of the error text
		rlWait      time.Duration   // Config.MaxRateLimitWait; 0: 429s count against MaxRetries (3)
	}{
		{name: "429s beyond MaxRetries within MaxRateLimitWait", rlWait: time.Second,
			steps:    []http.HandlerFunc{status(429, ``), status(429, ``), status(429, ``), status(429, ``), status(429, ``), status(200, meBody)},
			wantReqs: 6, wantRetries: 5, want429: 5, wantWaits: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}},
		{name: "429s until MaxRateLimitWait has passed", rlWait: 20 * time.Millisecond, steps: []http.HandlerFunc{status(429, ``)},
			wantErr: ErrRateLimited, wantStatus: 429, wantReqs: 7, wantRetries: 6, want429: 7,
			wantWaits: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond},
			wantText:  "429 Too Many Requests after 6 retries"},
		{name: "429s do not use up the budget of 5xx", rlWait: time.Second,
			steps:    []http.HandlerFunc{status(503, ``), status(429, ``), status(503, ``), status(429, ``), status(503, ``), status(200, meBody)},
			wantReqs: 6, wantRetries: 5, want429: 2, want5xx: 3,
			wantWaits: []time.Duration{time.Millisecond, time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}},
		{name: "5xx budget still spent with 429s in between", rlWait: time.Second,
			steps:   []http.HandlerFunc{status(503, ``), status(429, ``), status(503, ``), status(503, ``), status(503, ``), status(200, meBody)},
			wantErr: ErrServer, wantStatus: 503, wantReqs: 5, wantRetries: 4, want429: 1, want5xx: 4},
		{name: "429 without Retry-After then ok", steps: []http.HandlerFunc{status(429, `{"success":false,"message":"Too Many Requests"}`), status(200, meBody)},
			wantReqs: 2, wantRetries: 1, want429: 1, wantWaits: []time.Duration{time.Millisecond}},
		{name: "429 backoff doubles and caps", steps: []http.HandlerFunc{status(429, ``), status(429, ``), status(429, ``), status(429, ``)},
			wantErr: ErrRateLimited, wantStatus: 429, wantReqs: 4, wantRetries: 3, want429: 4,
			wantWaits: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
			wantText:  "akahu: GET /me: 429 Too Many Requests after 3 retries"},
		{name: "429 Retry-After seconds", steps: []http.HandlerFunc{status(429, ``, "Retry-After", "7"), status(200, meBody)},
			wantReqs: 2, wantRetries: 1, want429: 1, wantWaits: []time.Duration{7 * time.Second}},
		{name: "429 Retry-After HTTP-date", steps: []http.HandlerFunc{retryAt45s, status(200, meBody)},
			wantReqs: 2, wantRetries: 1, want429: 1, wantWaitMin: 35 * time.Second},
		{name: "429 Retry-After capped by MaxRetryAfter", steps: []http.HandlerFunc{status(429, ``, "Retry-After", "86400"), status(200, meBody)},
			wantReqs: 2, wantRetries: 1, want429: 1, wantWaits: []time.Duration{DefaultMaxRetryAfter}},
		{name: "500 then ok", steps: []http.HandlerFunc{status(500, ``), status(200, meBody)}, wantReqs: 2, wantRetries: 1, want5xx: 1},
		{name: "503 Retry-After honoured", steps: []http.HandlerFunc{status(503, ``, "Retry-After", "2"), status(200, meBody)},
			wantReqs: 2, wantRetries: 1, want5xx: 1, wantWaits: []time.Duration{2 * time.Second}},
		{name: "502 then ok", steps: []http.HandlerFunc{status(502, `<html>bad gateway</html>`), status(200, meBody)}, wantReqs: 2, wantRetries: 1, want5xx: 1},
		{name: "503 forever", steps: []http.HandlerFunc{status(503, `{"success":false,"message":"down for maintenance"}`)},
			wantErr: ErrServer, wantStatus: 503, wantReqs: 4, wantRetries: 3, want5xx: 4,
			wantText: "akahu: GET /me: 503 Service Unavailable after 3 retries: down for maintenance"},
		{name: "400 not retried", steps: []http.HandlerFunc{status(400, `{"success":false,"message":"Invalid cursor"}`), status(200, meBody)},
			wantErr: ErrBadRequest, wantStatus: 400, wantReqs: 1, wantText: "400 Bad Request: Invalid cursor"},
		{name: "401 access revoked", steps: []http.HandlerFunc{status(401, `{"success":false,"message":"Unauthorized"}`), status(200, meBody)},
			wantErr: ErrAccessRevoked, wantStatus: 401, wantReqs: 1, wantText: "akahu: GET /me: 401 Unauthorized: Unauthorized"},
		{name: "403 forbidden, not a revocation, not retried", steps: []http.HandlerFunc{status(403, `{"success":false,"message":"Forbidden"}`), status(200, meBody)},
			wantErr: ErrForbidden, wantStatus: 403, wantReqs: 1, wantText: "akahu: GET /me: 403 Forbidden: Forbidden"},
		{name: "404 not found", steps: []http.HandlerFunc{status(404, `{"success":false,"message":"Not Found"}`), status(200, meBody)},
			wantErr: ErrNotFound, wantStatus: 404, wantReqs: 1},
		{name: "418 other 4xx not retried", steps: []http.HandlerFunc{status(418, ``), status(200, meBody)},
			wantErr: ErrBadRequest, wantStatus: 418, wantReqs: 1},
		{name: "redirect not followed", steps: []http.HandlerFunc{status(302, ``, "Location", "https://evil.example/steal"), status(200, meBody)},
			wantErr: ErrBadRequest, wantStatus: 302, wantReqs: 1},
		{name: "truncated body then ok", steps: []http.HandlerFunc{truncated(meBody), status(200, meBody)}, wantReqs: 2, wantRetries: 1},
		{name: "truncated body forever", steps: []http.HandlerFunc{truncated(meBody)},
			wantErr: ErrMalformed, wantStatus: 200, wantReqs: 4, wantRetries: 3, wantText: "unexpected EOF"},
		{name: "malformed JSON then ok", steps: []http.HandlerFunc{status(200, `{"success":true,"item":{"_id":`), status(200, meBody)}, wantReqs: 2, wantRetries: 1},
		{name: "valid JSON cut short with correct length", steps: []http.HandlerFunc{status(200, meBody[:40])},
			wantErr: ErrMalformed, wantStatus: 200, wantReqs: 4, wantRetries: 3},
		{name: "item not an object", steps: []http.HandlerFunc{status(200, `{"success":true,"item":[1,2]}`)},
			wantErr: ErrMalformed, wantStatus: 200, wantReqs: 4, wantRetries: 3, wantText: "item: an array, not a JSON object"},
		{name: "missing item", steps: []http.HandlerFunc{status(200, `{"success":true}`)},
			wantErr: ErrMalformed, wantStatus: 200, wantReqs: 4, wantRetries: 3},
		{name: "HTML instead of JSON", steps: []http.HandlerFunc{status(200, `<html></html>`), status(200, meBody)}, wantReqs: 2, wantRetries: 1},
		{name: "success false with 200", steps: []http.HandlerFunc{status(200, `{"success":false,"message":"Token has expired"}`), status(200, meBody)},
			wantErr: ErrBadRequest, wantStatus: 200, wantReqs: 1, wantText: "200 OK: Token has expired"},
		{name: "connection dropped then ok", steps: []http.HandlerFunc{hangup, status(200, meBody)}, wantReqs: 2, wantRetries: 1},
		{name: "connection dropped forever", steps: []http.HandlerFunc{hangup},
			wantErr: ErrTransport, wantReqs: 4, wantRetries: 3, wantText: "akahu: GET /me: transport failure after 3 retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestClient(t, script(tt.steps...), func(c *Config) {
				if tt.rlWait > 0 {
					c.MaxRateLimitWait = tt.rlWait
				}
			})
			me, err := tc.Me(context.Background(), testUser)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Me: %v", err)
				}
				if me.ID != "user_1" || me.Email != "a@example.com" {
					t.Errorf("Me = %+v", me)
				}
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Me error = %v, want %v", err, tt.wantErr)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T is not *Error", err)
				}
				if e.Status != tt.wantStatus {
					t.Errorf("Status = %d, want %d", e.Status, tt.wantStatus)
				}
				if e.Endpoint != "GET /me" {
					t.Errorf("Endpoint = %q", e.Endpoint)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("error text %q does not contain %q", err, tt.wantText)
				}
			}
			if got := len(tc.rec.requests()); got != tt.wantReqs {
				t.Errorf("requests served = %d, want %d", got, tt.wantReqs)
			}
			st := tc.Stats()
			if st.Requests != int64(tt.wantReqs) || st.Retries != tt.wantRetries || st.RateLimited != tt.want429 || st.ServerErrors != tt.want5xx {
				t.Errorf("Stats = %+v, want requests %d retries %d 429s %d 5xx %d", st, tt.wantReqs, tt.wantRetries, tt.want429, tt.want5xx)
			}
			waits := tc.recordedWaits()
			if tt.wantWaits != nil && !equalDurations(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
			if tt.wantWaitMin > 0 && (len(waits) != 1 || waits[0] < tt.wantWaitMin || waits[0] > 46*time.Second) {
				t.Errorf("waits = %v, want one in [%v, 46s]", waits, tt.wantWaitMin)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBackoffJitterBounds(t *testing.T) {
	t.Parallel()
	c, err := New(Config{AppToken: testApp, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempt  int
		jitter   float64
		want     time.Duration
		describe string
	}{
		{0, 0, 75 * time.Millisecond, "low jitter ×0.75"},
		{0, 0.5, 100 * time.Millisecond, "mid jitter ×1"},
		{0, 0.999999, 124999 * time.Microsecond, "high jitter just under ×1.25"},
		{1, 0.5, 200 * time.Millisecond, "doubles"},
		{4, 0.5, 1600 * time.Millisecond, "doubles again"},
		{5, 0.5, 3 * time.Second, "capped"},
		{5, 0.999999, 3 * time.Second, "cap holds after jitter"},
		{200, 0.5, 3 * time.Second, "no overflow"},
	}
	for _, tt := range tests {
		c.jitter = func() float64 { return tt.jitter }
		got := c.backoff(tt.attempt)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: backoff(%d) jitter %v = %v, want %v", tt.describe, tt.attempt, tt.jitter, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 12 ", 12 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Fri, 01 Mar 2024 12:00:30 GMT", 30 * time.Second, true},
		{"Fri, 01 Mar 2024 11:00:00 GMT", 0, true}, // in the past: retry now
		{"999999999999", 24 * time.Hour, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestPerAttemptTimeoutRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		status(200, meBody)(w, r)
	})
	tc := newTestClient(t, h, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	if _, err := tc.Me(context.Background(), testUser); err != nil {
		t.Fatalf("Me: %v", err)
	}
	if st := tc.Stats(); st.Requests != 2 || st.Retries != 1 {
		t.Errorf("Stats = %+v, want 2 requests 1 retry", st)
	}
}

func TestCancelStopsBackoff(t *testing.T) {
	t.Parallel()
	first := make(chan struct{})
	var once atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if once.CompareAndSwap(false, true) {
			close(first)
		}
		status(503, ``)(w, r)
	})
	tc := newTestClient(t, h, func(c *Config) {
		c.BaseBackoff = 30 * time.Second
		c.MaxBackoff = 30 * time.Second
	})
	tc.sleep = sleepCtx // really sleep, so only cancellation can end it
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-first
		time.Sleep(20 * time.Millisecond) // let the client enter its backoff
		cancel()
	}()
	start := time.Now()
	_, err := tc.Me(ctx, testUser)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Me took %v after cancel; backoff ignored ctx", el)
	}
	if n := len(tc.rec.requests()); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Endpoint != "GET /me" {
		t.Errorf("err = %#v, want *Error with last status 503", err)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	const limit, callers = 3, 12
	var cur, peak atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		status(200, meBody)(w, r)
	})
	tc := newTestClient(t, h, func(c *Config) { c.MaxInFlight = limit })
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := tc.Me(context.Background(), testUser)
			errs <- err
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrent requests = %d, want exactly %d", p, limit)
	}
}

func TestRequestsPerSecond(t *testing.T) {
	t.Parallel()
	const rps, n = 100, 11
	tc := newTestClient(t, status(200, meBody), func(c *Config) { c.RequestsPerSecond = rps })
	start := tc.pacerNow()
	for range n {
		if _, err := tc.Me(context.Background(), testUser); err != nil {
			t.Fatal(err)
		}
	}
	// With a burst of one, n requests take (n-1)/rps seconds of the fake clock.
	if el, want := tc.pacerNow().Sub(start), time.Duration(n-1)*time.Second/rps; el != want {
		t.Errorf("%d requests at %d rps took %v, want %v", n, rps, el, want)
	}
	if st := tc.Stats(); st.RateBudget != rps || st.RateLimit != rps || st.Slowdowns != 0 {
		t.Errorf("Stats = %+v, want budget and pace %d, no slow-downs", st, rps)
	}
}

func TestMaxBodyBytes(t *testing.T) {
	t.Parallel()
	big := `{"success":true,"item":{"_id":"user_1","pad":"` + strings.Repeat("x", 4096) + `"}}`
	tc := newTestClient(t, status(200, big), func(c *Config) { c.MaxBodyBytes = 1024 })
	_, err := tc.Me(context.Background(), testUser)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "MaxBodyBytes") {
		t.Fatalf("err = %v, want ErrMalformed naming MaxBodyBytes", err)
	}
	if n := len(tc.rec.requests()); n != 1 {
		t.Errorf("an oversized body was retried: %d requests", n)
	}
}

func TestHeadersOnEveryRequest(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", status(200, meBody))
	mux.HandleFunc("GET /v1/accounts", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") == "" {
			status(200, `{"success":true,"items":[{"_id":"acc_1","name":"Everyday","status":"ACTIVE","type":"CHECKING","attributes":["TRANSACTIONS"],"connection":{"_id":"conn_1","name":"Kiwibank"},"_authorisation":"auth_1","balance":{"currency":"NZD","current":1.5}}],"cursor":{"next":"acc-page-2"}}`)(w, r)
			return
		}
		status(200, `{"success":true,"items":[{"_id":"acc_2","name":"Card","status":"INACTIVE","type":"CREDITCARD","attributes":[],"connection":"conn_old"}],"cursor":{"next":null}}`)(w, r)
	})
	mux.HandleFunc("GET /v1/accounts/acc_1/transactions", pagedHandler(t, [][]string{{"t1", "t2"}, {}, {"t3"}}))
	mux.HandleFunc("GET /v1/accounts/acc_1/transactions/pending", status(200, `{"success":true,"items":[{"_account":"acc_1","amount":"-11.50"}]}`))
	tc := newTestClient(t, mux)
	ctx := context.Background()
	if _, err := tc.Me(ctx, testUser); err != nil {
		t.Fatal(err)
	}
	accts, err := tc.Accounts(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2 || accts[0].ID != "acc_1" || accts[1].ID != "acc_2" {
		t.Fatalf("accounts = %+v", accts)
	}
	a := accts[0]
	if a.Name != "Everyday" || a.Status != "ACTIVE" || a.Type != "CHECKING" || a.Currency != "NZD" ||
		a.ConnectionID != "conn_1" || a.ConnectionName != "Kiwibank" || a.AuthorisationID != "auth_1" || !a.HasTransactions() {
		t.Errorf("account 0 = %+v", a)
	}
	if accts[1].HasTransactions() || accts[1].ConnectionID != "conn_old" || accts[1].Status != "INACTIVE" {
		t.Errorf("account 1 = %+v", accts[1])
	}
	if !strings.Contains(string(a.Raw), `"balance":{"currency":"NZD","current":1.5}`) {
		t.Errorf("Raw lost the served object: %s", a.Raw)
	}
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	if err := tc.Transactions(ctx, testUser, "acc_1", w, func(Page) error { return nil }); err != nil {
		t.Fatal(err)
	}
	pending, err := tc.Pending(ctx, testUser, "acc_1")
	if err != nil || len(pending) != 1 || string(pending[0]) != `{"_account":"acc_1","amount":"-11.50"}` {
		t.Fatalf("Pending = %s, %v", pending, err)
	}
	reqs := tc.rec.requests()
	if len(reqs) != 1+2+3+1 {
		t.Errorf("requests = %d, want 7", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "Bearer "+string(testUser) {
			t.Errorf("%s: Authorization = %q", r.URL, got)
		}
		if got := r.Header.Get("X-Akahu-Id"); got != string(testApp) {
			t.Errorf("%s: X-Akahu-Id = %q", r.URL, got)
		}
	}
}

func TestTransactionPathEscapedAndNotFound(t *testing.T) {
	t.Parallel()
	tc := newTestClient(t, status(404, `{"success":false,"message":"Transaction not found"}`))
	ctx := context.Background()
	id := "trans_a/b?c=d#e f%☕"
	_, err := tc.Transaction(ctx, testUser, id)
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Status != 404 || e.Retries != 0 ||
		e.Endpoint != "GET /transactions/"+id || e.AccountID != "" || e.Message != "Transaction not found" {
		t.Fatalf("err = %#v (%v), want ErrNotFound 404 naming the id", e, err)
	}
	reqs := tc.rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1 (a 404 is not retried)", len(reqs))
	}
	r := reqs[0]
	if got, want := r.URL.EscapedPath(), "/v1/transactions/trans_a%2Fb%3Fc=d%23e%20f%25%E2%98%95"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	if r.URL.RawQuery != "" || r.URL.Fragment != "" {
		t.Errorf("the id leaked into the query or fragment: %q %q", r.URL.RawQuery, r.URL.Fragment)
	}
	if r.Header.Get("Authorization") != "Bearer "+string(testUser) || r.Header.Get("X-Akahu-Id") != string(testApp) {
		t.Errorf("headers %v", r.Header)
	}
	if s := fmt.Sprintf("%v %+v", err, e); strings.Contains(s, string(testUser)) || strings.Contains(s, string(testApp)) {
		t.Errorf("error leaks a token: %s", s)
	}

	// 200 with "success": false, or without an "item", is not a transaction.
	tc = newTestClient(t, script(
		status(200, `{"success":true,"items":[]}`),
		status(200, `{"success":true,"item":{"_id":"trans_1","date":"2025-01-01T11:00:00.000Z"}}`),
	))
	raw, err := tc.Transaction(ctx, testUser, "trans_1")
	if err != nil || string(raw) != `{"_id":"trans_1","date":"2025-01-01T11:00:00.000Z"}` || cap(raw) != len(raw) {
		t.Fatalf("Transaction = %s (cap %d), %v", raw, cap(raw), err)
	}
	if n := len(tc.rec.requests()); n != 2 {
		t.Errorf("a body without item was not retried: %d requests", n)
	}
	tc = newTestClient(t, status(200, `{"success":false,"message":"nope"}`))
	if _, err := tc.Transaction(ctx, testUser, "trans_1"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("success:false: err = %v, want ErrBadRequest", err)
	}
	if _, err := tc.Transaction(ctx, "", "trans_1"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty user token: err = %v, want ErrBadRequest", err)
	}
}
