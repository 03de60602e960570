package akahutest

import (
	"net/http"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	b := tokenBucket{rate: 10, burst: 3, tokens: 3, last: t0}
	steps := []struct {
		ms   int
		want bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst
		{0, false}, {50, false}, // empty; half a token
		{100, true}, {100, false}, // one token per 100ms
		{1000, true}, {1000, true}, {1000, true}, {1000, false}, // refilled to burst, not beyond
	}
	for i, s := range steps {
		if got := b.take(at(s.ms)); got != s.want {
			t.Fatalf("step %d at %dms: admitted %v, want %v", i, s.ms, got, s.want)
		}
	}
	off := tokenBucket{}
	for range 100 {
		if !off.take(t0) {
			t.Fatal("a zero-rate bucket refused a request")
		}
	}
}

func TestSetRateLimit(t *testing.T) {
	s := NewServer(Options{Seed: 3, Users: 2})
	defer s.Close()
	users := s.Users()
	// A bucket of 3 refilled at one token per ~17 minutes: exactly 3 are admitted.
	s.SetRateLimit(0.001, 3)
	var statuses []int
	for i := range 6 {
		r := get(t, s, users[i%2].Token, "/me", nil) // shared by all users
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests {
			assertErrorBody(t, r)
			if ra := r.header.Get("Retry-After"); ra != "" {
				t.Errorf("429 carries Retry-After %q; the real API documents none", ra)
			}
		}
	}
	want := []int{200, 200, 200, 429, 429, 429}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", statuses, want)
		}
	}
	st := s.Stats()
	if st.RateAdmitted != 3 || st.RateRefused != 3 || st.ByStatus[429] != 3 || st.Requests != 6 {
		t.Errorf("stats: admitted %d refused %d, 429s %d, requests %d; want 3, 3, 3, 6", st.RateAdmitted, st.RateRefused, st.ByStatus[429], st.Requests)
	}
	// A refused request does not consume a scripted fault.
	s.InjectFault(Fault{Kind: ServerError, Status: 503})
	if r := get(t, s, users[0].Token, "/me", nil); r.status != 429 {
		t.Fatalf("status %d, want 429", r.status)
	}
	s.SetRateLimit(0, 0)
	if r := get(t, s, users[0].Token, "/me", nil); r.status != 503 {
		t.Fatalf("status %d after removing the limit, want the scripted 503", r.status)
	}
	if r := get(t, s, users[0].Token, "/me", nil); r.status != 200 {
		t.Fatalf("status %d after removing the limit, want 200", r.status)
	}
	if st := s.Stats(); st.RateAdmitted != 3 || st.RateRefused != 4 {
		t.Errorf("with no limit the counters moved: admitted %d refused %d", st.RateAdmitted, st.RateRefused)
	}
}
