package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// rangesRunner is a runner for the extraction's in-memory rows, allocating from mem.
func rangesRunner(t *testing.T, mem memory.Allocator) *runner {
	t.Helper()
	r := &runner{cfg: Config{Workers: 1}, loc: mustZone(t), b: bucket.NewMemory(), mem: mem,
		txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r.cols = newTxCols(r.txSch)
	r.spill = &spill{dir: t.TempDir(), budget: DefaultHoldBytes, mem: mem, sch: r.txSch}
	t.Cleanup(r.spill.close)
	return r
}

// accountWalk is a walk of one account over months (oldest first), one window each.
func accountWalk(a *acctRun, months []month) *walk {
	wk := &walk{user: a.user, acct: a, byAcct: map[string][]*window{},
		span: span{months[0].first(), months[len(months)-1].last()}}
	for _, m := range months {
		w := newWindow(a, m)
		wk.windows = append(wk.windows, w)
		wk.byAcct[a.acct.ID] = append(wk.byAcct[a.acct.ID], w)
	}
	return wk
}

// walkRecords builds records of the transactions txs, per rows a record, from mem.
func walkRecords(t *testing.T, mem memory.Allocator, per int, txs ...tx) []arrow.Record {
	t.Helper()
	b := schema.NewTransactionBuilder(mem, schema.Options{Location: mustZone(t), RunID: "run_new", ExtractedAt: time.Unix(0, 0)})
	defer b.Release()
	var out []arrow.Record
	for i, x := range txs {
		d, _ := time.ParseInLocation(time.DateOnly, x.day, mustZone(t))
		item := fmt.Sprintf(`{"_id":%q,"_user":"user_1","_account":%q,"_connection":"conn_1","date":%q,`+
			`"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","description":%q,"amount":%s,"type":"DEBIT"}`,
			x.id, x.acct, d.UTC().Format("2006-01-02T15:04:05.000Z"), x.desc, x.amount)
		if err := b.Append([]byte(item), "NZD"); err != nil {
			t.Fatal(err)
		}
		if (i+1)%per == 0 || i == len(txs)-1 {
			out = append(out, b.NewRecord())
		}
	}
	return out
}

// quietMonths is a quiet account's walk over n months to January 2026: one
// transaction a month, newest first as Akahu serves them, and the months oldest first.
func quietMonths(acct string, n int) ([]tx, []month) {
	var txs []tx
	var months []month
	for i := range n {
		m := month{2026, time.January}.add(i - n + 1)
		months = append(months, m)
		txs = append(txs, tx{fmt.Sprintf("trans_%s_%s", acct, m), acct, m.first().String()[:8] + "15", "-1", "quiet"})
	}
	slices.Reverse(txs)
	return txs, months
}

// rangeIDs returns the ids of a result's rows in memory, in order.
func rangeIDs(r *runner, res windowResult) []string {
	var ids []string
	for _, g := range res.rows {
		for i := g.lo; i < g.hi; i++ {
			ids = append(ids, g.rec.Column(r.cols.id).(*array.String).Value(int(i)))
		}
	}
	return ids
}

// TestSplitWalkCostsPerPartitionNotPerColumn: cutting a quiet account's two-year walk
// (a row a month) into its 25 partitions hands each partition its rows without
// building arrays for them: a record slice per contiguous run cost a few allocations
// per column (about 2,000 for this walk), most of a sparse backfill's allocations
// and an eighth of its CPU. Each partition gets exactly its month's row.
func TestSplitWalkCostsPerPartitionNotPerColumn(t *testing.T) {
	const n = 25
	r := rangesRunner(t, memory.DefaultAllocator)
	a := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_1"}}
	txs, months := quietMonths("acc_1", n)
	wk := accountWalk(a, months)
	recs := walkRecords(t, r.mem, DefaultBatchRows, txs...)
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()

	results, err := r.splitWalk(wk, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for _, res := range results {
		m := res.ws[0].part.month
		want := []string{fmt.Sprintf("trans_acc_1_%s", m)}
		if got := rangeIDs(r, res); !slices.Equal(got, want) {
			t.Errorf("partition %s: rows %v, want %v", m, got, want)
		}
		if res.size <= 0 {
			t.Errorf("partition %s: size %d, want its share of the walk's record", m, res.size)
		}
		res.release()
	}

	allocs := testing.AllocsPerRun(10, func() {
		results, err := r.splitWalk(wk, recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range results {
			res.release()
		}
	})
	t.Logf("%.0f allocations to split a walk of %d partitions", allocs, n)
	if limit := float64(8 * n); allocs > limit {
		t.Errorf("splitting a walk of %d partitions made %.0f allocations, want at most %.0f (a few per partition)", n, allocs, limit)
	}
}

// TestSplitWalkErrorReleasesRows: a walk whose second record holds a row of an account
// it does not read fails, and the rows it had already cut into partitions keep none of
// the walk's memory: once the walk's records are released, nothing is left allocated.
func TestSplitWalkErrorReleasesRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r := rangesRunner(t, mem)
	a := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_1"}}
	txs, months := quietMonths("acc_1", 4)
	wk := accountWalk(a, months)
	// Newest first; the stranger's row is in the second record.
	txs = slices.Insert(txs, 2, tx{"trans_stranger", "acc_9", "2025-11-20", "-1", "stranger"})
	recs := walkRecords(t, mem, 2, txs...)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	results, err := r.splitWalk(wk, recs)
	if err == nil {
		t.Fatalf("split a walk with a row of another account: %d results, want an error", len(results))
	}
	for _, rec := range recs {
		rec.Release()
	}
	mem.AssertSize(t, 0)
}

// TestMergeReleasesRowsWhenSpillReadFails: when a partition's spilled rows cannot be
// read back, the merge fails and what the partition's other results hold in memory is
// released too, not only what was read before the failure.
func TestMergeReleasesRowsWhenSpillReadFails(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r := rangesRunner(t, mem)
	key := partKey{month{2026, time.January}, 0}
	a := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_1"}}
	b := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_2"}}
	spilled := walkRecords(t, mem, DefaultBatchRows, tx{"trans_1", "acc_1", "2026-01-10", "-1", "spilled"})
	seg, err := r.spill.write(spilled)
	spilled[0].Release()
	if err != nil {
		t.Fatal(err)
	}
	seg.n /= 2 // cut short: reading it back fails
	waiting := walkRecords(t, mem, DefaultBatchRows,
		tx{"trans_2", "acc_2", "2026-01-12", "-1", "waiting"}, tx{"trans_3", "acc_2", "2026-01-11", "-1", "waiting"})
	ps := &partState{key: key, results: []windowResult{
		{ws: []*window{newWindow(a, key.month)}, seg: seg},
		{ws: []*window{newWindow(b, key.month)}, rows: []rowRange{{waiting[0], 0, 1}, {waiting[0], 1, 2}}},
	}}
	waiting[0].Retain() // one reference for each range
	if err := r.mergeAndWrite(context.Background(), ps, writeNow(t)); err == nil {
		t.Fatal("merged a partition whose spilled rows cannot be read; want an error")
	}
	mem.AssertSize(t, 0)
}

// TestFreshRecordsKeepOrder: the merge gets a partition's rows in the order its
// results hold them (the first of two rows with one id is the one kept): a range that
// is all of its record as that record, a long range as a slice of its record, the
// other ranges between gathered into one record, spilled rows as read back; the
// ranges' references go with them.
func TestFreshRecordsKeepOrder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r := rangesRunner(t, mem)
	key := partKey{month{2026, time.January}, 0}
	a := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_1"}}
	rec := func(ids ...string) arrow.Record {
		var txs []tx
		for _, id := range ids {
			txs = append(txs, tx{id, "acc_1", "2026-01-10", "-1", id})
		}
		return walkRecords(t, mem, len(ids), txs...)[0]
	}
	long := []string{"x0", "p1", "p2", "x3", "p3"}
	for i := range sliceMinRows {
		long = append(long, fmt.Sprintf("l%02d", i))
	}
	whole, walk := rec("w1", "w2"), rec(append(long, "x4", "q1")...)
	walk.Retain() // four ranges
	walk.Retain()
	walk.Retain()
	spilled := rec("s1")
	seg, err := r.spill.write([]arrow.Record{spilled})
	spilled.Release()
	if err != nil {
		t.Fatal(err)
	}
	w := []*window{newWindow(a, key.month)}
	got, err := r.freshRecords([]windowResult{
		{ws: w, rows: []rowRange{{walk, 1, 3}}},
		{ws: w, err: errSkipped},
		{ws: w, rows: []rowRange{{walk, 4, 5}, {whole, 0, 2}}},
		{ws: w, seg: seg},
		{ws: w, rows: []rowRange{{walk, 5, 5 + sliceMinRows}, {walk, 6 + sliceMinRows, 7 + sliceMinRows}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids [][]string
	for _, rec := range got {
		var one []string
		for i := range int(rec.NumRows()) {
			one = append(one, rec.Column(r.cols.id).(*array.String).Value(i))
		}
		ids = append(ids, one)
		if rec == walk {
			t.Errorf("the walk's record is handed on whole; want its ranges' rows gathered")
		}
		rec.Release()
	}
	want := [][]string{{"p1", "p2", "p3"}, {"w1", "w2"}, {"s1"}, long[5:], {"q1"}}
	if !slices.EqualFunc(ids, want, slices.Equal) {
		t.Errorf("records %v, want %v", ids, want)
	}
	mem.AssertSize(t, 0)
}

// writeNow is mergeAndWrite's upload for tests that call it directly: the write
// runs at once, and a failed one fails the test.
func writeNow(t *testing.T) func(size int64, write func(context.Context) error) error {
	return func(_ int64, write func(context.Context) error) error {
		if err := write(context.Background()); err != nil {
			t.Errorf("write: %v", err)
		}
		return nil
	}
}
