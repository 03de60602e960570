package akahu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var nz = mustZone("Pacific/Auckland")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func newFake(t *testing.T, opts akahutest.Options) (*akahutest.Server, *akahu.Client) {
	t.Helper()
	srv := akahutest.NewServer(opts)
	t.Cleanup(srv.Close)
	c, err := akahu.New(akahu.Config{
		BaseURL:     srv.URL,
		AppToken:    akahu.Token(srv.AppToken()),
		HTTPClient:  srv.Client(),
		MaxInFlight: 4,
		BaseBackoff: time.Millisecond,
		MaxBackoff:  5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// walk collects every item of a window, failing on a duplicate id, and
// returns them by id.
func walk(t *testing.T, c *akahu.Client, user akahu.Token, acc string, w akahu.Window) (map[string][]byte, error) {
	t.Helper()
	return collect(t, acc, func(fn func(akahu.Page) error) error {
		return c.Transactions(context.Background(), user, acc, w, fn)
	})
}

// collect runs a cursor walk and returns its items by id, failing on a duplicate.
func collect(t *testing.T, what string, walk func(func(akahu.Page) error) error) (map[string][]byte, error) {
	t.Helper()
	got := map[string][]byte{}
	err := walk(func(p akahu.Page) error {
		for _, it := range p.Items {
			id := itemID(it)
			if _, dup := got[id]; dup {
				t.Errorf("%s: transaction %s delivered twice", what, id)
			}
			got[id] = bytes.Clone(it)
		}
		return nil
	})
	return got, err
}

func itemID(item []byte) string {
	const key = `"_id":"`
	i := bytes.Index(item, []byte(key))
	if i < 0 {
		return ""
	}
	rest := item[i+len(key):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

// sameAsFake checks got holds exactly the fake's settled transactions of w,
// byte for byte.
func sameAsFake(t *testing.T, f *akahutest.Server, acc string, w akahu.Window, got map[string][]byte) {
	t.Helper()
	want := f.Settled(acc, w.Start, w.End)
	if len(got) != len(want) {
		t.Errorf("%s %s: got %d transactions, fake has %d", acc, w, len(got), len(want))
	}
	for _, tx := range want {
		if b, ok := got[tx.ID]; !ok {
			t.Errorf("%s %s: missing %s dated %s", acc, w, tx.ID, tx.Date.Format(akahu.TimeFormat))
		} else if !bytes.Equal(b, tx.JSON) {
			t.Errorf("%s: %s differs from the served JSON", acc, tx.ID)
		}
	}
}

func TestFakeMultiYearWalkExactlyOnce(t *testing.T) {
	t.Parallel()
	from := time.Date(2023, 1, 1, 0, 0, 0, 0, nz)
	to := time.Date(2025, 12, 31, 0, 0, 0, 0, nz)
	srv, c := newFake(t, akahutest.Options{
		Seed: 42, Users: 2, AccountsPerUser: 3, From: from, To: to,
		TxPerAccountPerMonth: 25, PageSize: 40, EmptyPageEvery: 4,
	})
	ctx := context.Background()
	total := 0
	for _, u := range srv.Users() {
		user := akahu.Token(u.Token)
		me, err := c.Me(ctx, user)
		if err != nil || me.ID != u.ID {
			t.Fatalf("Me = %+v, %v; want %s", me, err, u.ID)
		}
		accts, err := c.Accounts(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		ids := srv.AccountIDs(u.ID)
		if len(accts) != len(ids) {
			t.Fatalf("user %s: %d accounts, fake has %d", u.ID, len(accts), len(ids))
		}
		for i, a := range accts {
			if a.ID != ids[i] {
				t.Errorf("account %d = %s, want %s", i, a.ID, ids[i])
			}
			info, _ := srv.Account(a.ID)
			if a.HasTransactions() != info.HasTransactions || a.Status != info.Status || a.Currency != info.Currency {
				t.Errorf("account %s = %+v, fake says %+v", a.ID, a, info)
			}
			if !a.HasTransactions() {
				continue
			}
			// One walk over the whole history...
			whole := akahu.LocalDates(from, to, nz)
			all, err := walk(t, c, user, a.ID, whole)
			if err != nil {
				t.Fatalf("%s: %v", a.ID, err)
			}
			sameAsFake(t, srv, a.ID, whole, all)
			if len(all) != srv.TotalSettled(a.ID) {
				t.Errorf("%s: whole-history walk got %d, account serves %d", a.ID, len(all), srv.TotalSettled(a.ID))
			}
			total += len(all)
			// ...equals the union of monthly windows walked in parallel, with
			// no transaction in two months.
			var (
				mu    sync.Mutex
				union = map[string]string{}
				wg    sync.WaitGroup
			)
			for m := from; !m.After(to); m = m.AddDate(0, 1, 0) {
				w := akahu.LocalDates(m, m.AddDate(0, 1, -1), nz)
				wg.Go(func() {
					got, err := walk(t, c, user, a.ID, w)
					if err != nil {
						t.Errorf("%s %s: %v", a.ID, w, err)
						return
					}
					sameAsFake(t, srv, a.ID, w, got)
					mu.Lock()
					defer mu.Unlock()
					for id := range got {
						if prev, dup := union[id]; dup {
							t.Errorf("%s in two months: %s and %s", id, prev, w)
						}
						union[id] = w.String()
					}
				})
			}
			wg.Wait()
			if len(union) != len(all) {
				t.Errorf("%s: monthly union %d != whole walk %d", a.ID, len(union), len(all))
			}
			pending, err := c.Pending(ctx, user, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantPending := srv.Pending(a.ID)
			if len(pending) != len(wantPending) {
				t.Errorf("%s: %d pending, fake has %d", a.ID, len(pending), len(wantPending))
			}
			for i := range min(len(pending), len(wantPending)) {
				if !bytes.Equal(pending[i], wantPending[i]) {
					t.Errorf("%s: pending %d differs", a.ID, i)
				}
			}
		}
	}
	if total < 1000 {
		t.Errorf("only %d transactions walked; the population is too small to prove much", total)
	}
	if st := srv.Stats(); st.EmptyPages == 0 {
		t.Error("the fake served no empty pages; pagination through them untested")
	}
}

func TestFakeWindowBoundaries(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, akahutest.Options{Seed: 3, Users: 1, AccountsPerUser: 2,
		From: time.Date(2024, 1, 1, 0, 0, 0, 0, nz), To: time.Date(2024, 12, 31, 0, 0, 0, 0, nz)})
	u := srv.Users()[0]
	acc := firstWithTransactions(t, srv, u.ID)
	for _, w := range []akahu.Window{
		akahu.LocalDates(time.Date(2024, 3, 1, 0, 0, 0, 0, nz), time.Date(2024, 3, 31, 0, 0, 0, 0, nz), nz),
		akahu.LocalDates(time.Date(2024, 4, 7, 0, 0, 0, 0, nz), time.Date(2024, 4, 7, 0, 0, 0, 0, nz), nz),   // 25 h day
		akahu.LocalDates(time.Date(2024, 9, 29, 0, 0, 0, 0, nz), time.Date(2024, 9, 29, 0, 0, 0, 0, nz), nz), // 23 h day
	} {
		firstIn := srv.AddTransaction(acc, w.Start.Add(time.Millisecond), "-1.00", "first ms in")
		lastIn := srv.AddTransaction(acc, w.End, "-2.00", "last ms in")
		before := srv.AddTransaction(acc, w.Start, "-3.00", "start itself is out")
		after := srv.AddTransaction(acc, w.End.Add(time.Millisecond), "-4.00", "1 ms after end is out")
		got, err := walk(t, c, akahu.Token(u.Token), acc, w)
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{firstIn: true, lastIn: true, before: false, after: false} {
			if _, ok := got[id]; ok != want {
				t.Errorf("window %s: %s present = %v, want %v", w, id, ok, want)
			}
		}
		sameAsFake(t, srv, acc, w, got)
	}
}

func firstWithTransactions(t *testing.T, srv *akahutest.Server, userID string) string {
	t.Helper()
	for _, id := range srv.AccountIDs(userID) {
		if info, _ := srv.Account(id); info.HasTransactions {
			return id
		}
	}
	t.Fatalf("user %s has no account with transactions", userID)
	return ""
}

func TestFakeFaultsRetried(t *testing.T) {
	t.Parallel()
	from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, nz), time.Date(2024, 12, 31, 0, 0, 0, 0, nz)
	srv, c := newFake(t, akahutest.Options{Seed: 9, Users: 1, AccountsPerUser: 2, From: from, To: to, PageSize: 30})
	u := srv.Users()[0]
	acc := firstWithTransactions(t, srv, u.ID)
	srv.InjectFault(akahutest.Fault{Kind: akahutest.RateLimit, PathContains: "cursor="})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 2, PathContains: "cursor="})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 502, PathContains: "/transactions"})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.Truncate, PathContains: "cursor="})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.Malformed, PathContains: "cursor="})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.RateLimit, RetryAfter: time.Second, PathContains: "cursor="})
	w := akahu.LocalDates(from, to, nz)
	start := time.Now()
	got, err := walk(t, c, akahu.Token(u.Token), acc, w)
	if err != nil {
		t.Fatalf("walk with faults: %v", err)
	}
	sameAsFake(t, srv, acc, w, got)
	if fs := srv.Stats().FaultsInjected(); fs != 7 {
		t.Errorf("faults injected = %d, want 7 (all consumed)", fs)
	}
	st := c.Stats()
	if st.Retries != 7 || st.RateLimited != 2 || st.ServerErrors != 3 {
		t.Errorf("client Stats = %+v, want 7 retries, 2 rate-limited, 3 server errors", st)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("walk took %v; Retry-After: 1 was not honoured", el)
	}
}

