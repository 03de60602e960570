package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// tx is a compact description of a transaction for merge tests.
type tx struct {
	id, acct, day, amount, desc string
}

func records(t *testing.T, run string, txs ...tx) []arrow.Record {
	t.Helper()
	if len(txs) == 0 {
		return nil
	}
	b := schema.NewTransactionBuilder(memory.DefaultAllocator, schema.Options{RunID: run, ExtractedAt: time.Unix(0, 0)})
	defer b.Release()
	for _, x := range txs {
		d, _ := time.ParseInLocation(time.DateOnly, x.day, mustZone(t))
		item := fmt.Sprintf(`{"_id":%q,"_user":"user_1","_account":%q,"_connection":"conn_1","date":%q,`+
			`"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","description":%q,"amount":%s,"type":"DEBIT"}`,
			x.id, x.acct, d.UTC().Format("2006-01-02T15:04:05.000Z"), x.desc, x.amount)
		if err := b.Append([]byte(item), "NZD"); err != nil {
			t.Fatal(err)
		}
	}
	return []arrow.Record{b.NewRecord()}
}

func mustZone(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestMergePartition(t *testing.T) {
	feb := span{dayOf(2026, 2, 1), dayOf(2026, 2, 28)}
	a1 := tx{"trans_a1", "acc_a", "2026-02-03", "-1.5", "coffee"}
	a2 := tx{"trans_a2", "acc_a", "2026-02-04", "100", "pay"}
	b1 := tx{"trans_b1", "acc_b", "2026-02-05", "-7", "bus"}
	a1changed := a1
	a1changed.desc = "coffee (corrected)"
	cases := []struct {
		name           string
		old, fresh     []tx
		reread         map[string]span
		freshRun       string
		wantIDs        []string // final rows before candidates are decided, sorted
		wantCandidates []string
		wantFresh      []string
		updated, same  int
		changed        bool
		dup            int
	}{
		{name: "backfill into an empty partition", fresh: []tx{a2, a1, b1}, reread: map[string]span{"acc_a": feb, "acc_b": feb},
			wantIDs: []string{"trans_a1", "trans_a2", "trans_b1"}, wantFresh: []string{"trans_a2", "trans_a1", "trans_b1"}, changed: true},
		{name: "nothing changed (lineage differs)", old: []tx{a1, a2, b1}, fresh: []tx{a1, a2}, freshRun: "run-2",
			reread: map[string]span{"acc_a": feb}, wantIDs: []string{"trans_a1", "trans_a2", "trans_b1"}, same: 2},
		{name: "a description changed", old: []tx{a1, a2, b1}, fresh: []tx{a1changed, a2}, reread: map[string]span{"acc_a": feb},
			wantIDs: []string{"trans_a1", "trans_a2", "trans_b1"}, updated: 1, same: 1, changed: true},
		{name: "missing from a re-read account is a candidate", old: []tx{a1, a2, b1}, fresh: []tx{a2},
			reread: map[string]span{"acc_a": feb}, wantIDs: []string{"trans_a1", "trans_a2", "trans_b1"},
			wantCandidates: []string{"trans_a1"}, same: 1},
		{name: "an account not re-read keeps its rows", old: []tx{a1, b1}, fresh: []tx{a1}, reread: map[string]span{"acc_a": feb},
			wantIDs: []string{"trans_a1", "trans_b1"}, same: 1},
		{name: "duplicate id in the fresh rows keeps the first", old: nil, fresh: []tx{a1, a1changed}, reread: map[string]span{"acc_a": feb},
			wantIDs: []string{"trans_a1"}, wantFresh: []string{"trans_a1"}, changed: true, dup: 1},
	}
	cols := newTxCols(schema.Transactions())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := c.freshRun
			if run == "" {
				run = "run-1"
			}
			res := mergePartition(cols, schema.Transactions(), records(t, "run-1", c.old...), records(t, run, c.fresh...), c.reread, false)
			defer res.t.release()
			ids, cands := resultIDs(res, cols)
			if fmt.Sprint(ids) != fmt.Sprint(c.wantIDs) || fmt.Sprint(cands) != fmt.Sprint(c.wantCandidates) ||
				fmt.Sprint(res.fresh) != fmt.Sprint(c.wantFresh) {
				t.Errorf("rows %v candidates %v fresh %v; want %v %v %v", ids, cands, res.fresh, c.wantIDs, c.wantCandidates, c.wantFresh)
			}
			if res.updated != c.updated || res.same != c.same || res.dupFresh != c.dup {
				t.Errorf("updated %d same %d dup %d; want %d %d %d", res.updated, res.same, res.dupFresh, c.updated, c.same, c.dup)
			}
			if _, changed := res.final(cols, nil); changed != c.changed {
				t.Errorf("changed %v, want %v", changed, c.changed)
			}
			// Unchanged rows keep the lineage of the run that wrote them.
			for _, r := range res.rows {
				if r.src < res.oldRecs && res.t.str(r, fieldIndex(res.t.schema, "_run_id")) != "run-1" {
					t.Errorf("old row lost its lineage")
				}
			}
			// Dropping a candidate changes the file.
			if len(c.wantCandidates) > 0 {
				rows, changed := res.final(cols, map[string]bool{c.wantCandidates[0]: true})
				if !changed || len(rows) != len(c.wantIDs)-1 {
					t.Errorf("dropping %s: %d rows, changed %v", c.wantCandidates[0], len(rows), changed)
				}
			}
		})
	}
}

