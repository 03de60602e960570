package akahutest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// getTxn asks GET /transactions/{id}.
func getTxn(t *testing.T, s *Server, token, id string) reply {
	t.Helper()
	r := get(t, s, token, "/transactions/"+id, nil)
	if r.err != nil {
		t.Fatalf("GET /transactions/%s: %v", id, r.err)
	}
	return r
}

// wantTxn checks GET /transactions/{id} answers 200 with exactly the item the
// pages serve, and returns its fields.
func wantTxn(t *testing.T, s *Server, token string, tx Txn) txFields {
	t.Helper()
	r := getTxn(t, s, token, tx.ID)
	if r.status != http.StatusOK {
		t.Fatalf("GET /transactions/%s: status %d: %s", tx.ID, r.status, r.body)
	}
	want := `{"success":true,"item":` + string(tx.JSON) + `}`
	if string(r.body) != want {
		t.Fatalf("GET /transactions/%s:\n got %s\nwant %s", tx.ID, r.body, want)
	}
	return fields(t, tx.JSON)
}

func wantTxn404(t *testing.T, s *Server, token, id string) {
	t.Helper()
	r := getTxn(t, s, token, id)
	if r.status != http.StatusNotFound {
		t.Fatalf("GET /transactions/%s: status %d, want 404: %.200s", id, r.status, r.body)
	}
	assertErrorBody(t, r)
}

// find returns the transaction with id among the account's served ones.
func find(t *testing.T, s *Server, acc, id string) Txn {
	t.Helper()
	for _, tx := range s.Settled(acc, time.Time{}, time.Time{}) {
		if tx.ID == id {
			return tx
		}
	}
	t.Fatalf("%s is not served on %s", id, acc)
	return Txn{}
}