func TestFakeRetriesExhausted(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, akahutest.Options{Seed: 5, Users: 1, AccountsPerUser: 1})
	u := srv.Users()[0]
	srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100})
	_, err := c.Accounts(context.Background(), akahu.Token(u.Token))
	var e *akahu.Error
	if !errors.Is(err, akahu.ErrServer) || !errors.As(err, &e) || e.Status != 503 || e.Retries != akahu.DefaultMaxRetries {
		t.Fatalf("err = %v, want ErrServer 503 after %d retries", err, akahu.DefaultMaxRetries)
	}
	if n := srv.Stats().Requests; n != akahu.DefaultMaxRetries+1 {
		t.Errorf("fake saw %d requests, want %d", n, akahu.DefaultMaxRetries+1)
	}
}

func TestFakeAccessRevoked(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, akahutest.Options{Seed: 11, Users: 2, AccountsPerUser: 2})
	users := srv.Users()
	revoked, other := users[0], users[1]
	ctx := context.Background()
	acc := firstWithTransactions(t, srv, revoked.ID)
	if _, err := c.Accounts(ctx, akahu.Token(revoked.Token)); err != nil {
		t.Fatal(err)
	}
	srv.RevokeUser(revoked.ID)
	srv.ResetStats()
	w := akahu.LocalDates(time.Now().AddDate(0, -1, 0), time.Now(), nz)
	errs := []error{
		func() error { _, err := c.Me(ctx, akahu.Token(revoked.Token)); return err }(),
		func() error { _, err := c.Accounts(ctx, akahu.Token(revoked.Token)); return err }(),
		c.Transactions(ctx, akahu.Token(revoked.Token), acc, w, func(akahu.Page) error { return nil }),
		func() error { _, err := c.Pending(ctx, akahu.Token(revoked.Token), acc); return err }(),
	}
	for i, err := range errs {
		var e *akahu.Error
		if !errors.Is(err, akahu.ErrAccessRevoked) || !errors.As(err, &e) || e.Status != 401 || e.Retries != 0 {
			t.Errorf("call %d: err = %v, want ErrAccessRevoked 401 without retries", i, err)
		}
	}
	if st := srv.Stats(); st.Requests != int64(len(errs)) {
		t.Errorf("fake saw %d requests for %d calls: a 401 was retried", st.Requests, len(errs))
	}
	// Other users are unaffected.
	if _, err := c.Accounts(ctx, akahu.Token(other.Token)); err != nil {
		t.Errorf("other user: %v", err)
	}
	// A wrong app token is 403: ErrForbidden, never ErrAccessRevoked, not retried.
	bad, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: "app_token_wrong", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	_, err = bad.Me(ctx, akahu.Token(other.Token))
	var e *akahu.Error
	if !errors.Is(err, akahu.ErrForbidden) || errors.Is(err, akahu.ErrAccessRevoked) || !errors.As(err, &e) || e.Status != 403 || e.Retries != 0 {
		t.Errorf("wrong app token: err = %v, want ErrForbidden 403 without retries", err)
	}
	if n := srv.Stats().Requests; n != 1 {
		t.Errorf("fake saw %d requests for one 403: retried", n)
	}
	// An unknown account is 404.
	err = c.Transactions(ctx, akahu.Token(other.Token), "acc_does_not_exist", w, func(akahu.Page) error { return nil })
	if !errors.Is(err, akahu.ErrNotFound) {
		t.Errorf("unknown account: err = %v, want ErrNotFound", err)
	}
	// A user refused alone (403) is ErrForbidden too.
	srv.ForbidUser(other.ID)
	if _, err := c.Accounts(ctx, akahu.Token(other.Token)); !errors.Is(err, akahu.ErrForbidden) || errors.Is(err, akahu.ErrAccessRevoked) {
		t.Errorf("forbidden user: err = %v, want ErrForbidden", err)
	}
}

