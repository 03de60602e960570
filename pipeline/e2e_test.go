package pipeline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var auckland, _ = time.LoadLocation("Pacific/Auckland")

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, auckland) }

// harness runs the pipeline against the fake Akahu and checks the dataset.
type harness struct {
	t      testing.TB
	srv    *akahutest.Server
	client *akahu.Client
	b      bucket.Bucket
	tokens []akahu.Token
	opts   akahutest.Options
	now    func() time.Time
	shift  atomic.Int64 // nanoseconds added to the clock (days passing between runs)
	// accountWalks sets Config.AccountWalks: for tests whose faults target one
	// account's endpoints, which a walk over a user's accounts does not call.
	accountWalks bool
	// heldBytes sets Config.HeldBytes (heldCases).
	heldBytes int64
	// mem is every run's Config.Memory (a poisonAllocator unless a test sets
	// another): what the runs allocate, they free by the end of the test, also when
	// a run fails (checked at cleanup).
	mem countingAllocator
}

// heldCases runs a test with the partitions held for the reconcile stage in memory
// (the default budget) and with every one parked in the spill file (expectParked
// checks a run's manifest for it).
func heldCases(t *testing.T, test func(t *testing.T, heldBytes int64)) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"held in memory", 0}, {"held parked", -1}} {
		t.Run(c.name, func(t *testing.T) { test(t, c.bytes) })
	}
}

// expectParked checks a run's parking of held partitions against its harness's
// budget: none with the default budget (the tests' partitions are small), at least
// one when every one is parked.
func (h *harness) expectParked(m *pipeline.Manifest) {
	h.t.Helper()
	if parked := m.Spill.HeldParked; (h.heldBytes < 0) != (parked > 0) {
		h.t.Errorf("run %s parked %d held partitions (%d spill bytes) with HeldBytes %d", m.RunID, parked, m.Spill.Bytes, h.heldBytes)
	}
}

func smallPopulation() akahutest.Options {
	return akahutest.Options{Seed: 7, Users: 2, AccountsPerUser: 4, TxPerAccountPerMonth: 25,
		From: date(2025, 9, 1), To: date(2026, 2, 28), PageSize: 50}
}

func newHarness(t testing.TB, b bucket.Bucket, opts akahutest.Options) *harness {
	srv := akahutest.NewServer(opts)
	t.Cleanup(srv.Close)
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: srv.Client(),
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, client: client, b: b, opts: srv.Options(), mem: &poisonAllocator{}}
	t.Cleanup(func() {
		if n := h.mem.unfreed(); n != 0 {
			t.Errorf("the runs left %d bytes of Arrow memory unreleased (Config.Memory need not be memory the collector reclaims)", n)
		}
	})
	for _, u := range srv.Users() {
		h.tokens = append(h.tokens, akahu.Token(u.Token))
	}
	// The clock starts the morning after the fake's last posting and advances in real
	// time: run ids begin with it and must keep their order.
	to := h.opts.To
	base, began := time.Date(to.Year(), to.Month(), to.Day()+1, 9, 0, 0, 0, auckland), time.Now()
	var mu sync.Mutex
	var last time.Time
	h.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n := base.Add(time.Since(began) + time.Duration(h.shift.Load()))
		if !n.After(last) {
			n = last.Add(time.Millisecond)
		}
		last = n
		return n
	}
	return h
}

// config is the run's configuration. Its memory is a poisonAllocator: nothing a run
// keeps may point into a released record.
func (h *harness) config(start, end time.Time) pipeline.Config {
	cfg := pipeline.Config{Out: h.b, Source: h.client, Users: h.tokens, Now: h.now, Workers: 4, LockWait: 30 * time.Second,
		AccountWalks: h.accountWalks, HeldBytes: h.heldBytes, Memory: h.mem}
	if !start.IsZero() {
		cfg.Start, cfg.End = start.Format(time.DateOnly), end.Format(time.DateOnly)
	}
	return cfg
}

func (h *harness) run(start, end time.Time) *pipeline.Manifest {
	h.t.Helper()
	m, err := pipeline.Run(context.Background(), h.config(start, end))
	if err != nil {
		h.t.Fatalf("run %s..%s: %v", start.Format(time.DateOnly), end.Format(time.DateOnly), err)
	}
	return m
}

