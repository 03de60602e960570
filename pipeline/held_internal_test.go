package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
