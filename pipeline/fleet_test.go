package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestDiscoveryOncePerFleet: a fleet of 4 shards over a layout-2 dataset (buckets by
// user) lists each user's accounts once per fleet run, not once per shard, and from
// its second run on asks /me for no known token: each shard knows from the state
// objects which users are its own.
func TestDiscoveryOncePerFleet(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 2
	h := newHarness(t, b, opts)
	fleet := func() (me, accounts int64) {
		t.Helper()
		st0 := h.srv.Stats()
		for shard := range 4 {
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Buckets, cfg.Shard, cfg.Shards = 8, shard, 4
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
		}
		st := h.srv.Stats()
		return st.ByKind["me"] - st0.ByKind["me"], st.ByKind["accounts"] - st0.ByKind["accounts"]
	}
	users := int64(len(h.tokens))
	me, accounts := fleet()
	// No token is known yet: a shard asks /me for each token no earlier shard recorded
	// (these run one after another, so later shards know the earlier shards' users).
	if accounts != users || me < users || me > 4*users {
		t.Errorf("first fleet run: %d /me and %d /accounts for %d users; want /me at most once per shard and token, /accounts once per user", me, accounts, users)
	}
	me, accounts = fleet()
	if accounts != users || me != 0 {
		t.Errorf("second fleet run: %d /me and %d /accounts for %d users; want none and one per user", me, accounts, users)
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	data, _, err := b.Get(context.Background(), "_dataset.json")
	if err != nil {
		t.Fatal(err)
	}
	var ds pipeline.Dataset
	if err := json.Unmarshal(data, &ds); err != nil || ds.LayoutVersion != 2 || ds.BucketBy != "user" {
		t.Errorf("_dataset.json %s: want layout 2 bucketed by user", data)
	}
	// Every partition file holds whole users: no user in two buckets.
	bucketOfUser := map[string]string{}
	for _, a := range mustList(t, b, "transactions/") {
		for _, r := range readRows(t, bucket.Bucket(b), a.Name) {
			bk := a.Name[len(a.Name)-11:]
			if prev, ok := bucketOfUser[r.User]; ok && prev != bk {
				t.Fatalf("user %s in %s and %s", r.User, prev, bk)
			}
			bucketOfUser[r.User] = bk
		}
	}
}

// TestLayoutOneStillWorks: a dataset an older tool created (layout 1, buckets by
// account) keeps its layout: runs read and write it as before, and its accounts keep
// their buckets.
func TestLayoutOneStillWorks(t *testing.T) {
	b := newLocal(t)
	ctx := context.Background()
	old := []byte(`{"layout_version":1,"schema_version":1,"time_zone":"Pacific/Auckland","grain":"month","buckets":4,"created_at":"2026-01-01T00:00:00Z","shards":1}`)
	if _, err := b.Put(ctx, "_dataset.json", old, bucket.Condition{DoesNotExist: true}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, smallPopulation())
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.Buckets = 4
	if _, err := pipeline.Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(h.opts.From, h.opts.To)
	data, _, _ := b.Get(ctx, "_dataset.json")
	if string(data) != string(old) {
		t.Errorf("_dataset.json rewritten: %s", data)
	}
	// Layout 1 spreads one user's accounts over buckets (8 accounts, 4 buckets).
	buckets := map[string]map[string]bool{}
	for _, a := range mustList(t, b, "transactions/") {
		for _, r := range readRows(t, bucket.Bucket(b), a.Name) {
			if buckets[r.User] == nil {
				buckets[r.User] = map[string]bool{}
			}
			buckets[r.User][a.Name[len(a.Name)-11:]] = true
		}
	}
	for u, bks := range buckets {
		if len(bks) < 2 {
			t.Errorf("user %s in %d bucket(s) of a layout-1 dataset, want its accounts spread", u, len(bks))
		}
	}
}

// countingSource counts cursor walks started and pages answered.
type countingSource struct {
	pipeline.Source
	walks, pages atomic.Int64
}

func (c *countingSource) Transactions(ctx context.Context, u akahu.Token, acct string, w akahu.Window, fn func(akahu.Page) error) error {
	c.walks.Add(1)
	return c.Source.Transactions(ctx, u, acct, w, func(p akahu.Page) error { c.pages.Add(1); return fn(p) })
}

func (c *countingSource) AllTransactions(ctx context.Context, u akahu.Token, w akahu.Window, fn func(akahu.Page) error) error {
	c.walks.Add(1)
	return c.Source.AllTransactions(ctx, u, w, func(p akahu.Page) error { c.pages.Add(1); return fn(p) })
}

// TestWalksFollowTheData: a quiet user's accounts over a year cost one walk of one
// page; a dense account's walk is split after its first page into sub-walks over
// runs of months, walked at once, for about one page more than the minimum.
func TestWalksFollowTheData(t *testing.T) {
	cases := []struct {
		name      string
		perMonth  int
		accounts  int
		wantWalks func(w int64) bool
	}{
		{"quiet user, three accounts: one walk", 1, 3, func(w int64) bool { return w == 1 }},
		{"dense account: split into sub-walks", 120, 1, func(w int64) bool { return w > 3 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := akahutest.Options{Seed: 5, Users: 1, AccountsPerUser: c.accounts, TxPerAccountPerMonth: c.perMonth,
				From: date(2025, 3, 1), To: date(2026, 2, 28), PageSize: 100, EmptyPageEvery: -1}
			h := newHarness(t, newLocal(t), opts)
			src := &countingSource{Source: h.client}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source = src
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			h.expectFaithful(h.opts.From, h.opts.To)
			w := akahu.LocalDates(h.opts.From, h.opts.To, auckland)
			minPages := int64(0)
			for _, id := range h.srv.AccountIDs(h.srv.Users()[0].ID) {
				minPages += int64(max(1, (len(h.srv.Settled(id, w.Start, w.End))+99)/100))
			}
			if c.accounts > 1 {
				minPages = int64(max(1, (len(h.srv.SettledUser(h.srv.Users()[0].ID, w.Start, w.End))+99)/100))
			}
			walks, pages := src.walks.Load(), src.pages.Load()
			if !c.wantWalks(walks) || float64(pages) > 1.25*float64(minPages)+1 {
				t.Errorf("%d walks, %d pages for a minimum of %d pages", walks, pages, minPages)
			}
			t.Logf("%d walks, %d pages, minimum %d", walks, pages, minPages)
		})
	}
}

// TestSpillEverything: with no memory budget every walk's rows wait for their
// partition in the spill file (Arrow IPC, slices of the walks' records included) and
// the dataset is the same as when they wait in memory; the spill file is gone after
// the run.
func TestSpillEverything(t *testing.T) {
	spillDir := t.TempDir()
	var contents []map[string]txRow
	// The default budget holds everything here; 64 KiB holds some rows and spills them
	// with the partition's next ones, as one record; -1 spills every walk's rows alone.
	for _, hold := range []int64{0, 64 << 10, -1} {
		b := newLocal(t)
		opts := smallPopulation()
		opts.Users = 3
		h := newHarness(t, b, opts)
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Buckets, cfg.HoldBytes, cfg.SpillDir = 2, hold, spillDir
		if _, err := pipeline.Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		contents = append(contents, h.expectFaithful(h.opts.From, h.opts.To))
	}
	for k := 1; k < len(contents); k++ {
		if len(contents[0]) == 0 || len(contents[0]) != len(contents[k]) {
			t.Fatalf("%d rows held in memory, %d with budget %d", len(contents[0]), len(contents[k]), k)
		}
		for id, r := range contents[0] {
			s := contents[k][id]
			r.RunID, s.RunID = "", "" // two runs
			if s != r {
				t.Errorf("%s differs when spilled: %+v vs %+v", id, r, s)
			}
		}
	}
	if left, _ := os.ReadDir(spillDir); len(left) != 0 {
		t.Errorf("spill files left behind: %v", left)
	}
}

// TestRunsListNoPartitions: listing transactions/ names every partition of the
// dataset (it grows with the fleet), so only a shard's first run lists it, to learn
// whether the shard has partitions; a shard that committed before does not (unless
// a possible move makes it scan its partitions), and its runs still find moves and
// deletions (the dataset stays what Akahu serves).
func TestRunsListNoPartitions(t *testing.T) {
	counted := &countingBucket{Bucket: newLocal(t), gets: map[string]int{}}
	opts := smallPopulation()
	opts.Users = 4
	h := newHarness(t, counted, opts)
	fleet := func(start, end time.Time) (lists int) {
		t.Helper()
		for shard := range 2 {
			cfg := h.config(start, end)
			cfg.Out, cfg.Buckets, cfg.Shard, cfg.Shards = counted, 4, shard, 2
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
		}
		return counted.listed("transactions/")
	}
	if n := fleet(h.opts.From, h.opts.To); n != 2 {
		t.Errorf("the fleet's first runs listed transactions/ %d times; want once a shard", n)
	}
	to := h.opts.To
	h.shift.Add(int64(24 * time.Hour))
	if n := fleet(time.Time{}, time.Time{}); n != 0 {
		t.Errorf("the fleet's daily runs listed transactions/ %d times; want none", n)
	}
	// A day later a transaction of the last month has moved to the month before and
	// another is deleted: a possible move still scans the shard's partitions (one
	// listing), and the dataset stays what Akahu serves.
	month := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	txs := h.srv.SettledUser(h.srv.Users()[0].ID, month, to.AddDate(0, 0, 1))
	if len(txs) < 2 {
		t.Fatalf("%d transactions in the last month", len(txs))
	}
	must(t, h.srv.MoveDate(txs[0].ID, month.AddDate(0, 0, -3)))
	must(t, h.srv.DeleteTransaction(txs[1].ID))
	h.shift.Add(int64(24 * time.Hour))
	if n := fleet(time.Time{}, time.Time{}); n > 2 {
		t.Errorf("the daily runs with a move listed transactions/ %d times; want at most one a shard (the presence scan)", n)
	}
	h.expectFaithful(h.opts.From, to)
}

// TestManifestLookupListsRecentRuns: a run finds its shard's newest manifest by
// listing the manifests from two days before its clock on, not every manifest the
// dataset has (a listing that grew with every run of every shard, for ever); a shard
// that has not run for weeks still finds it, and so does one whose newest run's
// clock was ahead of its own. Which manifest a run found shows in its range: a
// scheduled run starts the lookback before the newest run's end.
func TestManifestLookupListsRecentRuns(t *testing.T) {
	counted := &countingBucket{Bucket: newLocal(t), gets: map[string]int{}}
	h := newHarness(t, counted, smallPopulation())
	run := func(start, end time.Time) *pipeline.Manifest {
		t.Helper()
		m, err := pipeline.Run(context.Background(), h.config(start, end))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	startsAfter := func(m, prev *pipeline.Manifest) {
		t.Helper()
		end := min(prev.Range.End, m.Range.End) // dates: text order is date order
		want := mustDay(t, end).AddDate(0, 0, -pipeline.DefaultLookback).Format(time.DateOnly)
		if m.Range.Start != want {
			t.Errorf("run %s covers %s..%s; want it to start %s, %d days before the end of run %s (%s): the newest manifest not found?",
				m.RunID, m.Range.Start, m.Range.End, want, pipeline.DefaultLookback, prev.RunID, prev.Range.End)
		}
	}
	prev := run(h.opts.From, h.opts.To)
	counted.listedNames("_manifests/")
	for day := 1; day <= 6; day++ {
		h.shift.Add(int64(24 * time.Hour))
		m := run(time.Time{}, time.Time{})
		if n := counted.listedNames("_manifests/"); n > 2 {
			t.Errorf("daily run %d listed %d manifest names; want at most 2 (the last two days'), not all %d", day, n, day)
		}
		startsAfter(m, prev)
		prev = m
	}
	h.shift.Add(int64(40 * 24 * time.Hour)) // weeks without a run: wider listings
	m := run(time.Time{}, time.Time{})
	startsAfter(m, prev)
	prev = m
	h.shift.Add(int64(-2 * 24 * time.Hour)) // a clock two days behind the newest run's
	startsAfter(run(time.Time{}, time.Time{}), prev)
}

func mustDay(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatalf("date %q: %v", s, err)
	}
	return d
}
