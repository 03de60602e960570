package akahutest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWalkYieldsSettledExactlyOnce(t *testing.T) {
	s := NewServer(Options{Seed: 7, Users: 2, TxPerAccountPerMonth: 30, PageSize: 25})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	tests := []struct {
		name, path string
		start, end time.Time
		emptyEvery int
		want       func() []Txn
	}{
		{"account full history", "/accounts/" + acc + "/transactions", DefaultFrom.AddDate(0, 0, -1), DefaultTo.AddDate(0, 0, 1), 7, nil},
		{"account odd ms window", "/accounts/" + acc + "/transactions", time.Date(2025, 3, 14, 11, 0, 0, 0, time.UTC), time.Date(2025, 9, 1, 11, 59, 59, 999e6, time.UTC), 7, nil},
		{"all accounts mixed", "/transactions", DefaultFrom, DefaultTo, 7, nil},
		{"inactive account", "/accounts/" + s.AccountIDs(u.ID)[1] + "/transactions", DefaultTo.AddDate(0, -6, 0), DefaultTo, 7, nil},
		{"empty window", "/accounts/" + acc + "/transactions", DefaultTo.AddDate(1, 0, 0), DefaultTo.AddDate(2, 0, 0), 7, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []Txn
			if strings.HasPrefix(tc.path, "/transactions") {
				want = s.SettledUser(u.ID, tc.start, tc.end)
			} else {
				want = s.Settled(strings.Split(tc.path, "/")[2], tc.start, tc.end)
			}
			s.ResetStats()
			got := walk(t, s, u.Token, tc.path, iso(tc.start), iso(tc.end))
			if len(got.items) != len(want) {
				t.Fatalf("walk gave %d items, Settled %d", len(got.items), len(want))
			}
			seen := map[string]bool{}
			accounts := map[string]bool{}
			for i, raw := range got.items {
				if string(raw) != string(want[i].JSON) {
					t.Fatalf("item %d differs from Settled:\n got %s\nwant %s", i, raw, want[i].JSON)
				}
				f := fields(t, raw)
				if seen[f.ID] {
					t.Fatalf("duplicate id %s", f.ID)
				}
				seen[f.ID] = true
				accounts[f.Account] = true
				if i > 0 {
					prev := fields(t, got.items[i-1])
					if prev.Date < f.Date || prev.Date == f.Date && prev.ID > f.ID {
						t.Fatalf("order broken at %d: %s/%s before %s/%s", i, prev.Date, prev.ID, f.Date, f.ID)
					}
				}
				d, _ := time.Parse(time.RFC3339, f.Date)
				if !d.After(tc.start) || d.After(tc.end) {
					t.Fatalf("item %d dated %s outside (%s, %s]", i, f.Date, iso(tc.start), iso(tc.end))
				}
			}
			full := len(want) / 25
			if len(want) > 0 && full >= 7 && got.emptyPages == 0 {
				t.Errorf("no empty page in a %d-page walk", got.pages)
			}
			if strings.HasPrefix(tc.path, "/transactions") && len(accounts) < 2 {
				t.Errorf("all-accounts walk covered %d accounts", len(accounts))
			}
			st := s.Stats()
			if st.Pages != int64(got.pages) || st.EmptyPages != int64(got.emptyPages) || st.Items != int64(len(want)) {
				t.Errorf("stats pages=%d empty=%d items=%d, walk pages=%d empty=%d items=%d",
					st.Pages, st.EmptyPages, st.Items, got.pages, got.emptyPages, len(want))
			}
		})
	}
}

func TestEmptyPageEvery(t *testing.T) {
	for _, tc := range []struct {
		every, wantEmpty int
	}{{-1, 0}, {3, 4}, {7, 1}} {
		// 30 items, page size 3: 10 item pages; with every=3 pages 3,6,9,12 are empty.
		s := NewServer(Options{Seed: 3, Users: 1, AccountsPerUser: 1, PageSize: 3, EmptyPageEvery: tc.every})
		u := s.Users()[0]
		acc := s.AccountIDs(u.ID)[0]
		all := s.Settled(acc, time.Time{}, time.Time{})
		if len(all) < 31 {
			t.Fatalf("population too small: %d", len(all))
		}
		w := walk(t, s, u.Token, "/accounts/"+acc+"/transactions", iso(all[30].Date), iso(all[0].Date))
		want := s.Settled(acc, all[30].Date, all[0].Date)
		if len(w.items) != len(want) {
			t.Fatalf("every=%d: %d items, want %d", tc.every, len(w.items), len(want))
		}
		itemPages := (len(want) + 2) / 3
		expect := 0
		if tc.every > 0 {
			// empty pages are inserted at multiples of every while items remain
			for p, left := 1, itemPages; left > 0; p++ {
				if p%tc.every == 0 {
					expect++
				} else {
					left--
				}
			}
		}
		if w.emptyPages != expect {
			t.Errorf("every=%d: %d empty pages, want %d (%d items)", tc.every, w.emptyPages, expect, len(want))
		}
		s.Close()
	}
}

