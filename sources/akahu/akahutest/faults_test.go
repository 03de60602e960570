package akahutest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFaultKinds(t *testing.T) {
	s := NewServer(Options{Seed: 6, Users: 1, PageSize: 50})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	path := "/accounts/" + acc + "/transactions"
	q := url.Values{"start": {"2025-01-01"}, "end": {"2026-01-01"}}
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, r reply, elapsed time.Duration)
	}{
		{"rate limit with Retry-After", Fault{Kind: RateLimit, RetryAfter: 1500 * time.Millisecond}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
				t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
			assertErrorBody(t, r)
		}},
		{"rate limit without Retry-After", Fault{Kind: RateLimit}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "" {
				t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
		}},
		{"server error 503", Fault{Kind: ServerError, Status: 503}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != 503 {
				t.Fatalf("status %d", r.status)
			}
			assertErrorBody(t, r)
		}},
		{"server error default 500", Fault{Kind: ServerError}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != 500 {
				t.Fatalf("status %d", r.status)
			}
		}},
		{"truncate", Fault{Kind: Truncate}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != 200 || !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Fatalf("status %d err %v", r.status, r.err)
			}
			if json.Valid(r.body) || len(r.body) == 0 {
				t.Fatalf("truncated body of %d bytes is valid JSON", len(r.body))
			}
		}},
		{"malformed", Fault{Kind: Malformed}, func(t *testing.T, r reply, _ time.Duration) {
			if r.status != 200 || r.err != nil || json.Valid(r.body) {
				t.Fatalf("status %d err %v valid %v", r.status, r.err, json.Valid(r.body))
			}
		}},
		{"reset", Fault{Kind: Reset}, func(t *testing.T, r reply, _ time.Duration) {
			if r.err == nil || r.status != 0 {
				t.Fatalf("status %d err %v: want a transport error", r.status, r.err)
			}
		}},
		{"slow", Fault{Kind: Slow, Delay: 150 * time.Millisecond}, func(t *testing.T, r reply, d time.Duration) {
			if r.status != 200 || d < 150*time.Millisecond {
				t.Fatalf("status %d after %v", r.status, d)
			}
			decodePage(t, r)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.ResetStats()
			ft := tc.fault
			ft.PathContains = "/transactions"
			s.InjectFault(ft)
			// a non-matching request does not consume it
			if r := get(t, s, u.Token, "/me", nil); r.status != 200 {
				t.Fatalf("/me hit by fault: %d", r.status)
			}
			begin := time.Now()
			r := get(t, s, u.Token, path, q)
			tc.check(t, r, time.Since(begin))
			// consumed: the next request is clean
			decodePage(t, get(t, s, u.Token, path, q))
			if st := s.Stats(); st.Faults[ft.Kind] != 1 || st.FaultsInjected() != 1 || st.Requests != 3 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestFaultCountAndStats(t *testing.T) {
	s := NewServer(Options{Seed: 6, Users: 1})
	defer s.Close()
	u := s.Users()[0]
	s.InjectFault(Fault{Kind: ServerError, Status: 502, Count: 3, PathContains: "/accounts"})
	var got []int
	for i := 0; i < 5; i++ {
		got = append(got, get(t, s, u.Token, "/accounts", nil).status)
	}
	if want := []int{502, 502, 502, 200, 200}; !equalInts(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	st := s.Stats()
	if st.ByStatus[502] != 3 || st.ByStatus[200] != 2 || st.ByKind["accounts"] != 5 || st.Faults[ServerError] != 3 {
		t.Fatalf("stats %+v", st)
	}
	s.InjectFault(Fault{Kind: RateLimit, Count: 10})
	s.ClearFaults()
	if r := get(t, s, u.Token, "/me", nil); r.status != 200 {
		t.Fatalf("after ClearFaults: %d", r.status)
	}
}

func equalInts(a, b []int) bool {
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

func TestRandomFaultsDeterministic(t *testing.T) {
	run := func(seed int64) []string {
		s := NewServer(Options{Seed: 1, Users: 1})
		defer s.Close()
		s.SetRandomFaults(0.5, seed)
		u := s.Users()[0]
		var out []string
		for i := 0; i < 40; i++ {
			r := get(t, s, u.Token, "/accounts", nil)
			switch {
			case r.err != nil && r.status == 0:
				out = append(out, "reset")
			case r.err != nil:
				out = append(out, "truncated")
			case r.status == 200 && !json.Valid(r.body):
				out = append(out, "malformed")
			default:
				out = append(out, http.StatusText(r.status))
			}
		}
		st := s.Stats()
		if st.FaultsInjected() < 10 || st.FaultsInjected() > 30 {
			t.Errorf("rate 0.5 injected %d faults in 40 requests", st.FaultsInjected())
		}
		if len(st.Faults) < 4 {
			t.Errorf("only kinds %v", st.Faults)
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatalf("different seeds, same faults: %v", a)
	}
}

func TestLatency(t *testing.T) {
	s := NewServer(Options{Seed: 1, Users: 1, PageLatency: 30 * time.Millisecond})
	defer s.Close()
	u := s.Users()[0]
	begin := time.Now()
	get(t, s, u.Token, "/me", nil)
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Fatalf("PageLatency not applied: %v", d)
	}
	s.SetLatency(0)
	begin = time.Now()
	for i := 0; i < 3; i++ {
		get(t, s, u.Token, "/me", nil)
	}
	if d := time.Since(begin); d >= 90*time.Millisecond {
		t.Fatalf("SetLatency(0) not applied: %v", d)
	}
}