// TestMergeMore: a partition held back (it may lose rows) takes later re-reads of
// the same run into its state: earlier candidates stay unless returned, the new
// re-read's missing rows become candidates, and the result still compares with the
// stored file.
func TestMergeMore(t *testing.T) {
	feb := span{dayOf(2026, 2, 1), dayOf(2026, 2, 28)}
	a1 := tx{"trans_a1", "acc_a", "2026-02-03", "-1.5", "coffee"}
	a2 := tx{"trans_a2", "acc_a", "2026-02-04", "100", "pay"}
	b1 := tx{"trans_b1", "acc_b", "2026-02-05", "-7", "bus"}
	b2 := tx{"trans_b2", "acc_b", "2026-02-06", "-8", "train"}
	c1 := tx{"trans_c1", "acc_b", "2026-02-07", "-9", "moved in"}
	b1changed := b1
	b1changed.desc = "bus (corrected)"
	cases := []struct {
		name           string
		fresh          []tx
		reread         map[string]span
		wantIDs        []string
		wantCandidates []string
		wantFresh      []string
		updated, same  int
		changed        bool
	}{
		{name: "another account's missing rows join the candidates", fresh: []tx{b2}, reread: map[string]span{"acc_b": feb},
			wantIDs: []string{"trans_a1", "trans_a2", "trans_b1", "trans_b2"}, wantCandidates: []string{"trans_a1", "trans_b1"}, same: 1},
		{name: "a returned candidate is no longer one", fresh: []tx{a1}, reread: map[string]span{"acc_a": {dayOf(2026, 2, 3), dayOf(2026, 2, 3)}},
			wantIDs: []string{"trans_a1", "trans_a2", "trans_b1", "trans_b2"}, same: 1},
		{name: "updates and new ids", fresh: []tx{b1changed, b2, c1}, reread: map[string]span{"acc_b": feb},
			wantIDs: []string{"trans_a1", "trans_a2", "trans_b1", "trans_b2", "trans_c1"}, wantCandidates: []string{"trans_a1"},
			wantFresh: []string{"trans_c1"}, updated: 1, same: 1, changed: true},
	}
	cols := newTxCols(schema.Transactions())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The run's first merge: account A re-read, trans_a1 missing.
			res := mergePartition(cols, schema.Transactions(), records(t, "run-1", a1, a2, b1, b2), records(t, "run-2", a2),
				map[string]span{"acc_a": feb}, false)
			defer res.t.release()
			d := res.mergeMore(cols, records(t, "run-2", c.fresh...), c.reread, false)
			ids, cands := resultIDs(res, cols)
			if fmt.Sprint(ids) != fmt.Sprint(c.wantIDs) || fmt.Sprint(cands) != fmt.Sprint(c.wantCandidates) ||
				fmt.Sprint(d.fresh) != fmt.Sprint(c.wantFresh) {
				t.Errorf("rows %v candidates %v fresh %v; want %v %v %v", ids, cands, d.fresh, c.wantIDs, c.wantCandidates, c.wantFresh)
			}
			if d.updated != c.updated || d.same != c.same {
				t.Errorf("updated %d same %d; want %d %d", d.updated, d.same, c.updated, c.same)
			}
			if _, changed := res.final(cols, nil); changed != c.changed {
				t.Errorf("changed %v, want %v", changed, c.changed)
			}
		})
	}
}