func TestStartExclusiveEndInclusive(t *testing.T) {
	s := NewServer(Options{Seed: 11, Users: 1, AccountsPerUser: 1})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	all := s.Settled(acc, time.Time{}, time.Time{})
	d := all[len(all)/2].Date
	onDay := 0
	for _, tx := range all {
		if tx.Date.Equal(d) {
			onDay++
		}
	}
	msec := time.Millisecond
	tests := []struct {
		name       string
		start, end string
		want       int
	}{
		{"start 1ms before, end at", iso(d.Add(-msec)), iso(d), onDay},
		{"start at (exclusive)", iso(d), iso(d.Add(time.Hour)), 0},
		{"end 1ms before", iso(d.Add(-time.Hour)), iso(d.Add(-msec)), 0},
		{"same instant in +13:00", d.Add(-msec).In(time.FixedZone("", 13*3600)).Format("2006-01-02T15:04:05.000-07:00"), d.In(time.FixedZone("", 12*3600)).Format("2006-01-02T15:04:05.000-07:00"), onDay},
		{"no offset means UTC", d.Add(-msec).UTC().Format("2006-01-02T15:04:05.000"), d.UTC().Format("2006-01-02T15:04:05.000"), onDay},
		{"sub-ms digits truncated", d.Add(-msec).UTC().Format("2006-01-02T15:04:05.000") + "999Z", d.UTC().Format("2006-01-02T15:04:05.000") + "999Z", onDay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := walk(t, s, u.Token, "/accounts/"+acc+"/transactions", tc.start, tc.end)
			if len(w.items) != tc.want {
				t.Fatalf("got %d items, want %d", len(w.items), tc.want)
			}
			for _, raw := range w.items {
				if f := fields(t, raw); f.Date != iso(d) {
					t.Fatalf("unexpected date %s", f.Date)
				}
			}
		})
	}
	// Settled shares the semantics.
	if n := len(s.Settled(acc, d, d.Add(time.Hour))); n != 0 {
		t.Errorf("Settled with start at the instant gave %d", n)
	}
	if n := len(s.Settled(acc, d.Add(-msec), d)); n != onDay {
		t.Errorf("Settled (d-1ms, d] gave %d, want %d", n, onDay)
	}
}

