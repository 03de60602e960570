package akahutest

import (
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func idsOf(t *testing.T, w walkResult) map[string]txFields {
	t.Helper()
	out := map[string]txFields{}
	for _, raw := range w.items {
		f := fields(t, raw)
		out[f.ID] = f
	}
	return out
}

func TestMutationsVisibleInNextWalk(t *testing.T) {
	s := NewServer(Options{Seed: 21, Users: 1, AccountsPerUser: 2, PageSize: 20})
	defer s.Close()
	u := s.Users()[0]
	acc := s.AccountIDs(u.ID)[0]
	path := "/accounts/" + acc + "/transactions"
	from, to := "2024-11-01", "2026-12-01"
	before := walk(t, s, u.Token, path, from, to)
	beforeIDs := idsOf(t, before)
	all := s.Settled(acc, time.Time{}, time.Time{})
	if len(all) != len(before.items) || s.TotalSettled(acc) != len(all) {
		t.Fatalf("walk %d, Settled %d, TotalSettled %d", len(before.items), len(all), s.TotalSettled(acc))
	}
	del, repl, moved, renamed := all[10], all[20], all[30], all[40]

	if err := s.DeleteTransaction(del.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTransaction(del.ID); !errors.Is(err, ErrUnknownTransaction) {
		t.Fatalf("second delete: %v", err)
	}
	newID, err := s.ReplaceID(repl.ID)
	if err != nil || newID == repl.ID || !strings.HasPrefix(newID, "trans_") || len(newID) != len(repl.ID) {
		t.Fatalf("ReplaceID = %q, %v", newID, err)
	}
	// move into the next local month
	local := moved.Date.In(auckland)
	target := time.Date(local.Year(), local.Month()+1, 1, 0, 0, 0, 0, auckland)
	if err := s.MoveDate(moved.ID, target); err != nil {
		t.Fatal(err)
	}
	const desc = "Renamed \"by\" the bank \\ Ōhākune ☕\n"
	if err := s.SetDescription(renamed.ID, desc); err != nil {
		t.Fatal(err)
	}
	addDate := time.Date(2025, 6, 30, 0, 0, 0, 0, auckland)
	added := s.AddTransaction(acc, addDate, "1234567.89", "Lotto 🎉")
	pendingBefore := s.Pending(acc)
	settled, err := s.SettlePending(acc)
	if err != nil {
		t.Fatal(err)
	}

	after := walk(t, s, u.Token, path, from, to)
	got := idsOf(t, after)
	if len(after.items) != len(before.items)+1 { // -1 deleted, +1 added, +1 settled
		t.Fatalf("after: %d items, before %d", len(after.items), len(before.items))
	}
	if _, ok := got[del.ID]; ok {
		t.Error("deleted id still served")
	}
	if _, ok := got[repl.ID]; ok {
		t.Error("replaced id still served")
	}
	if n, ok := got[newID]; !ok {
		t.Error("replacement id not served")
	} else {
		o := beforeIDs[repl.ID]
		if n.Date != o.Date || n.Amount != o.Amount || n.Desc != o.Desc || n.UpdatedAt <= o.UpdatedAt {
			t.Errorf("replacement content %+v, original %+v", n, o)
		}
	}
	if m := got[moved.ID]; m.Date != iso(target) || m.UpdatedAt <= beforeIDs[moved.ID].UpdatedAt {
		t.Errorf("moved: date %s (want %s) updated %s (was %s)", m.Date, iso(target), m.UpdatedAt, beforeIDs[moved.ID].UpdatedAt)
	}
	if r := got[renamed.ID]; r.Desc != desc || r.UpdatedAt <= beforeIDs[renamed.ID].UpdatedAt || r.Date != beforeIDs[renamed.ID].Date {
		t.Errorf("renamed: %+v", r)
	}
	if a := got[added]; a.Amount != "1234567.89" || a.Date != "2025-06-29T12:00:00.000Z" || a.Desc != "Lotto 🎉" {
		t.Errorf("added: %+v", a)
	}
	sp := fields(t, pendingBefore[0])
	if st, ok := got[settled]; !ok || st.Date != sp.Date || st.Desc != sp.Desc || strings.Trim(string(sp.Amount), `"`) != "" && centsOf(t, string(st.Amount)) != centsOf(t, strings.Trim(string(sp.Amount), `"`)) {
		t.Errorf("settled pending %+v from %s", st, pendingBefore[0])
	}
	if n := len(s.Pending(acc)); n != len(pendingBefore)-1 {
		t.Errorf("pending after settle: %d, before %d", n, len(pendingBefore))
	}
	// the move is visible per month window: gone from the old month, present in the new
	oldMonth := walk(t, s, u.Token, path, iso(time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, auckland).Add(-time.Millisecond)), iso(target.Add(-time.Millisecond)))
	newMonth := walk(t, s, u.Token, path, iso(target.Add(-time.Millisecond)), iso(target.AddDate(0, 1, 0).Add(-time.Millisecond)))
	if _, ok := idsOf(t, oldMonth)[moved.ID]; ok {
		t.Error("moved id still in its old month")
	}
	if _, ok := idsOf(t, newMonth)[moved.ID]; !ok {
		t.Error("moved id not in its new month")
	}
	// order is still newest first with id ties, and equal to Settled
	want := s.Settled(acc, mustTime(t, from), mustTime(t, to))
	for i := range want {
		if string(want[i].JSON) != string(after.items[i]) {
			t.Fatalf("item %d differs from Settled after mutations", i)
		}
	}
	// scripted transactions can be mutated again
	if err := s.MoveDate(added, addDate.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTransaction(added); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDescription(added, "x"); !errors.Is(err, ErrUnknownTransaction) {
		t.Fatalf("mutating a deleted scripted id: %v", err)
	}
	for _, bad := range []string{"trans_nope", "", "trans_" + strings.Repeat("z", 25), del.ID[:len(del.ID)-1] + "0"} {
		if _, err := s.ReplaceID(bad); !errors.Is(err, ErrUnknownTransaction) {
			t.Errorf("ReplaceID(%q): %v", bad, err)
		}
	}
	for range pendingBefore[1:] {
		if _, err := s.SettlePending(acc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SettlePending(acc); !errors.Is(err, ErrNoPending) {
		t.Fatalf("settling with no pending: %v", err)
	}
	if _, err := s.SettlePending("acc_nope"); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("settling unknown account: %v", err)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	tt, ok := ParseTime(s)
	if !ok {
		t.Fatalf("ParseTime(%q)", s)
	}
	return tt
}

func centsOf(t testing.TB, s string) int64 {
	t.Helper()
	c, ok := parseCents(s)
	if !ok {
		t.Fatalf("amount %q is not decimal text with at most 2 decimals", s)
	}
	return c
}

func TestSumSettledMatchesServedAmounts(t *testing.T) {
	f := New(Options{Seed: 8, Users: 1, AccountsPerUser: 1})
	acc := f.AccountIDs(f.Users()[0].ID)[0]
	start, end := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
	var sum int64
	for _, tx := range f.Settled(acc, start, end) {
		var v struct {
			Amount json.Number `json:"amount"`
		}
		if err := json.Unmarshal(tx.JSON, &v); err != nil {
			t.Fatal(err)
		}
		if string(v.Amount) != tx.Amount {
			t.Fatalf("Txn.Amount %q, JSON %q", tx.Amount, v.Amount)
		}
		sum += centsOf(t, tx.Amount)
	}
	if got := f.SumSettled(acc, start, end); got != centsText(sum) {
		t.Fatalf("SumSettled %s, summed %s", got, centsText(sum))
	}
}

func TestConcurrentWalksAndMutations(t *testing.T) {
	s := NewServer(Options{Seed: 13, Users: 2, PageSize: 50})
	defer s.Close()
	users := s.Users()
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2; i++ {
				q := url.Values{"start": {"2025-06-01"}, "end": {"2026-06-01"}}
				for {
					r := get(t, s, u.Token, "/transactions", q)
					if r.status == 401 && u.ID == users[1].ID {
						return // revoked mid-walk, as scripted
					}
					var p pageBody
					if err := json.Unmarshal(r.body, &p); r.status != 200 || err != nil || p.Cursor == nil {
						t.Errorf("status %d err %v", r.status, err)
						return
					}
					if p.Cursor.Next == nil {
						break
					}
					q.Set("cursor", *p.Cursor.Next)
				}
			}
		}()
	}
	acc := s.AccountIDs(users[0].ID)[0]
	for i, tx := range s.Settled(acc, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))[:40] {
		switch i % 4 {
		case 0:
			_ = s.DeleteTransaction(tx.ID)
		case 1:
			_, _ = s.ReplaceID(tx.ID)
		case 2:
			_ = s.MoveDate(tx.ID, tx.Date.AddDate(0, 0, -3))
		case 3:
			s.AddTransaction(acc, tx.Date, "-0.1", "concurrent")
		}
	}
	s.RevokeUser(users[1].ID)
	wg.Wait()
	// after the dust settles, a walk equals the ground truth
	w := walk(t, s, users[0].Token, "/transactions", "2025-06-01", "2026-06-01")
	want := s.SettledUser(users[0].ID, mustTime(t, "2025-06-01"), mustTime(t, "2026-06-01"))
	if len(w.items) != len(want) {
		t.Fatalf("walk %d, SettledUser %d", len(w.items), len(want))
	}
}

// TestChangesAdvanceUpdatedAt: the generated history carries no stamp later than its
// last day (what Akahu knew by then), every change of a transaction serves a later
// updated_at, also for the latest-stamped ones; SetClock moves later changes after a
// time.
func TestChangesAdvanceUpdatedAt(t *testing.T) {
	s := NewServer(Options{Seed: 5, Users: 1, AccountsPerUser: 4, TxPerAccountPerMonth: 90})
	defer s.Close()
	to := s.Options().To
	known := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, to.Location()).Add(-time.Millisecond)
	var all []Txn
	for _, acc := range s.AccountIDs(s.Users()[0].ID) {
		for _, tx := range s.Settled(acc, time.Time{}, time.Time{}) {
			if tx.UpdatedAt.After(known) {
				t.Errorf("%s updated %s: after the history's last day (%s)", tx.ID, tx.UpdatedAt, known)
			}
			all = append(all, tx)
		}
	}
	// The latest-stamped transactions: enrichment up to a week after posting puts
	// those of the last days at the end of the history.
	sort.Slice(all, func(i, j int) bool { return all[i].UpdatedAt.After(all[j].UpdatedAt) })
	if len(all) < 8 {
		t.Fatalf("only %d transactions", len(all))
	}
	late := all[:8]
	if !late[0].UpdatedAt.Equal(known) {
		t.Errorf("latest generated updated_at %s, want the clamp at %s", late[0].UpdatedAt, known)
	}
	served := func(tx Txn) Txn {
		t.Helper()
		for _, got := range s.Settled(tx.AccountID, time.Time{}, time.Time{}) {
			if got.ID == tx.ID {
				return got
			}
		}
		t.Fatalf("%s no longer served", tx.ID)
		return Txn{}
	}
	changes := []struct {
		name   string
		change func(tx Txn) error
	}{
		{"SetDescription", func(tx Txn) error { return s.SetDescription(tx.ID, "changed") }},
		{"MoveDate", func(tx Txn) error { return s.MoveDate(tx.ID, tx.Date.Add(-24*time.Hour)) }},
		{"SetDescription twice", func(tx Txn) error {
			if err := s.SetDescription(tx.ID, "once"); err != nil {
				return err
			}
			return s.SetDescription(tx.ID, "twice")
		}},
	}
	for i, c := range changes {
		tx := late[i]
		if err := c.change(tx); err != nil {
			t.Fatal(err)
		}
		if got := served(tx); !got.UpdatedAt.After(tx.UpdatedAt) {
			t.Errorf("%s: updated_at %s, was %s", c.name, got.UpdatedAt, tx.UpdatedAt)
		}
	}
	at := s.Options().To.AddDate(0, 0, 30)
	s.SetClock(at)
	id := s.AddTransaction(late[3].AccountID, s.Options().To, "1.00", "after the clock")
	if got := served(Txn{ID: id, AccountID: late[3].AccountID}); !got.UpdatedAt.After(at) {
		t.Errorf("added after SetClock(%s): updated_at %s", at, got.UpdatedAt)
	}
	if err := s.SetDescription(late[3].ID, "after the clock"); err != nil {
		t.Fatal(err)
	}
	if got := served(late[3]); !got.UpdatedAt.After(at) {
		t.Errorf("changed after SetClock(%s): updated_at %s", at, got.UpdatedAt)
	}
}
