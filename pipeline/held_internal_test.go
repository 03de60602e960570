package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// TestPendingRowsWaitInBatches: the pending rows a run fetches wait for the end of the
// run (the snapshot of each bucket is written once), but not in memory: at most
// heldSpillRows of them, or heldSpillBytes of their JSON, are in the builders at any
// time, whatever the number of accounts of the shard; the rest wait in the spill file. The snapshot written at the
// end has every row of every fetched account, whether its rows were spilled, kept in
// memory because the spill failed, or still in a builder.
func TestPendingRowsWaitInBatches(t *testing.T) {
	for _, c := range []struct {
		name      string
		spillDir  func(t *testing.T) string
		wantSpill bool
		pad       int // bytes added to each item's description
	}{
		{"spilled", func(t *testing.T) string { return t.TempDir() }, true, 0},
		{"big items spilled", func(t *testing.T) string { return t.TempDir() }, true, 2000},
		{"spill fails", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(f, "sub") // a directory under a file: every spill fails
		}, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			loc := mustZone(t)
			r := &runner{cfg: Config{Workers: 1, Shards: 1}, loc: loc, b: bucket.NewMemory(), mem: memory.DefaultAllocator,
				txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				started: time.Date(2026, 3, 1, 9, 0, 0, 0, loc), ds: Dataset{Buckets: 3, BucketBy: bucketByUser},
				pend: pendingRows{rows: map[int]*heldRows{}, fetched: map[int][]string{}}}
			r.spill = &spill{dir: c.spillDir(t), budget: DefaultHoldBytes, mem: r.mem, sch: r.txSch}
			defer r.spill.close()
			defer r.pend.release()

			const accounts, perAccount = 90, 70 // 6,300 rows: more than heldSpillRows
			want := map[int][]string{}
			maxHeld, minItem, maxItem := 0, 1<<30, 0
			for i := range accounts {
				a := &acctRun{user: &userRun{}, acct: acctInfo{ID: fmt.Sprintf("acc_%03d", i), Currency: "NZD"}, bucket: i % 3}
				var items []json.RawMessage
				for k := range perAccount {
					desc := fmt.Sprintf("%s pending %d%s", a.acct.ID, k, strings.Repeat(".", c.pad))
					amount := any(-1.25)
					if k%2 == 0 {
						amount = "-11.50" // Akahu sometimes sends a string
					}
					item, _ := json.Marshal(map[string]any{"_user": "user_1", "_account": a.acct.ID, "_connection": "conn_1",
						"updated_at": "2026-02-28T10:00:00.000Z", "date": "2026-02-27T11:00:00.000Z",
						"description": desc, "amount": amount, "type": "EFTPOS"})
					items = append(items, item)
					minItem, maxItem = min(minItem, len(item)), max(maxItem, len(item))
					want[a.bucket] = append(want[a.bucket], desc)
				}
				r.keepPending(a, items)
				held := 0
				for _, h := range r.pend.rows {
					if h.b != nil {
						held += h.b.Len()
					}
				}
				maxHeld = max(maxHeld, held)
				if a.pending != "fetched" {
					t.Fatalf("account %s: pending %q, want fetched", a.acct.ID, a.pending)
				}
			}
			if maxHeld >= heldSpillRows+perAccount {
				t.Errorf("%d pending rows in the builders at once; want fewer than %d", maxHeld, heldSpillRows+perAccount)
			}
			if held := maxHeld * minItem; held >= heldSpillBytes+perAccount*maxItem {
				t.Errorf("%d bytes of pending JSON in the builders at once; want fewer than %d", held, heldSpillBytes+perAccount*maxItem)
			}
			if got := r.spill.size > 0; got != c.wantSpill {
				t.Errorf("spilled %d bytes; want spilled %v", r.spill.size, c.wantSpill)
			}
			if err := r.writePending(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r.m.Counts.Pending != accounts*perAccount {
				t.Errorf("pending count %d, want %d", r.m.Counts.Pending, accounts*perAccount)
			}
			for bk, descs := range want {
				recs, _, err := r.readObject(context.Background(), pendingObject(bk), []string{"description"})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, rec := range recs {
					col := rec.Column(0).(*array.String)
					for i := range col.Len() {
						got = append(got, col.Value(i))
					}
					rec.Release()
				}
				slices.Sort(got)
				slices.Sort(descs)
				if !slices.Equal(got, descs) {
					t.Errorf("bucket %d: %d pending rows written, want %d", bk, len(got), len(descs))
				}
			}
		})
	}
}