// expectFaithful checks invariant 1 for every account over [start, end] and
// invariant 2 over the whole dataset; it returns the rows by id.
func (h *harness) expectFaithful(start, end time.Time) map[string]txRow {
	h.t.Helper()
	t := h.t.(*testing.T)
	rows := byID(t, readRows(t, h.b, "transactions/"))
	w := akahu.LocalDates(start, end, auckland)
	got := map[string]map[string]txRow{}
	for _, r := range rows {
		if r.DateLocal < start.Format(time.DateOnly) || r.DateLocal > end.Format(time.DateOnly) {
			continue
		}
		if got[r.Account] == nil {
			got[r.Account] = map[string]txRow{}
		}
		got[r.Account][r.ID] = r
		if local := r.Date.In(auckland).Format(time.DateOnly); local != r.DateLocal {
			t.Errorf("%s: date %s is local %s but date_local is %s", r.ID, r.Date, local, r.DateLocal)
		}
		if want := "month=" + r.DateLocal[:7] + "/"; !contains(r.Object, want) {
			t.Errorf("%s dated %s filed in %s", r.ID, r.DateLocal, r.Object)
		}
	}
	for _, u := range h.srv.Users() {
		for _, acct := range h.srv.AccountIDs(u.ID) {
			want := h.srv.Settled(acct, w.Start, w.End)
			if info, _ := h.srv.Account(acct); !info.HasTransactions && len(want) > 0 {
				t.Fatalf("fake serves transactions for %s without TRANSACTIONS", acct)
			}
			have := got[acct]
			if len(have) != len(want) {
				t.Errorf("account %s: %d rows in %s..%s, Akahu has %d", acct, len(have), start.Format(time.DateOnly), end.Format(time.DateOnly), len(want))
			}
			for _, tx := range want {
				r, ok := have[tx.ID]
				switch {
				case !ok:
					t.Errorf("account %s: transaction %s (%s) missing", acct, tx.ID, tx.Date)
				case r.Amount != ratString(tx.Amount):
					t.Errorf("%s: amount %s, Akahu has %s", tx.ID, r.Amount, tx.Amount)
				case r.Description != tx.Description:
					t.Errorf("%s: description %q, Akahu has %q", tx.ID, r.Description, tx.Description)
				case !r.Date.Equal(tx.Date):
					t.Errorf("%s: date %s, Akahu has %s", tx.ID, r.Date, tx.Date)
				case r.User != u.ID:
					t.Errorf("%s: user %s, want %s", tx.ID, r.User, u.ID)
				}
			}
		}
	}
	return rows
}

func contains(s, sub string) bool { return len(sub) == 0 || (len(s) >= len(sub) && index(s, sub) >= 0) }
func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// pickAccount returns an account of the first user with transactions in both months.
func (h *harness) pickAccount(a, b time.Time) (string, []akahutest.Txn, []akahutest.Txn) {
	h.t.Helper()
	u := h.srv.Users()[0]
	for _, id := range h.srv.AccountIDs(u.ID) {
		wa := akahu.LocalDates(a, a.AddDate(0, 1, -1), auckland)
		wb := akahu.LocalDates(b, b.AddDate(0, 1, -1), auckland)
		ta, tb := h.srv.Settled(id, wa.Start, wa.End), h.srv.Settled(id, wb.Start, wb.End)
		if len(ta) >= 6 && len(tb) >= 6 {
			return id, ta, tb
		}
	}
	h.t.Fatal("no account with transactions in both months")
	return "", nil, nil
}

