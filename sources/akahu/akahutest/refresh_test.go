package akahutest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// refreshedTx returns refreshed.transactions of each of the user's accounts that has
// one, as GET /accounts serves it.
func refreshedTx(t *testing.T, s *Server, token string) map[string]time.Time {
	t.Helper()
	r := get(t, s, token, "/accounts", nil)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /accounts: %d %v", r.status, r.err)
	}
	var body struct {
		Items []struct {
			ID        string `json:"_id"`
			Refreshed struct {
				Balance      time.Time  `json:"balance"`
				Meta         time.Time  `json:"meta"`
				Transactions *time.Time `json:"transactions"`
			} `json:"refreshed"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, it := range body.Items {
		if it.Refreshed.Transactions != nil {
			out[it.ID] = *it.Refreshed.Transactions
		}
	}
	return out
}

func post(t *testing.T, s *Server, token, path string) int {
	t.Helper()
	r := do(t, http.MethodPost, s.URL+path, authHeaders(s, token))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.status != http.StatusOK {
		assertErrorBody(t, r)
	}
	return r.status
}

// TestRefresh checks POST /refresh and /refresh/{id}: the accounts show a newer
// refreshed timestamp once the delay has passed, not before; a stalled account never
// does; a failing user gets 5xx; the OnRefreshed hook runs once per account before
// the new timestamp is served.
func TestRefresh(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{Seed: 5, Users: 2, AccountsPerUser: 4})
	defer s.Close()
	users := s.Users()
	u, other := users[0], users[1]
	before := refreshedTx(t, s, u.Token)
	if len(before) < 2 {
		t.Fatalf("want 2+ accounts with transactions, have %d", len(before))
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range before {
			if !yield(id) {
				return
			}
		}
	})
	stalled := ids[0]

	// A long delay: acknowledged, nothing refreshed yet.
	s.SetRefreshDelay(time.Hour)
	if st := post(t, s, u.Token, "/refresh"); st != http.StatusOK {
		t.Fatalf("POST /refresh: %d", st)
	}
	if got := refreshedTx(t, s, u.Token); !mapsEqual(got, before) {
		t.Fatalf("refreshed before the delay passed: %v, was %v", got, before)
	}

	// With no delay (the default) a refresh completes by the next request.
	s2 := NewServer(Options{Seed: 5, Users: 2, AccountsPerUser: 4})
	defer s2.Close()
	var mu sync.Mutex
	var hooked []string
	s2.OnRefreshed(func(id string) {
		// The hook runs before the new timestamp is served, and may call the fake.
		if got := refreshedTx(t, s2, u.Token)[id]; !got.Equal(before[id]) {
			t.Errorf("%s shows its refresh (%v) before the hook ran", id, got)
		}
		mu.Lock()
		hooked = append(hooked, id)
		mu.Unlock()
	})
	s2.StallRefresh(stalled)
	asked := time.Now().Truncate(time.Millisecond)
	if st := post(t, s2, u.Token, "/refresh"); st != http.StatusOK {
		t.Fatalf("POST /refresh: %d", st)
	}
	after := refreshedTx(t, s2, u.Token)
	for _, id := range ids {
		switch {
		case id == stalled && !after[id].Equal(before[id]):
			t.Errorf("stalled %s refreshed: %v", id, after[id])
		case id != stalled && !after[id].After(before[id]):
			t.Errorf("%s not refreshed: %v, was %v", id, after[id], before[id])
		case id != stalled && after[id].Before(asked):
			t.Errorf("%s refreshed at %v, before the request at %v", id, after[id], asked)
		}
	}
	mu.Lock()
	slices.Sort(hooked)
	want := slices.DeleteFunc(s2.AccountIDs(u.ID), func(id string) bool { return id == stalled })
	slices.Sort(want)
	if !slices.Equal(hooked, want) {
		t.Errorf("OnRefreshed called for %v, want %v once each", hooked, want)
	}
	mu.Unlock()
	if again := refreshedTx(t, s2, u.Token); !mapsEqual(again, after) {
		t.Errorf("a second listing differs: %v, then %v", after, again)
	}
	// The account object is otherwise unchanged, and Account serves it too.
	info, _ := s2.Account(ids[1])
	orig, _ := s.Account(ids[1])
	if bytes.Equal(info.JSON, orig.JSON) || len(info.JSON) != len(orig.JSON) {
		t.Errorf("Account JSON after refresh: %s\nbefore: %s", info.JSON, orig.JSON)
	}

	// Another user's accounts are untouched; /refresh/{id} refreshes that account alone.
	otherBefore := refreshedTx(t, s2, other.Token)
	oids := s2.AccountIDs(other.ID)
	var one string
	for _, id := range oids {
		if _, ok := otherBefore[id]; ok {
			one = id
			break
		}
	}
	if st := post(t, s2, other.Token, "/refresh/"+one); st != http.StatusOK {
		t.Fatalf("POST /refresh/%s: %d", one, st)
	}
	for id, ts := range refreshedTx(t, s2, other.Token) {
		if changed := !ts.Equal(otherBefore[id]); changed != (id == one) {
			t.Errorf("/refresh/%s: account %s changed=%v", one, id, changed)
		}
	}

	// A failing user: 503 with an error body, nothing refreshed; 0 restores.
	s3 := NewServer(Options{Seed: 5, Users: 2, AccountsPerUser: 4})
	defer s3.Close()
	s3.FailRefresh(u.ID, http.StatusServiceUnavailable)
	if st := post(t, s3, u.Token, "/refresh"); st != http.StatusServiceUnavailable {
		t.Errorf("failing POST /refresh: %d, want 503", st)
	}
	if st := post(t, s3, other.Token, "/refresh"); st != http.StatusOK {
		t.Errorf("other user's POST /refresh: %d, want 200", st)
	}
	if got := refreshedTx(t, s3, u.Token); !mapsEqual(got, before) {
		t.Errorf("a failed refresh changed the timestamps: %v", got)
	}
	s3.FailRefresh(u.ID, 0)
	if st := post(t, s3, u.Token, "/refresh"); st != http.StatusOK {
		t.Errorf("restored POST /refresh: %d, want 200", st)
	}
}

func mapsEqual(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}