func TestDateOnlyAndDefaultWindow(t *testing.T) {
	s := NewServer(Options{Seed: 5, Users: 1, AccountsPerUser: 1})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	path := "/accounts/" + acc + "/transactions"
	// date-only values are UTC midnight
	w := walk(t, s, u.Token, path, "2026-01-01", "2026-02-01")
	want := s.Settled(acc, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if len(w.items) != len(want) || len(want) == 0 {
		t.Fatalf("date-only walk %d items, want %d", len(w.items), len(want))
	}
	// no start/end: the SDK's last 30 days ending with the local day of To
	end := time.Date(2026, 11, 21, 0, 0, 0, 0, auckland).Add(-time.Millisecond)
	want = s.Settled(acc, end.Add(-30*24*time.Hour), end)
	w = walk(t, s, u.Token, path, "", "")
	if len(w.items) != len(want) {
		t.Fatalf("default window %d items, want %d", len(w.items), len(want))
	}
	// unparseable dates (e.g. an unescaped '+' decoded as a space) are 400
	q := url.Values{"start": {"2026-01-01T00:00:00 13:00"}, "end": {"2026-02-01"}}
	if r := get(t, s, u.Token, path, q); r.status != http.StatusBadRequest {
		t.Errorf("bad start: status %d", r.status)
	}
	// unknown parameters are ignored
	q = url.Values{"start": {"2026-01-01"}, "end": {"2026-02-01"}, "limit": {"1"}, "type": {"DEBIT"}}
	if p := decodePage(t, get(t, s, u.Token, path, q)); len(p.Items) != min(len(w.items), 100) && len(p.Items) < 2 {
		t.Errorf("limit was honoured: %d items", len(p.Items))
	}
}

func TestNZMidnightDates(t *testing.T) {
	f := New(Options{Seed: 2, Users: 1, AccountsPerUser: 1, TxPerAccountPerMonth: 60})
	acc := f.AccountIDs(f.Users()[0].ID)[0]
	hours := map[string]int{}
	for _, tx := range f.Settled(acc, time.Time{}, time.Time{}) {
		f := fields(t, tx.JSON)
		if !strings.HasSuffix(f.Date, ":00:00.000Z") || len(f.Date) != 24 {
			t.Fatalf("date %q not UTC with milliseconds", f.Date)
		}
		local := tx.Date.In(auckland)
		if local.Hour() != 0 || local.Minute() != 0 || local.Second() != 0 {
			t.Fatalf("date %s is not local midnight (%s)", f.Date, local)
		}
		hours[f.Date[11:13]]++
	}
	if hours["11"] == 0 || hours["12"] == 0 || len(hours) != 2 {
		t.Errorf("want both NZDT (T11) and NZST (T12) midnights, got %v", hours)
	}
	// pinned examples on both sides of the 2026 transitions
	for _, tc := range []struct {
		local time.Time
		want  string
	}{
		{time.Date(2026, 6, 30, 0, 0, 0, 0, auckland), "2026-06-29T12:00:00.000Z"},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, auckland), "2025-12-31T11:00:00.000Z"},
		{time.Date(2026, 4, 5, 0, 0, 0, 0, auckland), "2026-04-04T11:00:00.000Z"}, // DST ends 03:00 that day
		{time.Date(2026, 4, 6, 0, 0, 0, 0, auckland), "2026-04-05T12:00:00.000Z"},
		{time.Date(2026, 9, 27, 0, 0, 0, 0, auckland), "2026-09-26T12:00:00.000Z"}, // DST starts 02:00 that day
		{time.Date(2026, 9, 28, 0, 0, 0, 0, auckland), "2026-09-27T11:00:00.000Z"},
	} {
		day := dayOf(tc.local.UnixMilli())
		if got := string(appendTime(nil, f.midnight(day))); got != tc.want {
			t.Errorf("midnight of %s = %s, want %s", tc.local.Format("2006-01-02"), got, tc.want)
		}
	}
}

func TestCursorErrors(t *testing.T) {
	s := NewServer(Options{Seed: 9, Users: 1, PageSize: 10})
	defer s.Close()
	u := s.Users()[0]
	ids := s.AccountIDs(u.ID)
	path := "/accounts/" + ids[0] + "/transactions"
	q := url.Values{"start": {"2025-01-01"}, "end": {"2026-01-01"}}
	p := decodePage(t, get(t, s, u.Token, path, q))
	if p.Cursor.Next == nil {
		t.Fatal("first page has no next")
	}
	next := *p.Cursor.Next
	tests := []struct {
		name string
		path string
		q    url.Values
	}{
		{"null string", path, url.Values{"start": q["start"], "end": q["end"], "cursor": {"null"}}},
		{"other start", path, url.Values{"start": {"2025-01-02"}, "end": q["end"], "cursor": {next}}},
		{"other end", path, url.Values{"start": q["start"], "end": {"2026-01-01T00:00:00.001Z"}, "cursor": {next}}},
		{"no window (default) ", path, url.Values{"cursor": {next}}},
		{"other account", "/accounts/" + ids[1] + "/transactions", url.Values{"start": q["start"], "end": q["end"], "cursor": {next}}},
		{"all-accounts endpoint", "/transactions", url.Values{"start": q["start"], "end": q["end"], "cursor": {next}}},
		{"garbage", path, url.Values{"start": q["start"], "end": q["end"], "cursor": {"abc123...321cba"}}},
		{"empty", path, url.Values{"start": q["start"], "end": q["end"], "cursor": {""}}},
		{"flipped bit", path, url.Values{"start": q["start"], "end": q["end"], "cursor": {flip(next)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, s, u.Token, tc.path, tc.q)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			assertErrorBody(t, r)
		})
	}
	t.Run("unescaped cursor", func(t *testing.T) {
		// Cursors are standard base64; sent raw, '+' decodes as space.
		if !strings.ContainsAny(next, "+/=") {
			t.Skip("cursor happens to need no escaping")
		}
		r := do(t, http.MethodGet, s.URL+path+"?start=2025-01-01&end=2026-01-01&cursor="+next, authHeaders(s, u.Token))
		if strings.Contains(next, "+") && r.status != http.StatusBadRequest {
			t.Fatalf("raw cursor with '+': status %d", r.status)
		}
	})
	t.Run("same cursor twice is fine", func(t *testing.T) {
		q2 := url.Values{"start": q["start"], "end": q["end"], "cursor": {next}}
		a := get(t, s, u.Token, path, q2)
		b := get(t, s, u.Token, path, q2)
		if a.status != 200 || string(a.body) != string(b.body) {
			t.Fatalf("replayed cursor: %d, equal=%v", a.status, string(a.body) == string(b.body))
		}
	})
}