// resultIDs returns the ids of a merge result's rows and of its candidates, in order.
func resultIDs(res *mergeResult, cols txCols) (ids, cands []string) {
	for _, r := range res.rows {
		ids = append(ids, res.t.str(r, cols.id))
	}
	for _, r := range res.candidates {
		cands = append(cands, res.t.str(r, cols.id))
	}
	return ids, cands
}

// TestHeldPartitionCompact: a partition held back to the end of the run (it may lose
// rows) keeps its fresh rows as one record, not the many small records its walks
// handed it (one per user in a daily run, each a range of a walk's record): a
// shard's held partitions would otherwise grow with its users. The held rows,
// candidates and new ids are those of the merge, whether the partition stays in
// memory or, over the held budget, is parked in the spill file (its records
// released) and read back. A park that fails (the spill's directory unusable) keeps
// the partition in memory, over the budget, and says so.
func TestHeldPartitionCompact(t *testing.T) {
	unusable := func(t *testing.T) string {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(f, "sub") // a directory under a file: every spill fails
	}
	for _, c := range []struct {
		name     string
		budget   int64
		spillDir func(*testing.T) string
		parked   bool
	}{
		{"in memory", DefaultHeldBytes, (*testing.T).TempDir, false},
		{"parked", -1, (*testing.T).TempDir, true},
		{"park fails", -1, unusable, false},
	} {
		t.Run(c.name, func(t *testing.T) { testHeldPartitionCompact(t, c.budget, c.spillDir(t), c.parked) })
	}
}