// TestTakeWaitingGathersEachRowOnce: gathering a partition's waiting ranges leaves the
// records gathered before where they are (a partition of 1,250 quiet users would
// otherwise copy its first rows twenty times over), while a spill takes every result
// that waits in memory; failed and spilled results stay either way.
func TestTakeWaitingGathersEachRowOnce(t *testing.T) {
	rec := func() []rowRange {
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil))
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(1)
		return []rowRange{{b.NewRecord(), 0, 1}}
	}
	w := func() []*window { return []*window{{}} }
	for _, c := range []struct {
		spill bool
		want  []string
	}{{false, []string{"slice 1", "slice 2"}}, {true, []string{"gathered", "slice 1", "slice 2"}}} {
		names := map[*window]string{}
		mk := func(name string, res windowResult) windowResult {
			res.ws = w()
			names[res.ws[0]] = name
			return res
		}
		ps := &partState{remaining: 1, ranges: 2, results: []windowResult{
			mk("gathered", windowResult{rows: rec(), gathered: true}),
			mk("slice 1", windowResult{rows: rec()}),
			mk("failed", windowResult{err: errSkipped}),
			mk("spilled", windowResult{seg: &segment{}}),
			mk("slice 2", windowResult{rows: rec()}),
		}}
		var got []string
		for _, res := range ps.takeWaiting(c.spill) {
			got = append(got, names[res.ws[0]])
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("spill %v: took %v, want %v", c.spill, got, c.want)
		}
		if want := 1 + len(c.want); ps.remaining != want || ps.ranges != 0 {
			t.Errorf("spill %v: remaining %d, ranges %d; want %d, 0", c.spill, ps.remaining, ps.ranges, want)
		}
		if want := 5 - len(c.want); len(ps.results) != want {
			t.Errorf("spill %v: %d results left, want %d", c.spill, len(ps.results), want)
		}
	}
}

// TestParkAllocatesNoCopy: parking a held partition (a whole month of a bucket) in
// the spill file streams its records' buffers to the file as they are. It used to
// compress every buffer of a record (LZ4) and collect the stream in a buffer before
// writing it, which allocated about the partition's size again at the moment it was
// meant to leave memory: the runs of a dense fleet that held partitions peaked
// highest. The partition reads back with the same rows, after other spill writes.
func TestParkAllocatesNoCopy(t *testing.T) {
	sch := schema.Transactions()
	s := &spill{dir: t.TempDir(), budget: DefaultHoldBytes, mem: memory.DefaultAllocator, sch: sch}
	defer s.close()
	txs := monthTxs(6000, 40) // a dense month
	recs := records(t, "run_1", txs...)
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	var size int64
	for _, rec := range recs {
		size += recordSize(rec)
	}
	small := records(t, "run_2", txs[:3]...)
	before, err := s.write(small) // the file holds something first: offsets matter
	for _, rec := range small {
		rec.Release()
	}
	if err != nil {
		t.Fatal(err)
	}

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	seg, err := s.park(recs)
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := int64(m1.TotalAlloc - m0.TotalAlloc); alloc > size/16 {
		t.Errorf("parking a %d-byte partition allocated %d bytes, want under 1/16 of it (no copy of its buffers)", size, alloc)
	}
	if st := s.stats(); st.HeldParked != 1 || st.Bytes != before.n+seg.n || seg.off != before.n {
		t.Errorf("spill stats %+v, park segment %+v after a %d-byte write: want 1 parked, bytes the sum, the park after the write", st, *seg, before.n)
	}
	after, err := s.write(recs[:1]) // a write after the park goes after it
	if err != nil {
		t.Fatal(err)
	}
	if after.off != seg.off+seg.n {
		t.Errorf("write after the park at %d, want %d", after.off, seg.off+seg.n)
	}

	back, err := s.read(seg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, rec := range back {
			rec.Release()
		}
	}()
	if len(back) != len(recs) {
		t.Fatalf("read back %d records, want %d", len(back), len(recs))
	}
	for i := range recs {
		if !array.RecordEqual(recs[i], back[i]) {
			t.Errorf("record %d differs after the park", i)
		}
	}
}

// TestDefaultHeldBudget: with the default budget a quiet month held for the
// reconcile stage (a row or two per account of a bucket) stays in memory, and a dense
// month (thousands of rows) is parked: with 8 MiB, the default until 2026-12-03, a
// dense fleet's runs that held a few dense months peaked the highest.
func TestDefaultHeldBudget(t *testing.T) {
	sch := schema.Transactions()
	r := &runner{cfg: Config{HeldBytes: DefaultHeldBytes}, txSch: sch, mem: memory.DefaultAllocator, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r.cols = newTxCols(sch)
	r.spill = &spill{dir: t.TempDir(), budget: DefaultHoldBytes, mem: r.mem, sch: sch}
	defer r.spill.close()
	month := func(rows int) *heldPart {
		return &heldPart{res: &mergeResult{t: &table{schema: sch, recs: records(t, "run_1", monthTxs(rows, 375)...)}}}
	}
	quiet := []*heldPart{month(400), month(400)} // 125 users, 3 accounts each, ~1 row a month
	dense := month(5500)                         // and 37 accounts of them with ~150
	for _, h := range append(quiet, dense) {
		r.keepHeld(h)
		defer h.res.t.release()
	}
	for i, h := range quiet {
		if h.seg != nil {
			t.Errorf("quiet month %d (%d bytes) parked, want it in memory", i, h.mem)
		}
	}
	if dense.seg == nil {
		t.Errorf("dense month kept in memory (%d bytes) with the default budget, want it parked", dense.mem)
	}
	if r.heldMem > DefaultHeldBytes {
		t.Errorf("%d bytes of held partitions in memory, over the default budget %d", r.heldMem, DefaultHeldBytes)
	}
}

// monthTxs returns rows transactions of one February spread over accounts accounts,
// each with a description of some length.
func monthTxs(rows, accounts int) []tx {
	txs := make([]tx, 0, rows)
	for i := range rows {
		txs = append(txs, tx{fmt.Sprintf("trans_%05d", i), fmt.Sprintf("acc_%03d", i%accounts), fmt.Sprintf("2026-02-%02d", 1+i%28),
			"-12.34", fmt.Sprintf("EFTPOS %05d %s", i, strings.Repeat("purchase ", 6))})
	}
	return txs
}
