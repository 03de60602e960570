package akahutest

import (
	"testing"
	"time"
)

// TestDenseEvery checks the density mix: every DenseEvery-th account (by global
// index) is drawn at DenseTxPerAccountPerMonth, the others exactly as without the
// option, and the population is the same for the same options.
func TestDenseEvery(t *testing.T) {
	base := Options{Seed: 5, Users: 10, AccountsPerUser: 3, TxPerAccountPerMonth: 1}
	mixed := base
	mixed.DenseEvery, mixed.DenseTxPerAccountPerMonth = 4, 100
	plainPop, a, b := New(base), New(mixed), New(mixed)
	idx, dense, sparse := 0, 0, 0
	for _, u := range a.Users() {
		for _, id := range a.AccountIDs(u.ID) {
			info, _ := a.Account(id)
			n := a.TotalSettled(id)
			if m := b.TotalSettled(id); m != n {
				t.Errorf("account %d: %d then %d transactions for the same options", idx, n, m)
			}
			isDense := idx%4 == 3
			switch {
			case !info.HasTransactions:
				if n != 0 {
					t.Errorf("account %d has no TRANSACTIONS attribute but %d transactions", idx, n)
				}
			case isDense:
				dense++
				// ~100 a month over 24 months.
				if n < 1800 || n > 3000 {
					t.Errorf("dense account %d: %d transactions, want ~2400", idx, n)
				}
			default:
				sparse++
				if want := plainPop.TotalSettled(id); n != want {
					t.Errorf("sparse account %d: %d transactions, %d without the mix", idx, n, want)
				}
				if n > 60 {
					t.Errorf("sparse account %d: %d transactions, want ~24", idx, n)
				}
			}
			idx++
		}
	}
	if dense == 0 || sparse == 0 {
		t.Fatalf("mix has %d dense and %d sparse accounts with transactions", dense, sparse)
	}
}

// TestCountSettled checks the ground-truth count against the transactions served,
// over windows that cut days and months, before and after scripted changes.
func TestCountSettled(t *testing.T) {
	f := New(Options{Seed: 9, Users: 2, AccountsPerUser: 2, TxPerAccountPerMonth: 30})
	acc := f.AccountIDs(f.Users()[0].ID)[0]
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, auckland) }
	windows := []struct {
		name       string
		start, end time.Time
	}{
		{"whole history", time.Time{}, time.Time{}},
		{"one month", day(2026, 3, 1).Add(-time.Millisecond), day(2026, 4, 1).Add(-time.Millisecond)},
		{"start exclusive at midnight", day(2026, 3, 1), day(2026, 3, 31)},
		{"open start", time.Time{}, day(2025, 6, 15)},
		{"open end", day(2026, 10, 2), time.Time{}},
		{"empty", day(2026, 5, 1), day(2026, 5, 1)},
		{"before the history", day(2020, 1, 1), day(2021, 1, 1)},
	}
	check := func(stage string) {
		t.Helper()
		for _, w := range windows {
			if got, want := f.CountSettled(acc, w.start, w.end), len(f.Settled(acc, w.start, w.end)); got != want {
				t.Errorf("%s, %s: CountSettled %d, Settled has %d", stage, w.name, got, want)
			}
		}
	}
	check("generated")
	march := f.Settled(acc, day(2026, 3, 1).Add(-time.Millisecond), day(2026, 4, 1).Add(-time.Millisecond))
	if len(march) < 3 {
		t.Fatalf("March has %d transactions", len(march))
	}
	before := f.CountSettled(acc, time.Time{}, time.Time{})
	if err := f.DeleteTransaction(march[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.MoveDate(march[1].ID, day(2026, 10, 5)); err != nil {
		t.Fatal(err)
	}
	f.AddTransaction(acc, day(2026, 3, 10), "-12.34", "scripted")
	check("changed")
	if got := f.CountSettled(acc, time.Time{}, time.Time{}); got != before {
		t.Errorf("after one delete and one add: %d transactions, want %d", got, before)
	}
	if got := f.CountSettled("acc_unknown", time.Time{}, time.Time{}); got != 0 {
		t.Errorf("unknown account: %d", got)
	}
}