// wantNotFound checks err is the 404 of GET /transactions/{id}: ErrNotFound,
// naming the id, not retried, never naming a token.
func wantNotFound(t *testing.T, srv *akahutest.Server, err error, id string, tokens ...string) {
	t.Helper()
	var e *akahu.Error
	if !errors.Is(err, akahu.ErrNotFound) || !errors.As(err, &e) || e.Status != 404 || e.Retries != 0 {
		t.Fatalf("Transaction(%s): err = %v, want ErrNotFound 404 without retries", id, err)
	}
	if e.Endpoint != "GET /transactions/"+id || !strings.Contains(err.Error(), id) {
		t.Errorf("error does not name the endpoint with the id: Endpoint %q, text %q", e.Endpoint, err)
	}
	for _, tok := range append(tokens, srv.AppToken()) {
		if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, e), tok) {
			t.Errorf("error text leaks a token: %v", err)
		}
	}
}

func TestFakeTransactionByID(t *testing.T) {
	t.Parallel()
	from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, nz), time.Date(2025, 6, 30, 0, 0, 0, 0, nz)
	srv, c := newFake(t, akahutest.Options{Seed: 17, Users: 2, AccountsPerUser: 2, From: from, To: to, PageSize: 30})
	ctx := context.Background()
	users := srv.Users()
	u, other := users[0], users[1]
	user := akahu.Token(u.Token)
	acc := firstWithTransactions(t, srv, u.ID)
	all := srv.Settled(acc, time.Time{}, time.Time{})
	if len(all) < 100 {
		t.Fatalf("only %d transactions", len(all))
	}

	// Found: byte for byte the item the pages serve.
	for i := 0; i < len(all); i += len(all) / 10 {
		raw, err := c.Transaction(ctx, user, all[i].ID)
		if err != nil {
			t.Fatalf("Transaction(%s): %v", all[i].ID, err)
		}
		if !bytes.Equal(raw, all[i].JSON) {
			t.Fatalf("Transaction(%s) = %s\nwant %s", all[i].ID, raw, all[i].JSON)
		}
	}

	// The pipeline's question: a transaction missing from a re-read window,
	// deleted or moved far away?
	w := akahu.LocalDates(time.Date(2025, 3, 1, 0, 0, 0, 0, nz), time.Date(2025, 3, 31, 0, 0, 0, 0, nz), nz)
	inMarch := srv.Settled(acc, w.Start, w.End)
	if len(inMarch) < 3 {
		t.Fatalf("only %d transactions in %s", len(inMarch), w)
	}
	deleted, moved, replaced := inMarch[0], inMarch[1], inMarch[2]
	if err := srv.DeleteTransaction(deleted.ID); err != nil {
		t.Fatal(err)
	}
	newDate := time.Date(2024, 2, 29, 0, 0, 0, 0, nz) // a year back, leap day
	if err := srv.MoveDate(moved.ID, newDate); err != nil {
		t.Fatal(err)
	}
	newID, err := srv.ReplaceID(replaced.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := walk(t, c, user, acc, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{deleted.ID, moved.ID, replaced.ID} {
		if _, ok := got[id]; ok {
			t.Fatalf("%s still in %s", id, w)
		}
	}
	srv.ResetStats()
	_, err = c.Transaction(ctx, user, deleted.ID)
	wantNotFound(t, srv, err, deleted.ID, u.Token)
	_, err = c.Transaction(ctx, user, replaced.ID)
	wantNotFound(t, srv, err, replaced.ID, u.Token)
	if n := srv.Stats().Requests; n != 2 {
		t.Errorf("fake saw %d requests for two 404s: a 404 was retried", n)
	}
	raw, err := c.Transaction(ctx, user, moved.ID)
	if err != nil {
		t.Fatalf("moved: %v", err)
	}
	var tx struct {
		ID   string `json:"_id"`
		Date string `json:"date"`
	}
	if err := json.Unmarshal(raw, &tx); err != nil {
		t.Fatal(err)
	}
	if tx.ID != moved.ID || tx.Date != newDate.UTC().Format(akahu.TimeFormat) || w.Contains(newDate) {
		t.Errorf("moved: got %s dated %s, want %s dated %s", tx.ID, tx.Date, moved.ID, newDate.UTC().Format(akahu.TimeFormat))
	}
	if want := srv.Settled(acc, newDate.Add(-time.Millisecond), newDate); !slices.ContainsFunc(want, func(x akahutest.Txn) bool {
		return x.ID == moved.ID && bytes.Equal(x.JSON, raw)
	}) {
		t.Errorf("moved: %s is not what the fake serves at its new date", raw)
	}
	if raw, err := c.Transaction(ctx, user, newID); err != nil || itemID(raw) != newID {
		t.Errorf("replacement %s: %s, %v", newID, raw, err)
	}
	// Scripted arrivals are found too.
	added := srv.AddTransaction(acc, time.Date(2025, 7, 1, 0, 0, 0, 0, nz), "-9.99", "After the history")
	if raw, err := c.Transaction(ctx, user, added); err != nil || itemID(raw) != added {
		t.Errorf("added %s: %s, %v", added, raw, err)
	}
	if settled, err := srv.SettlePending(acc); err != nil {
		t.Fatal(err)
	} else if raw, err := c.Transaction(ctx, user, settled); err != nil || itemID(raw) != settled {
		t.Errorf("settled %s: %s, %v", settled, raw, err)
	}

	// Another user's transaction, and ids that never existed, are 404 too.
	_, err = c.Transaction(ctx, akahu.Token(other.Token), all[0].ID)
	wantNotFound(t, srv, err, all[0].ID, other.Token)
	for _, id := range []string{"trans_doesnotexist", "trans_a/b?c=d#e", "trans_ ☕%"} {
		_, err = c.Transaction(ctx, user, id)
		wantNotFound(t, srv, err, id, u.Token)
	}
	// No request for an id that cannot be one.
	srv.ResetStats()
	for _, id := range []string{"", ".", ".."} {
		if _, err := c.Transaction(ctx, user, id); !errors.Is(err, akahu.ErrBadRequest) {
			t.Errorf("Transaction(%q): err = %v, want ErrBadRequest", id, err)
		}
	}
	if n := srv.Stats().Requests; n != 0 {
		t.Errorf("invalid ids sent %d requests", n)
	}
}

func TestFakeTransactionByIDRetriesAndRevocation(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, akahutest.Options{Seed: 23, Users: 2, AccountsPerUser: 2})
	ctx := context.Background()
	users := srv.Users()
	u, revoked := users[0], users[1]
	tx := srv.Settled(firstWithTransactions(t, srv, u.ID), time.Time{}, time.Time{})[5]
	rtx := srv.Settled(firstWithTransactions(t, srv, revoked.ID), time.Time{}, time.Time{})[5]

	// 503 twice, a 429, a truncated and a malformed body: retried through.
	path := "/transactions/" + tx.ID
	srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 2, PathContains: path})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.RateLimit, PathContains: path})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.Truncate, PathContains: path})
	srv.InjectFault(akahutest.Fault{Kind: akahutest.Malformed, PathContains: path})
	raw, err := c.Transaction(ctx, akahu.Token(u.Token), tx.ID)
	if err != nil || !bytes.Equal(raw, tx.JSON) {
		t.Fatalf("Transaction with faults = %s, %v", raw, err)
	}
	if st := c.Stats(); st.Retries != 5 || st.ServerErrors != 2 || st.RateLimited != 1 {
		t.Errorf("client Stats = %+v, want 5 retries, 2 server errors, 1 rate-limited", st)
	}
	if st := srv.Stats(); st.ByKind["transaction"] != 6 || st.FaultsInjected() != 5 {
		t.Errorf("fake saw %d transaction requests, %d faults; want 6, 5", st.ByKind["transaction"], st.FaultsInjected())
	}
	// 503 for ever: ErrServer after the retries.
	srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100, PathContains: path})
	_, err = c.Transaction(ctx, akahu.Token(u.Token), tx.ID)
	var e *akahu.Error
	if !errors.Is(err, akahu.ErrServer) || !errors.As(err, &e) || e.Status != 503 || e.Retries != akahu.DefaultMaxRetries {
		t.Errorf("err = %v, want ErrServer 503 after %d retries", err, akahu.DefaultMaxRetries)
	}
	srv.ClearFaults()

	// Revoked: 401, ErrAccessRevoked, not retried; for its own ids and others.
	if _, err := c.Transaction(ctx, akahu.Token(revoked.Token), rtx.ID); err != nil {
		t.Fatal(err)
	}
	srv.RevokeUser(revoked.ID)
	srv.ResetStats()
	for _, id := range []string{rtx.ID, tx.ID, "trans_doesnotexist"} {
		_, err := c.Transaction(ctx, akahu.Token(revoked.Token), id)
		if !errors.Is(err, akahu.ErrAccessRevoked) || !errors.As(err, &e) || e.Status != 401 || e.Retries != 0 {
			t.Errorf("revoked, %s: err = %v, want ErrAccessRevoked 401 without retries", id, err)
		}
		if strings.Contains(err.Error(), revoked.Token) {
			t.Errorf("error text leaks the token: %v", err)
		}
	}
	if n := srv.Stats().Requests; n != 3 {
		t.Errorf("fake saw %d requests for 3 revoked calls", n)
	}
	// A wrong app token: 403, ErrForbidden.
	bad, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: "app_token_wrong", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = bad.Transaction(ctx, akahu.Token(u.Token), tx.ID); !errors.Is(err, akahu.ErrForbidden) || !errors.As(err, &e) || e.Status != 403 {
		t.Errorf("wrong app token: err = %v, want ErrForbidden 403", err)
	}
}