func TestGetTransactionServedItems(t *testing.T) {
	s := NewServer(Options{Seed: 5, Users: 2, AccountsPerUser: 4})
	defer s.Close()
	users := s.Users()
	n := 0
	for ui, u := range users {
		other := users[1-ui]
		for _, acc := range s.AccountIDs(u.ID) {
			all := s.Settled(acc, time.Time{}, time.Time{})
			info, _ := s.Account(acc)
			if !info.HasTransactions && len(all) != 0 {
				t.Fatalf("%s has no TRANSACTIONS but serves %d", acc, len(all))
			}
			// A spread over the history: first, last and a stride between,
			// including accounts with a running balance.
			for i := 0; i < len(all); i += max(1, len(all)/7) {
				wantTxn(t, s, u.Token, all[i])
				// Another user's transaction is not found, not forbidden.
				wantTxn404(t, s, other.Token, all[i].ID)
				n++
			}
			if len(all) > 0 {
				wantTxn(t, s, u.Token, all[len(all)-1])
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d transactions checked", n)
	}
	tok := users[0].Token
	first := s.Settled(s.AccountIDs(users[0].ID)[0], time.Time{}, time.Time{})[0].ID
	for _, id := range []string{
		"trans_doesnotexist",
		"trans_" + strings.Repeat("0", 25),     // the shape of a real id
		first[:len(first)-1] + "x",             // one character off a real id
		strings.ToUpper(first[:6]) + first[6:], // ids are case-sensitive
		"acc_" + strings.Repeat("1", 25),       // not a transaction id at all
		"%E2%98%95",                            // escaped non-ASCII
	} {
		wantTxn404(t, s, tok, id)
	}
	// An escaped slash in the id makes a longer, unknown path: still 404.
	wantTxn404(t, s, tok, "a%2Fb")
	// GET /transactions/pending is still the pending list, not an id.
	if r := get(t, s, tok, "/transactions/pending", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"items":[`) {
		t.Fatalf("GET /transactions/pending: %d %.100s", r.status, r.body)
	}
}

func TestGetTransactionAfterMutations(t *testing.T) {
	s := NewServer(Options{Seed: 21, Users: 2, AccountsPerUser: 2, PageSize: 20})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	all := s.Settled(acc, time.Time{}, time.Time{})
	del, repl, moved, renamed := all[10], all[20], all[30], all[40]
	for _, tx := range []Txn{del, repl, moved, renamed} {
		wantTxn(t, s, u.Token, tx)
	}

	if err := s.DeleteTransaction(del.ID); err != nil {
		t.Fatal(err)
	}
	wantTxn404(t, s, u.Token, del.ID)

	newID, err := s.ReplaceID(repl.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantTxn404(t, s, u.Token, repl.ID)
	nf := wantTxn(t, s, u.Token, find(t, s, acc, newID))
	if of := fields(t, repl.JSON); nf.Date != of.Date || nf.Amount != of.Amount || nf.Desc != of.Desc {
		t.Errorf("replaced %+v, was %+v", nf, of)
	}

	// Far away in date: two years back, across months and a year.
	target := time.Date(2024, 12, 31, 0, 0, 0, 0, auckland)
	if err := s.MoveDate(moved.ID, target); err != nil {
		t.Fatal(err)
	}
	mf := wantTxn(t, s, u.Token, find(t, s, acc, moved.ID))
	if mf.Date != iso(target) || mf.Date == moved.Date.Format(ms) {
		t.Errorf("moved: date %s, want %s", mf.Date, iso(target))
	}
	if mf.UpdatedAt <= fields(t, moved.JSON).UpdatedAt {
		t.Errorf("moved: updated_at %s did not advance", mf.UpdatedAt)
	}
	// Moving it back into the generated range is still found (it now lives in
	// the overlay, not at its generated position).
	if err := s.MoveDate(moved.ID, moved.Date); err != nil {
		t.Fatal(err)
	}
	if got := wantTxn(t, s, u.Token, find(t, s, acc, moved.ID)); got.Date != iso(moved.Date) {
		t.Errorf("moved back: date %s, want %s", got.Date, iso(moved.Date))
	}

	if err := s.SetDescription(renamed.ID, "Renamed ☕"); err != nil {
		t.Fatal(err)
	}
	if got := wantTxn(t, s, u.Token, find(t, s, acc, renamed.ID)); got.Desc != "Renamed ☕" {
		t.Errorf("renamed: %q", got.Desc)
	}

	added := s.AddTransaction(acc, time.Date(2030, 1, 1, 0, 0, 0, 0, auckland), "-12.34", "Far future")
	if got := wantTxn(t, s, u.Token, find(t, s, acc, added)); got.Amount != "-12.34" {
		t.Errorf("added: amount %s", got.Amount)
	}
	settled, err := s.SettlePending(acc)
	if err != nil {
		t.Fatal(err)
	}
	wantTxn(t, s, u.Token, find(t, s, acc, settled))

	// Scripted transactions are another user's too.
	other := s.Users()[1]
	for _, id := range []string{newID, moved.ID, added, settled} {
		wantTxn404(t, s, other.Token, id)
	}
	// And a scripted transaction can be deleted again.
	if err := s.DeleteTransaction(added); err != nil {
		t.Fatal(err)
	}
	wantTxn404(t, s, u.Token, added)
}

func TestGetTransactionAuthFaultsAndStats(t *testing.T) {
	s := NewServer(Options{Seed: 4, Users: 3})
	defer s.Close()
	users := s.Users()
	u, revoked := users[0], users[2]
	tx := s.Settled(s.AccountIDs(u.ID)[0], time.Time{}, time.Time{})[3]
	rtx := s.Settled(s.AccountIDs(revoked.ID)[0], time.Time{}, time.Time{})[3]
	path := s.URL + "/transactions/" + tx.ID

	s.ResetStats()
	wantTxn(t, s, revoked.Token, rtx)
	s.RevokeUser(revoked.ID)
	tests := []struct {
		name   string
		method string
		url    string
		hdr    map[string]string
		want   int
	}{
		{"lower-case header names", "GET", path, map[string]string{"authorization": "bearer " + u.Token, "x-akahu-id": s.AppToken()}, 200},
		{"missing app token", "GET", path, map[string]string{"Authorization": "Bearer " + u.Token}, 403},
		{"wrong app token", "GET", path, map[string]string{"Authorization": "Bearer " + u.Token, "X-Akahu-Id": "app_token_nope"}, 403},
		{"missing user token", "GET", path, map[string]string{"X-Akahu-Id": s.AppToken()}, 401},
		{"unknown user token", "GET", path, authHeaders(s, "user_token_nope"), 401},
		{"revoked user, own transaction", "GET", s.URL + "/transactions/" + rtx.ID, authHeaders(s, revoked.Token), 401},
		{"revoked user, unknown id", "GET", s.URL + "/transactions/trans_nope", authHeaders(s, revoked.Token), 401},
		{"wrong app token, unknown id", "GET", s.URL + "/transactions/trans_nope", map[string]string{"Authorization": "Bearer " + u.Token, "X-Akahu-Id": "app_token_nope"}, 403},
		{"wrong method", "DELETE", path, authHeaders(s, u.Token), 405},
	}
	for _, tc := range tests {
		r := do(t, tc.method, tc.url, tc.hdr)
		if r.err != nil {
			t.Fatalf("%s: %v", tc.name, r.err)
		}
		if r.status != tc.want {
			t.Fatalf("%s: status %d, want %d: %s", tc.name, r.status, tc.want, r.body)
		}
		if tc.want >= 400 {
			assertErrorBody(t, r)
			if strings.Contains(string(r.body), u.Token) || strings.Contains(string(r.body), s.AppToken()) {
				t.Fatalf("%s: error body echoes a token", tc.name)
			}
		}
	}

	// Faults apply, restricted by path like any other route.
	s.InjectFault(Fault{Kind: ServerError, Status: 503, PathContains: "/transactions/" + tx.ID})
	s.InjectFault(Fault{Kind: RateLimit, RetryAfter: time.Second, PathContains: "/transactions/" + tx.ID})
	s.InjectFault(Fault{Kind: Truncate, PathContains: "/transactions/" + tx.ID})
	if r := getTxn(t, s, u.Token, tx.ID); r.status != 503 {
		t.Fatalf("fault 1: %d", r.status)
	}
	if r := getTxn(t, s, u.Token, tx.ID); r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("fault 2: %d %v", r.status, r.header)
	}
	r := get(t, s, u.Token, "/transactions/"+tx.ID, nil)
	if r.err == nil || r.status != 200 || len(r.body) >= len(tx.JSON) {
		t.Fatalf("truncate: status %d, %d bytes, err %v", r.status, len(r.body), r.err)
	}
	wantTxn(t, s, u.Token, tx)

	st := s.Stats()
	// 1 before revoking + 9 table rows + 3 faulted + 1 clean.
	if got := st.ByKind["transaction"]; got != 14 {
		t.Errorf("ByKind[transaction] = %d, want 14 (%v)", got, st.ByKind)
	}
	if st.Pages != 0 || st.Items != 0 {
		t.Errorf("single-transaction answers counted as pages: pages=%d items=%d", st.Pages, st.Items)
	}
	if st.Faults[ServerError] != 1 || st.Faults[RateLimit] != 1 || st.Faults[Truncate] != 1 {
		t.Errorf("faults %v", st.Faults)
	}
}