func testHeldPartitionCompact(t *testing.T, budget int64, spillDir string, parked bool) {
	const walks = 40
	loc := mustZone(t)
	var logs bytes.Buffer
	r := &runner{cfg: Config{Workers: 1, HeldBytes: budget}, loc: loc, b: bucket.NewMemory(), mem: memory.DefaultAllocator,
		txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	r.cols = newTxCols(r.txSch)
	r.spill = &spill{dir: spillDir, budget: DefaultHoldBytes, mem: r.mem, sch: r.txSch}
	defer r.spill.close()
	key := partKey{month{2026, time.February}, 0}
	feb := span{dayOf(2026, 2, 1), dayOf(2026, 2, 28)}

	// The stored partition: one row per account; acc_000's is gone upstream.
	var old []tx
	for i := range walks {
		old = append(old, tx{fmt.Sprintf("trans_%03d_old", i), fmt.Sprintf("acc_%03d", i), "2026-02-03", "-1", "old"})
	}
	oldRecs := records(t, "run_old", old...)
	data, _, err := encodeParquet(r.txSch, oldRecs)
	for _, rec := range oldRecs {
		rec.Release()
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Put(context.Background(), txObject(key), data, bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	// One walk per account: each hands the partition a record of its own.
	ps := &partState{key: key}
	var wantIDs []string
	for i := range walks {
		acct := fmt.Sprintf("acc_%03d", i)
		a := &acctRun{user: &userRun{}, acct: acctInfo{ID: acct}, bucket: 0}
		fresh := []tx{{fmt.Sprintf("trans_%03d_new", i), acct, "2026-02-10", "-2", "new"}}
		if i > 0 {
			fresh = append(fresh, old[i]) // still there
			wantIDs = append(wantIDs, old[i].id)
		}
		wantIDs = append(wantIDs, fresh[0].id)
		recs := records(t, "run_new", fresh...)
		ps.results = append(ps.results, windowResult{ws: []*window{{acct: a, part: key, span: feb}}, rows: []rowRange{{recs[0], 0, int32(recs[0].NumRows())}}})
	}
	ps.remaining = 0
	if err := r.mergeAndWrite(context.Background(), ps, writeNow(t)); err != nil {
		t.Fatal(err)
	}
	if len(r.deferred) != 1 {
		t.Fatalf("%d partitions held, want 1 (acc_000's old row is a candidate)", len(r.deferred))
	}
	h := r.deferred[0]
	defer h.res.t.release()
	if got := h.seg != nil && h.res.t.recs == nil; got != parked {
		t.Fatalf("held partition parked %v (segment %v, %d records in memory), want %v", got, h.seg, len(h.res.t.recs), parked)
	}
	if warned := strings.Contains(logs.String(), "cannot park a held partition"); warned != (budget < 0 && !parked) {
		t.Errorf("warned of a failed park %v, want %v; log:\n%s", warned, budget < 0 && !parked, logs.String())
	}
	if parked && r.heldMem != 0 {
		t.Errorf("a parked partition counts %d bytes against the held budget, want 0", r.heldMem)
	}
	if !parked && r.heldMem <= 0 {
		t.Errorf("a partition in memory counts %d bytes against the held budget, want its size", r.heldMem)
	}
	if want := []heldCand{{row: h.res.candidates[0], id: old[0].id, account: "acc_000"}}; !slices.Equal(h.cands, want) {
		t.Errorf("candidates without the table: %v, want %v", h.cands, want)
	}
	if err := r.loadHeld(h); err != nil {
		t.Fatal(err)
	}
	if n := len(h.res.t.recs) - int(h.res.oldRecs); n != 1 {
		t.Errorf("the held partition keeps %d fresh records, want 1 (one per walk grows with the users)", n)
	}
	ids, cands := resultIDs(h.res, r.cols)
	slices.Sort(wantIDs)
	wantIDs = append(wantIDs, old[0].id) // the candidate stays until reconcile decides
	got := slices.Clone(ids)
	slices.Sort(got)
	slices.Sort(wantIDs)
	if !slices.Equal(got, wantIDs) {
		t.Errorf("held rows %v, want %v", got, wantIDs)
	}
	if !slices.Equal(cands, []string{old[0].id}) {
		t.Errorf("candidates %v, want [%s]", cands, old[0].id)
	}
	var fresh []string
	for i, id := range h.res.fresh {
		if got := h.res.t.str(h.res.freshRow[i], r.cols.id); got != id {
			t.Errorf("new id %s: its row says %s", id, got)
		}
		fresh = append(fresh, id)
	}
	if len(fresh) != walks {
		t.Errorf("%d new ids, want %d", len(fresh), walks)
	}
	rows, changed := h.res.final(r.cols, map[string]bool{old[0].id: true})
	if !changed || len(rows) != len(wantIDs)-1 {
		t.Errorf("final: %d rows (changed %v), want %d", len(rows), changed, len(wantIDs)-1)
	}
	r.unloadHeld(h)
	if got := h.res.t.recs == nil; got != parked {
		t.Errorf("after unloadHeld the table is released: %v, want %v", got, parked)
	}
}