func newLocal(t *testing.T) bucket.Bucket {
	b, err := bucket.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRunSequence drives the scripted sequence of runs from the pipeline issue and
// checks invariants 1–4 after each.
func TestRunSequence(t *testing.T) {
	heldCases(t, func(t *testing.T, held int64) { testRunSequence(t, newLocal(t), held) })
}

func testRunSequence(t *testing.T, b bucket.Bucket, heldBytes int64) {
	testRunSequenceWith(t, b, heldBytes, nil)
}

// testRunSequenceWith is testRunSequence with the runs' memory mem (nil: the
// harness's poisonAllocator).
func testRunSequenceWith(t *testing.T, b bucket.Bucket, heldBytes int64, mem countingAllocator) {
	h := newHarness(t, b, smallPopulation())
	h.heldBytes = heldBytes
	if mem != nil {
		h.mem = mem
	}
	from, to := h.opts.From, h.opts.To
	total := 0
	for _, u := range h.srv.Users() {
		for _, id := range h.srv.AccountIDs(u.ID) {
			w := akahu.LocalDates(from, to, auckland)
			total += len(h.srv.Settled(id, w.Start, w.End))
		}
	}

	// 1. Backfill.
	m := h.run(from, to)
	h.expectFaithful(from, to)
	if m.Counts.Inserted != int64(total) || m.Counts.Deleted != 0 {
		t.Fatalf("backfill counts %+v, want %d inserted and nothing deleted", m.Counts, total)
	}
	if len(m.Ranges) == 0 || m.Uploads.Objects == 0 {
		t.Fatalf("backfill manifest records no coverage or uploads: %+v", m)
	}

	// 2. Idempotent re-run: no data byte changes, nothing uploaded, nothing deleted.
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/")
	m = h.run(from, to)
	after := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/")
	if m.Uploads.Objects != 0 || m.Uploads.Bytes != 0 || m.Counts.Deleted != 0 || m.Counts.Inserted != 0 || m.Counts.Unchanged != int64(total) {
		t.Fatalf("re-run over unchanged data: uploads %+v counts %+v", m.Uploads, m.Counts)
	}
	if len(before) != len(after) {
		t.Fatalf("re-run changed the object set: %d → %d objects", len(before), len(after))
	}
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("re-run rewrote %s", name)
		}
	}

	// 3. Changes, with a run over February only: the moved transaction's old
	// partition (January) is outside the window.
	jan, feb := date(2026, 1, 1), date(2026, 2, 1)
	acct, janTx, febTx := h.pickAccount(jan, feb)
	deleted := febTx[0].ID
	replaced := febTx[1].ID
	changed := febTx[2].ID
	moved := janTx[0].ID
	if err := h.srv.DeleteTransaction(deleted); err != nil {
		t.Fatal(err)
	}
	newID, err := h.srv.ReplaceID(replaced)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetDescription(changed, "Countdown Ōtaki — corrected 🧾"); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.MoveDate(moved, date(2026, 2, 3)); err != nil {
		t.Fatal(err)
	}
	added := h.srv.AddTransaction(acct, date(2026, 2, 14), "0.1", "Koha")
	added2 := h.srv.AddTransaction(acct, date(2026, 2, 14), "0.2", "Koha")
	m = h.run(feb, to)
	h.expectParked(m)
	rows := h.expectFaithful(from, to)
	for _, id := range []string{deleted, replaced} {
		if _, ok := rows[id]; ok {
			t.Errorf("deleted %s still in transactions/", id)
		}
	}
	for _, id := range []string{newID, added, added2, moved, changed} {
		if _, ok := rows[id]; !ok {
			t.Errorf("%s missing from transactions/", id)
		}
	}
	if r := rows[moved]; r.DateLocal != "2026-02-03" {
		t.Errorf("moved transaction dated %s in %s", r.DateLocal, r.Object)
	}
	if sum := new(ratSum).add(rows[added].Amount).add(rows[added2].Amount); sum.String() != "3/10" {
		t.Errorf("0.1 + 0.2 summed from the dataset = %s, want exactly 3/10", sum)
	}
	want := pipeline.Counts{Inserted: 3, Updated: 1, Moved: 1, Deleted: 2}
	if m.Counts.Inserted != want.Inserted || m.Counts.Updated != want.Updated || m.Counts.Moved != want.Moved || m.Counts.Deleted != want.Deleted {
		t.Errorf("counts %+v, want inserted 3 updated 1 moved 1 deleted 2", m.Counts)
	}
	expectTombstones(t, b, map[string]int{deleted: 1, replaced: 1})
	if len(m.Deleted) != 2 {
		t.Errorf("manifest lists %d deletions, want 2: %+v", len(m.Deleted), m.Deleted)
	}
	// The manifest's tombstones carry the rows' last values (read from records the
	// run has released by the time it writes the manifest).
	for _, d := range m.Deleted {
		if (d.ID != deleted && d.ID != replaced) || d.AccountID != acct || d.Reason != "deleted" {
			t.Errorf("manifest tombstone %+v: want %s or %s of account %s, deleted", d, deleted, replaced, acct)
		}
	}

	// 4. The same run again records no deletion twice and writes nothing.
	m = h.run(feb, to)
	if m.Counts.Deleted != 0 || m.Uploads.Objects != 0 {
		t.Errorf("repeat run: counts %+v uploads %+v", m.Counts, m.Uploads)
	}
	expectTombstones(t, b, map[string]int{deleted: 1, replaced: 1})

	// 4b. A date moved out of the run's window (February → January, run over February
	// only) is a move found in the neighbouring month, not a deletion.
	outward := febTx[3].ID
	if err := h.srv.MoveDate(outward, date(2026, 1, 30)); err != nil {
		t.Fatal(err)
	}
	m = h.run(feb, to)
	rows = h.expectFaithful(from, to)
	if r, ok := rows[outward]; !ok || r.DateLocal != "2026-01-30" {
		t.Errorf("transaction moved to January: present %v, dated %s in %s", ok, r.DateLocal, r.Object)
	}
	if m.Counts.Moved != 1 || m.Counts.Deleted != 0 || m.Counts.Inserted != 0 {
		t.Errorf("outward move: counts %+v, want 1 moved and nothing inserted or deleted", m.Counts)
	}
	expectTombstones(t, b, map[string]int{deleted: 1, replaced: 1})

	// 4c. A date moved far outside the window (February → October, run over
	// February only): Akahu still has the id, so it is a move, and October is re-read.
	far := febTx[4].ID
	if err := h.srv.MoveDate(far, date(2025, 10, 7)); err != nil {
		t.Fatal(err)
	}
	m = h.run(feb, to)
	rows = h.expectFaithful(from, to)
	if r, ok := rows[far]; !ok || r.DateLocal != "2025-10-07" {
		t.Errorf("transaction moved to October: present %v, dated %s in %s", ok, r.DateLocal, r.Object)
	}
	if m.Counts.Moved != 1 || m.Counts.Deleted != 0 {
		t.Errorf("far move: counts %+v, want 1 moved and nothing deleted", m.Counts)
	}
	expectTombstones(t, b, map[string]int{deleted: 1, replaced: 1})

	// 5. A pending transaction settles.
	pendingBefore := len(h.srv.Pending(acct))
	settledID, err := h.srv.SettlePending(acct)
	if err != nil {
		t.Fatal(err)
	}
	m = h.run(from, to)
	rows = h.expectFaithful(from, to)
	if _, ok := rows[settledID]; !ok && pendingBefore > 0 {
		t.Errorf("settled transaction %s missing", settledID)
	}
	if m.Counts.Pending != int64(countPending(h)) {
		t.Errorf("pending rows %d, fake has %d", m.Counts.Pending, countPending(h))
	}

	// 6. A revoked user is reported alone (routine: no error); its rows stay; nothing is
	// recorded as deleted.
	u2 := h.srv.Users()[1]
	h.srv.RevokeUser(u2.ID)
	m, err = pipeline.Run(context.Background(), h.config(from, to))
	if err != nil || m == nil {
		t.Fatalf("run with a revoked user: err %v, manifest %v", err, m != nil)
	}
	if m.Counts.Deleted != 0 {
		t.Errorf("revoked user caused %d deletions", m.Counts.Deleted)
	}
	var revoked bool
	for _, us := range m.Users {
		if us.Index == 2 && us.Status == "revoked" {
			revoked = true
		}
		if us.Index == 1 && us.Status != "ok" {
			t.Errorf("user 1 status %q", us.Status)
		}
	}
	if !revoked {
		t.Errorf("manifest users %+v: user 2 not revoked", m.Users)
	}
	rows = byID(t, readRows(t, b, "transactions/"))
	n := 0
	for _, r := range rows {
		if r.User == u2.ID {
			n++
		}
	}
	if n == 0 {
		t.Error("revoked user's rows were dropped by a failed run")
	}
}

type ratSum struct{ r bigRat }

func countPending(h *harness) int {
	n := 0
	for _, u := range h.srv.Users() {
		for _, id := range h.srv.AccountIDs(u.ID) {
			n += len(h.srv.Pending(id))
		}
	}
	return n
}

// expectTombstones checks invariant 3: each id appears in exactly the given number of
// tombstones in deletions/, and no other id does.
func expectTombstones(t *testing.T, b bucket.Bucket, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, r := range readRows(t, b, "deletions/") {
		got[r.ID]++
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("id %s has %d tombstones, want %d", id, got[id], n)
		}
	}
	for id, n := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected tombstone for %s (%d)", id, n)
		}
	}
}