// BenchmarkTransactionsWalk walks a year of one busy account from the fake
// over loopback: the client's share is the request, body read and page
// decode; the fake's rendering shares the CPU.
func BenchmarkTransactionsWalk(b *testing.B) {
	from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, nz), time.Date(2024, 12, 31, 0, 0, 0, 0, nz)
	srv := akahutest.NewServer(akahutest.Options{Seed: 1, Users: 1, AccountsPerUser: 1, From: from, To: to,
		TxPerAccountPerMonth: 1000, PendingPerAccount: -1, EmptyPageEvery: -1})
	defer srv.Close()
	c, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	u := srv.Users()[0]
	var acc string
	for _, id := range srv.AccountIDs(u.ID) {
		if info, _ := srv.Account(id); info.HasTransactions {
			acc = id
		}
	}
	if acc == "" {
		b.Skip("no account with transactions")
	}
	w := akahu.LocalDates(from, to, nz)
	items, pages := 0, 0
	for b.Loop() {
		err := c.Transactions(context.Background(), akahu.Token(u.Token), acc, w, func(p akahu.Page) error {
			items += len(p.Items)
			pages++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
}

// TestFakeAllAccountsEndpoints: one walk of GET /transactions returns exactly the
// user's settled transactions of every account (through empty pages), and GET
// /transactions/pending every account's pending items, in one request.
func TestFakeAllAccountsEndpoints(t *testing.T) {
	t.Parallel()
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, nz)
	to := time.Date(2025, 12, 31, 0, 0, 0, 0, nz)
	srv, c := newFake(t, akahutest.Options{
		Seed: 7, Users: 2, AccountsPerUser: 4, From: from, To: to,
		TxPerAccountPerMonth: 9, PageSize: 30, EmptyPageEvery: 3,
	})
	ctx := context.Background()
	w := akahu.LocalDates(from, to, nz)
	for _, u := range srv.Users() {
		user := akahu.Token(u.Token)
		before := srv.Stats().Requests
		got, err := collect(t, u.ID, func(fn func(akahu.Page) error) error {
			return c.AllTransactions(ctx, user, w, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := srv.SettledUser(u.ID, w.Start, w.End)
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("user %s: got %d transactions, fake has %d", u.ID, len(got), len(want))
		}
		for _, tx := range want {
			if !bytes.Equal(got[tx.ID], tx.JSON) {
				t.Errorf("user %s: %s missing or different", u.ID, tx.ID)
			}
		}
		pages := srv.Stats().Requests - before
		if min := int64((len(want) + 29) / 30); pages < min || pages > 2*min+1 {
			t.Errorf("user %s: %d requests for %d transactions in pages of 30", u.ID, pages, len(want))
		}

		pend, err := c.AllPending(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		var wantPend int
		for _, a := range srv.AccountIDs(u.ID) {
			wantPend += len(srv.Pending(a))
		}
		if len(pend) != wantPend || wantPend == 0 {
			t.Errorf("user %s: AllPending gave %d items, the accounts hold %d", u.ID, len(pend), wantPend)
		}
	}
	if _, err := c.AllPending(ctx, ""); !errors.Is(err, akahu.ErrBadRequest) {
		t.Errorf("AllPending without a token: %v, want ErrBadRequest", err)
	}
}
