package duckdb_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// changes records what scriptChanges did to the fake, for the assertions.
type changes struct {
	account      string
	deleted      []akahutest.Txn // DeleteTransaction, and the old side of ReplaceID
	replacedBy   string          // the new id of ReplaceID
	replacedFrom akahutest.Txn
	described    string // id whose description changed
	description  string
	moved        map[string]time.Time // id → new local date (midnight)
	added        string
	settled      string
}

// localMidnight is 00:00 of y-m-d in Pacific/Auckland.
func localMidnight(loc *time.Location, y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// scriptChanges changes the fake like a bank overnight, inside the last 30 days so an
// incremental run (30-day lookback) re-reads every change: a deletion on each user,
// a re-identified id, a new description, a move back and a move forward across the
// month boundary, a new transaction and a settled pending one. One more move brings a
// transaction from six months back into the current month: the old partition is not
// re-read, yet the id must not stay there too (invariant 2).
func scriptChanges(t *testing.T, d *dataset) changes {
	t.Helper()
	to := d.srv.Options().To.In(d.loc)
	first := localMidnight(d.loc, to.Year(), to.Month(), 1)
	prevFrom := to.AddDate(0, 0, -28) // still inside the lookback, in the previous month
	users := d.srv.Users()
	var c changes
	for _, acc := range d.srv.AccountIDs(users[0].ID) {
		cur := d.srv.Settled(acc, first.Add(-time.Millisecond), d.window.End)
		prev := d.srv.Settled(acc, prevFrom, first.Add(-time.Millisecond))
		if len(cur) >= 4 && len(prev) >= 1 && len(d.srv.Pending(acc)) > 0 {
			c.account = acc
			must(t, d.srv.DeleteTransaction(cur[0].ID))
			c.deleted = append(c.deleted, cur[0])
			newID, err := d.srv.ReplaceID(cur[1].ID)
			must(t, err)
			c.deleted = append(c.deleted, cur[1])
			c.replacedFrom, c.replacedBy = cur[1], newID
			c.described, c.description = cur[2].ID, "POS W/D Kāpiti Coast Café ☕ (corrected)"
			must(t, d.srv.SetDescription(c.described, c.description))
			// A transaction from six months back, a partition no re-run below re-reads.
			far := d.srv.Settled(acc, first.AddDate(0, -6, 0), first.AddDate(0, -5, 0))
			if len(far) == 0 {
				t.Fatalf("account %s has no transaction six months back", acc)
			}
			c.moved = map[string]time.Time{
				cur[3].ID:  first.AddDate(0, 0, -1), // back into the previous month
				prev[0].ID: first.AddDate(0, 0, 9),  // forward into this month
				far[0].ID:  first.AddDate(0, 0, 4),  // from outside the re-read window into it
			}
			for id, date := range c.moved {
				must(t, d.srv.MoveDate(id, date))
			}
			c.added = d.srv.AddTransaction(acc, to, "-42.5", "New World Thorndon")
			c.settled, err = d.srv.SettlePending(acc)
			must(t, err)
			break
		}
	}
	if c.account == "" {
		t.Fatal("no account of the first user has enough recent transactions and a pending one")
	}
	// A deletion on the other user too.
	for _, acc := range d.srv.AccountIDs(users[1].ID) {
		if recent := d.srv.Settled(acc, first.Add(-time.Millisecond), d.window.End); len(recent) > 0 {
			must(t, d.srv.DeleteTransaction(recent[len(recent)-1].ID))
			c.deleted = append(c.deleted, recent[len(recent)-1])
			break
		}
	}
	if len(c.deleted) != 3 {
		t.Fatalf("scripted %d deletions, want 3", len(c.deleted))
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestIncrementalChanges backfills, changes the fake, runs again and checks what DuckDB
// sees: deletions gone from transactions and recorded once (invariant 3), moved ids once
// in their new month (invariant 2), changed values, and the whole history again equal to
// the fake (invariant 1).
func TestIncrementalChanges(t *testing.T) {
	tests := []struct {
		name       string
		start, end func(to time.Time) string
	}{
		{name: "incremental from the last manifest", start: nil, end: nil},
		{name: "explicit range over the changes",
			start: func(to time.Time) string { return to.AddDate(0, -1, -5).Format(time.DateOnly) },
			end:   func(to time.Time) string { return to.Format(time.DateOnly) }},
		{name: "explicit range over the whole history",
			start: func(time.Time) string { return "" }, // keeps the backfill's Start
			end:   func(to time.Time) string { return to.Format(time.DateOnly) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDataset(t)
			m1 := d.run(t)
			c := scriptChanges(t, d)

			to := d.srv.Options().To
			switch {
			case tc.start == nil:
				d.cfg.Start, d.cfg.End = "", ""
			default:
				if s := tc.start(to); s != "" {
					d.cfg.Start = s
				}
				d.cfg.End = tc.end(to)
			}
			m2 := d.run(t)
			if m2.RunID <= m1.RunID {
				t.Fatalf("second run id %s does not sort after the first %s", m2.RunID, m1.RunID)
			}
			db := openDuckDB(t, "UTC")
			checkAfterChanges(t, d, db, c, m2)
		})
	}
}

func checkAfterChanges(t *testing.T, d *dataset, db *sql.DB, c changes, m2 *pipeline.Manifest) {
	t.Helper()
	tx, del := d.transactions(), d.deletions()

	if dup := queryInt(t, db, "SELECT count(*) - count(DISTINCT id) FROM "+tx); dup != 0 {
		t.Errorf("%d duplicate ids in transactions", dup)
	}
	if got, want := queryInt(t, db, "SELECT count(*) FROM "+tx), int64(d.settledCount()); got != want {
		t.Errorf("count(*) = %d, want the fake's %d", got, want)
	}
	for _, acc := range d.accountIDs() {
		want := d.srv.SumSettled(acc, d.window.Start, d.window.End)
		var equal bool
		var got string
		if err := db.QueryRow(`SELECT coalesce(sum(amount), 0) = CAST(? AS DECIMAL(38,4)), coalesce(sum(amount), 0)::VARCHAR FROM `+tx+
			` WHERE account_id = ?`, want, acc).Scan(&equal, &got); err != nil {
			t.Fatal(err)
		}
		if !equal {
			t.Errorf("account %s: sum(amount) = %s, want %s", acc, got, want)
		}
		checkRows(t, d, db, acc, d.srv.Settled(acc, d.window.Start, d.window.End))
	}

	// Deleted ids: gone from transactions, exactly one tombstone each, by this run.
	for _, gone := range c.deleted {
		if n := queryInt(t, db, "SELECT count(*) FROM "+tx+" WHERE id = ?", gone.ID); n != 0 {
			t.Errorf("deleted %s still in transactions %d time(s)", gone.ID, n)
		}
		var n int64
		var reason, by, amount sql.NullString
		err := db.QueryRow(`SELECT count(*), any_value(deleted_reason), any_value(deleted_by_run), any_value(amount)::VARCHAR
			FROM `+del+` WHERE id = ?`, gone.ID).Scan(&n, &reason, &by, &amount)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("deleted %s has %d tombstones, want 1", gone.ID, n)
			continue
		}
		if reason.String != "deleted" || by.String != m2.RunID || !decimalEqual(amount.String, gone.Amount) {
			t.Errorf("tombstone of %s = (%s, %s, %s), want (deleted, %s, %s)", gone.ID, reason.String, by.String, amount.String, m2.RunID, gone.Amount)
		}
	}
	if n := queryInt(t, db, "SELECT count(*) FROM "+del); n != int64(len(c.deleted)) {
		t.Errorf("deletions hold %d tombstones, want %d (a move is not a deletion)", n, len(c.deleted))
	}
	if n := queryInt(t, db, "SELECT count(*) - count(DISTINCT id) FROM "+del); n != 0 {
		t.Errorf("%d ids with more than one tombstone", n)
	}

	// Moved ids: once, in the partition of the new local date.
	for id, date := range c.moved {
		var n int64
		var month, local sql.NullString
		if err := db.QueryRow(`SELECT count(*), any_value(month), any_value(date_local)::VARCHAR FROM `+tx+` WHERE id = ?`, id).
			Scan(&n, &month, &local); err != nil {
			t.Fatal(err)
		}
		if n != 1 || month.String != date.Format("2006-01") || local.String != date.Format(time.DateOnly) {
			t.Errorf("moved %s: %d row(s), month %q, date_local %q; want 1 row in %s on %s",
				id, n, month.String, local.String, date.Format("2006-01"), date.Format(time.DateOnly))
		}
		if n := queryInt(t, db, "SELECT count(*) FROM "+del+" WHERE id = ?", id); n != 0 {
			t.Errorf("moved %s has %d tombstone(s); a move is not a deletion", id, n)
		}
	}

	// Changed, re-identified, added and settled transactions.
	if got := queryStrings(t, db, "SELECT description FROM "+tx+" WHERE id = ?", c.described); len(got) != 1 || got[0] != c.description {
		t.Errorf("description of %s = %q, want [%q]", c.described, got, c.description)
	}
	for _, want := range []struct{ id, amount, desc string }{
		{c.replacedBy, c.replacedFrom.Amount, c.replacedFrom.Description},
		{c.added, "-42.5", "New World Thorndon"},
	} {
		var n int64
		var amount, desc sql.NullString
		if err := db.QueryRow(`SELECT count(*), any_value(amount)::VARCHAR, any_value(description) FROM `+tx+` WHERE id = ? AND account_id = ?`,
			want.id, c.account).Scan(&n, &amount, &desc); err != nil {
			t.Fatal(err)
		}
		if n != 1 || !decimalEqual(amount.String, want.amount) || desc.String != want.desc {
			t.Errorf("%s: %d row(s) amount %s %q; want 1 row amount %s %q", want.id, n, amount.String, desc.String, want.amount, want.desc)
		}
	}
	if n := queryInt(t, db, "SELECT count(*) FROM "+tx+" WHERE id = ?", c.settled); n != 1 {
		t.Errorf("settled pending %s: %d row(s), want 1", c.settled, n)
	}

	// The run's own account of it.
	want := pipeline.Counts{Inserted: 3, Updated: 1, Moved: int64(len(c.moved)), Deleted: int64(len(c.deleted))}
	got := m2.Counts
	if got.Inserted != want.Inserted || got.Updated != want.Updated || got.Moved != want.Moved || got.Deleted != want.Deleted {
		t.Errorf("manifest counts inserted/updated/moved/deleted = %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Inserted, got.Updated, got.Moved, got.Deleted, want.Inserted, want.Updated, want.Moved, want.Deleted)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM "+del+" WHERE deleted_by_run = ?", m2.RunID); n != m2.Counts.Deleted || n != int64(len(m2.Deleted)) {
		t.Errorf("%d tombstones by run %s; manifest counts %d and lists %d", n, m2.RunID, m2.Counts.Deleted, len(m2.Deleted))
	}
}