func flip(s string) string {
	b := []byte(s)
	if b[3] == 'A' {
		b[3] = 'B'
	} else {
		b[3] = 'A'
	}
	return string(b)
}

func assertErrorBody(t *testing.T, r reply) {
	t.Helper()
	var e struct {
		Success *bool  `json:"success"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Success == nil || *e.Success || e.Message == "" {
		t.Fatalf("error body %q is not {success:false,message}", r.body)
	}
}

func TestAuthAndRouting(t *testing.T) {
	s := NewServer(Options{Seed: 4, Users: 3})
	defer s.Close()
	users := s.Users()
	u, other, revoked := users[0], users[1], users[2]
	s.RevokeUser(revoked.ID)
	mine := s.AccountIDs(u.ID)[0]
	theirs := s.AccountIDs(other.ID)[0]
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"ok lower-case header names", "GET", "/me", map[string]string{"authorization": "Bearer " + u.Token, "x-akahu-id": s.AppToken()}, 200},
		{"ok bearer any case", "GET", "/accounts", map[string]string{"Authorization": "bearer " + u.Token, "X-AKAHU-ID": s.AppToken()}, 200},
		{"missing app token", "GET", "/accounts", map[string]string{"Authorization": "Bearer " + u.Token}, 403},
		{"wrong app token", "GET", "/accounts", map[string]string{"Authorization": "Bearer " + u.Token, "X-Akahu-Id": "app_token_nope"}, 403},
		{"missing user token", "GET", "/accounts", map[string]string{"X-Akahu-Id": s.AppToken()}, 401},
		{"unknown user token", "GET", "/me", map[string]string{"Authorization": "Bearer user_token_nope", "X-Akahu-Id": s.AppToken()}, 401},
		{"revoked user", "GET", "/transactions", authHeaders(s, revoked.Token), 401},
		{"revoked user pending", "GET", "/transactions/pending", authHeaders(s, revoked.Token), 401},
		{"other user's account", "GET", "/accounts/" + theirs, authHeaders(s, u.Token), 404},
		{"other user's transactions", "GET", "/accounts/" + theirs + "/transactions", authHeaders(s, u.Token), 404},
		{"unknown account", "GET", "/accounts/acc_nope/transactions/pending", authHeaders(s, u.Token), 404},
		{"unknown path", "GET", "/nope", authHeaders(s, u.Token), 404},
		{"wrong method", "POST", "/accounts", authHeaders(s, u.Token), 405},
		{"refresh all", "POST", "/refresh", authHeaders(s, u.Token), 200},
		{"refresh one", "POST", "/refresh/" + mine, authHeaders(s, u.Token), 200},
		{"refresh other's", "POST", "/refresh/" + theirs, authHeaders(s, u.Token), 404},
		{"account", "GET", "/accounts/" + mine, authHeaders(s, u.Token), 200},
		{"pending", "GET", "/accounts/" + mine + "/transactions/pending", authHeaders(s, u.Token), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, s.URL+tc.path, tc.hdr)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if tc.want >= 400 {
				assertErrorBody(t, r)
				if strings.Contains(string(r.body), u.Token) || strings.Contains(string(r.body), s.AppToken()) {
					t.Fatal("error body echoes a token")
				}
			} else if !json.Valid(r.body) || !strings.HasPrefix(string(r.body), `{"success":true`) {
				t.Fatalf("body %.100s", r.body)
			}
		})
	}
}

// TestForbidUser: a forbidden user answers 403 on every endpoint while the other
// users, with the same app token, are served; a revoked user still answers 401.
func TestForbidUser(t *testing.T) {
	s := NewServer(Options{Seed: 4, Users: 3})
	defer s.Close()
	users := s.Users()
	forbidden, other, both := users[0], users[1], users[2]
	s.ForbidUser(forbidden.ID)
	s.ForbidUser(both.ID)
	s.RevokeUser(both.ID)
	s.ForbidUser("user_nope") // unknown: ignored
	acct := s.AccountIDs(forbidden.ID)[0]
	tests := []struct {
		name, path string
		token      string
		want       int
	}{
		{"forbidden /me", "/me", forbidden.Token, 403},
		{"forbidden accounts", "/accounts", forbidden.Token, 403},
		{"forbidden transactions", "/accounts/" + acct + "/transactions", forbidden.Token, 403},
		{"forbidden pending", "/accounts/" + acct + "/transactions/pending", forbidden.Token, 403},
		{"other user served", "/me", other.Token, 200},
		{"revoked wins over forbidden", "/me", both.Token, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", s.URL+tc.path, authHeaders(s, tc.token))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if tc.want >= 400 {
				assertErrorBody(t, r)
			}
		})
	}
}

func TestAccountsAndPendingShapes(t *testing.T) {
	s := NewServer(Options{Seed: 1, Users: 3})
	defer s.Close()
	currencies := map[string]bool{}
	for _, u := range s.Users() {
		r := get(t, s, u.Token, "/accounts", nil)
		var body struct {
			Items []struct {
				ID         string   `json:"_id"`
				Status     string   `json:"status"`
				Attributes []string `json:"attributes"`
				Balance    struct {
					Currency string `json:"currency"`
				} `json:"balance"`
				Connection struct {
					ID   string `json:"_id"`
					Name string `json:"name"`
					Logo string `json:"logo"`
				} `json:"connection"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if got := len(body.Items); got != DefaultAccountsPerUser {
			t.Fatalf("%d accounts", got)
		}
		inactive, noTx := 0, 0
		for i, a := range body.Items {
			if a.ID != s.AccountIDs(u.ID)[i] {
				t.Errorf("account %d id %s, AccountIDs says %s", i, a.ID, s.AccountIDs(u.ID)[i])
			}
			currencies[a.Balance.Currency] = true
			if a.Status == "INACTIVE" {
				inactive++
				if n := len(walk(t, s, u.Token, "/accounts/"+a.ID+"/transactions", "2024-01-01", "2027-01-01").items); n == 0 {
					t.Errorf("INACTIVE account %s serves no data", a.ID)
				}
			}
			if !slices.Contains(a.Attributes, "TRANSACTIONS") {
				noTx++
				w := walk(t, s, u.Token, "/accounts/"+a.ID+"/transactions", "2024-01-01", "2027-01-01")
				if len(w.items) != 0 || w.pages != 1 {
					t.Errorf("account without TRANSACTIONS: %d items in %d pages", len(w.items), w.pages)
				}
				if p := decodePage(t, get(t, s, u.Token, "/accounts/"+a.ID+"/transactions/pending", nil)); len(p.Items) != 0 {
					t.Errorf("account without TRANSACTIONS has pending items")
				}
			}
			if !strings.HasPrefix(a.Connection.ID, "conn_") || a.Connection.Name == "" || a.Connection.Logo == "" {
				t.Errorf("connection %+v", a.Connection)
			}
		}
		if inactive == 0 || noTx == 0 {
			t.Errorf("user %s: %d inactive, %d without TRANSACTIONS", u.ID, inactive, noTx)
		}
		// pending: no _id, some string amounts, equal to Pending()
		p := decodePage(t, get(t, s, u.Token, "/transactions/pending", nil))
		var want [][]byte
		for _, id := range s.AccountIDs(u.ID) {
			want = append(want, s.Pending(id)...)
		}
		if len(p.Items) != len(want) || len(want) == 0 {
			t.Fatalf("pending %d items, want %d", len(p.Items), len(want))
		}
		strAmounts := 0
		for i, raw := range p.Items {
			if string(raw) != string(want[i]) {
				t.Errorf("pending %d differs", i)
			}
			if strings.Contains(string(raw), `"_id"`) {
				t.Errorf("pending item has an _id: %s", raw)
			}
			if strings.Contains(string(raw), `"amount":"`) {
				strAmounts++
			}
		}
		if strAmounts == 0 || strAmounts == len(want) {
			t.Errorf("%d of %d pending amounts are strings; want some, not all", strAmounts, len(want))
		}
		if !strings.Contains(string(p.Items[0]), `"amount":"-11.50"`) {
			t.Errorf("first pending item lacks the documented string amount: %s", p.Items[0])
		}
	}
	if !currencies["NZD"] || len(currencies) < 2 {
		t.Errorf("currencies %v: want NZD and a foreign one", currencies)
	}
}
