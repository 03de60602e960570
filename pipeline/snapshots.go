package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the snapshot stage: the pending and account snapshots of each
// bucket, in which the accounts this run fetched replace their rows and others keep theirs.

// writePending replaces the pending snapshot of each bucket: rows of the accounts this
// run fetched are replaced (an account whose list came back empty loses them all),
// others kept; an account whose pending rows did not change keeps its old rows, so an
// unchanged snapshot is not rewritten.
func (r *runner) writePending(ctx context.Context) error {
	return writeSnapshots(ctx, r.pendingSnapshots())
}

// pendingSnapshots returns the writes of writePending, one per bucket.
func (r *runner) pendingSnapshots() []func(context.Context) error {
	sch := schema.Pending()
	var out []func(context.Context) error
	for _, bk := range sortedInts(r.pend.fetched) {
		out = append(out, r.snapshotWrite("pending", pendingObject(bk), bk, sch, r.pend.rows[bk], r.newPendingBuilder,
			r.pend.fetched[bk], &r.m.Counts.Pending))
	}
	return out
}

// snapshotWrite is the write of one bucket's snapshot object: the rows held for the
// bucket replace the listed accounts' rows (replaceSnapshot), and their number is
// added to count (under r.mu).
func (r *runner) snapshotWrite(kind, name string, bk int, sch *arrow.Schema, held *heldRows, mk func() rowBuilder,
	accounts []string, count *int64) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh := func() (arrow.Record, error) {
			rec, err := r.heldRecord(held, sch, mk)
			if err != nil {
				return nil, fmt.Errorf("%s snapshot of bucket %d: %w", kind, bk, err)
			}
			return rec, nil
		}
		n, err := r.replaceSnapshot(ctx, kind, name, sch, fresh, accounts)
		if err != nil {
			return err
		}
		r.mu.Lock()
		*count += n
		r.mu.Unlock()
		return nil
	}
}

// writeSnapshots runs snapshot writes (pendingSnapshots, accountSnapshots), up to
// DefaultUploads at once: each reads its bucket's old object and writes the new one,
// tens of milliseconds each on GCS, which one bucket after another made the tail of
// every run. Between the read and the write, the decoding, merging and encoding take
// turns (replaceSnapshot), so memory holds one snapshot's working set, not eight.
// The first failure stops the others and is returned.
func writeSnapshots(ctx context.Context, writes []func(context.Context) error) error {
	p := pool.New().WithErrors().WithFirstError().WithContext(ctx).WithCancelOnError().WithMaxGoroutines(DefaultUploads)
	for _, w := range writes {
		p.Go(w)
	}
	return p.Wait()
}

func (r *runner) newPendingBuilder() rowBuilder {
	return schema.NewPendingBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
}

func (r *runner) newAccountBuilder() rowBuilder {
	return schema.NewAccountBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
}

// pendingRows collects the pending rows the run fetched, by bucket (heldRows), and
// the accounts whose lists were fetched, by bucket.
type pendingRows struct {
	mu      sync.Mutex
	rows    map[int]*heldRows
	n       int // rows in the builders (not yet spilled)
	bytes   int // their items' JSON bytes
	fetched map[int][]string
	check   sync.Pool // *schema.PendingBuilder: checks an account's items first (PendingBuilder.Check)
}

// release frees the rows kept in memory.
func (p *pendingRows) release() {
	for _, h := range p.rows {
		h.release()
	}
}

// heldSpillRows and heldSpillBytes are how many snapshot rows (pending, accounts),
// and how many bytes of their JSON, may wait in the builders, over all buckets,
// before they are sent to the spill file: a shard's memory holds a batch of them,
// not one row per account of the shard.
const (
	heldSpillRows  = 4096
	heldSpillBytes = 1 << 20
)

// rowBuilder builds a snapshot's rows (schema.PendingBuilder, schema.AccountBuilder).
// NewRecord returns the rows appended since the last call, in order; Release frees
// the builder's buffers.
type rowBuilder interface {
	Len() int
	NewRecord() arrow.Record
	Release()
}

// heldRows are one bucket's snapshot rows waiting for the end of the run: being
// built (b), sent to the spill file in batches (segs), or kept in memory (recs) when
// the spill failed. Their order is segs, then recs, then b.
type heldRows struct {
	b    rowBuilder
	segs []*segment
	recs []arrow.Record
}

// builder returns the rows' builder, made with mk if there is none.
func (h *heldRows) builder(mk func() rowBuilder) rowBuilder {
	if h.b == nil {
		h.b = mk()
	}
	return h.b
}

func (h *heldRows) release() {
	if h.b != nil {
		h.b.Release()
		h.b = nil
	}
	for _, rec := range h.recs {
		rec.Release()
	}
	h.recs = nil
}

// spillHeld sends the rows being built in each of rows to the spill file, and frees
// their builders. Rows that cannot be spilled stay in memory, as a record.
func (r *runner) spillHeld(what string, rows map[int]*heldRows, sch *arrow.Schema) {
	for _, bk := range sortedInts(rows) {
		h := rows[bk]
		if h.b == nil || h.b.Len() == 0 {
			continue
		}
		rec := h.b.NewRecord()
		h.b.Release()
		h.b = nil
		seg, err := r.spill.writeAs(sch, []arrow.Record{rec})
		if err != nil {
			r.log.Warn(what+" rows kept in memory", "bucket", bk, "err", err)
			h.recs = append(h.recs, rec)
			continue
		}
		rec.Release()
		h.segs = append(h.segs, seg)
	}
}

// heldRecord returns a bucket's held rows as one record (none: an empty one, made
// with mk); the caller releases it.
func (r *runner) heldRecord(h *heldRows, sch *arrow.Schema, mk func() rowBuilder) (arrow.Record, error) {
	var recs []arrow.Record
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	if h != nil {
		for _, seg := range h.segs {
			got, err := r.spill.readAs(sch, seg)
			recs = append(recs, got...)
			if err != nil {
				return nil, err
			}
		}
		for _, rec := range h.recs {
			rec.Retain()
			recs = append(recs, rec)
		}
		if h.b != nil && h.b.Len() > 0 {
			recs = append(recs, h.b.NewRecord())
		}
	}
	switch len(recs) {
	case 0:
		b := mk()
		defer b.Release()
		return b.NewRecord(), nil
	case 1:
		rec := recs[0]
		recs = nil
		return rec, nil
	}
	one, err := concatReleasing(r.mem, sch, recs)
	if err == nil {
		recs = nil // released by concatReleasing; on failure they are whole again, and ours
	}
	return one, err
}

// addAccountRow appends the account's row of today's accounts snapshot, from its
// JSON as served, to its bucket's rows. The plan builds the rows as it chooses the
// accounts, so that no account's JSON is kept through the run, and sends them to the
// spill file in batches (spillAccountRows): the snapshot costs little memory until it
// is written. An account whose JSON is not a valid row fails when the snapshot is
// written, after its transactions were extracted.
func (r *runner) addAccountRow(a *acctRun, raw []byte) {
	if r.accountRows == nil {
		r.accountRows = map[int]*heldRows{}
	}
	h := r.accountRows[a.bucket]
	if h == nil {
		h = &heldRows{}
		r.accountRows[a.bucket] = h
	}
	if err := h.builder(r.newAccountBuilder).(*schema.AccountBuilder).Append(raw, a.user.me.ID); err != nil {
		a.snapErr = err
	}
	r.accountRowsN++
	r.accountRowsBytes += len(raw)
}

// spillAccountRows sends the accounts-snapshot rows built so far to the spill file:
// all of them with final, else only once heldSpillRows or heldSpillBytes wait. A dry run spills none.
func (r *runner) spillAccountRows(final bool) {
	if r.cfg.DryRun || (!final && r.accountRowsN < heldSpillRows && r.accountRowsBytes < heldSpillBytes) {
		return
	}
	r.spillHeld("accounts-snapshot", r.accountRows, schema.Accounts())
	r.accountRowsN, r.accountRowsBytes = 0, 0
}

// releaseAccountRows frees the accounts-snapshot rows kept in memory.
func (r *runner) releaseAccountRows() {
	for _, h := range r.accountRows {
		h.release()
	}
	r.accountRows = nil
}

// writeAccounts writes today's account snapshot of each bucket: the rows built at
// plan time of the accounts whose users stayed served (the rows of others' accounts
// are left out by replaceSnapshot, which takes only the accounts it is given).
func (r *runner) writeAccounts(ctx context.Context) error {
	return writeSnapshots(ctx, r.accountSnapshots())
}

// accountSnapshots returns the writes of writeAccounts, one per bucket; an account
// whose snapshot row could not be built fails here, once.
func (r *runner) accountSnapshots() []func(context.Context) error {
	sch := schema.Accounts()
	byBucket := map[int][]string{}
	for _, a := range r.accounts {
		if a.user.isRefused() || a.user.err != nil {
			continue
		}
		if a.snapErr != nil {
			a.fail(fmt.Errorf("account %s: %w: %w", a.acct.ID, ErrBadResponse, a.snapErr))
			continue
		}
		byBucket[a.bucket] = append(byBucket[a.bucket], a.acct.ID)
	}
	today := dayOfTime(r.started, r.loc)
	var out []func(context.Context) error
	for _, bk := range sortedInts(byBucket) {
		out = append(out, r.snapshotWrite("accounts", accountsObject(today, bk), bk, sch, r.accountRows[bk], r.newAccountBuilder,
			byBucket[bk], &r.m.Counts.Accounts))
	}
	return out
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// replaceSnapshot rewrites a snapshot object in which each account's rows are replaced
// as a whole: every account listed (fetched) gets exactly its rows in the record fresh
// returns, none if it has none; other accounts keep theirs. Rows are compared without
// lineage columns; an account whose rows are equal keeps its old rows. Returns the
// rows of the fetched accounts. The read and the write of the object may be under way
// for several snapshots at once; what lies between (fresh's record, the old rows
// decoded, the merge and the encoding) is done by one snapshot at a time
// (runner.snapshotTurn).
func (r *runner) replaceSnapshot(ctx context.Context, kind, name string, sch *arrow.Schema, fresh func() (arrow.Record, error), accounts []string) (int64, error) {
	data, prev, err := r.getObject(ctx, name)
	if err != nil {
		return 0, err
	}
	r.snapshotTurn.Lock()
	count, enc, err := r.mergeSnapshot(kind, name, sch, data, prev, fresh, accounts)
	r.snapshotTurn.Unlock()
	if err != nil || enc == nil {
		return count, err
	}
	return count, r.putObject(ctx, kind, name, enc.data, enc.rows, prev)
}

// encoded is an object's encoded bytes and rows, waiting for their write.
type encoded struct {
	data []byte
	rows int64
}

// mergeSnapshot is replaceSnapshot between the read and the write: the new object's
// bytes, or nil when nothing is to be written.
func (r *runner) mergeSnapshot(kind, name string, sch *arrow.Schema, data []byte, prev *bucket.Attrs,
	fresh func() (arrow.Record, error), accounts []string) (int64, *encoded, error) {
	var old []arrow.Record
	if prev != nil {
		var err error
		if old, err = r.decodeObject(name, data, nil); err != nil {
			return 0, nil, err
		}
	}
	rec, err := fresh()
	if err != nil {
		for _, o := range old {
			o.Release()
		}
		return 0, nil, err
	}
	defer rec.Release()
	t := &table{schema: sch}
	defer func() {
		for _, o := range old {
			o.Release()
		}
	}()
	for _, o := range old {
		t.add(o)
	}
	nOld := len(t.recs)
	acctCol := fieldIndex(sch, "account_id")
	skip := []int{fieldIndex(sch, "_run_id"), fieldIndex(sch, "_extracted_at")}
	oldBy := map[string][]rowRef{}
	var order []string
	for s := 0; s < nOld; s++ {
		for i := 0; i < int(t.recs[s].NumRows()); i++ {
			ref := rowRef{int32(s), int32(i)}
			id := t.str(ref, acctCol)
			if oldBy[id] == nil {
				order = append(order, id)
			}
			oldBy[id] = append(oldBy[id], ref)
		}
	}
	newBy := map[string][]rowRef{}
	var count int64
	for _, id := range accounts {
		newBy[id] = []rowRef{} // fetched, even with no rows
		if oldBy[id] == nil {
			order = append(order, id)
		}
	}
	src := t.add(rec)
	for i := 0; i < int(rec.NumRows()); i++ {
		ref := rowRef{src, int32(i)}
		id := t.str(ref, acctCol)
		if _, ok := newBy[id]; !ok {
			continue // not an account of this object
		}
		newBy[id] = append(newBy[id], ref)
		count++
	}
	less := func(rows []rowRef) {
		sort.SliceStable(rows, func(i, j int) bool { return compareRows(t, rows[i], t, rows[j], skip) < 0 })
	}
	changed := false
	var rows []rowRef
	sort.Strings(order)
	for _, id := range order {
		nr, isNew := newBy[id]
		if !isNew {
			rows = append(rows, oldBy[id]...)
			continue
		}
		less(nr)
		or := oldBy[id]
		same := len(or) == len(nr)
		for i := 0; same && i < len(nr); i++ {
			same = compareRows(t, or[i], t, nr[i], skip) == 0
		}
		if same {
			rows = append(rows, or...)
		} else {
			changed = true
			rows = append(rows, nr...)
		}
	}
	if !changed && prev != nil {
		r.adopt(kind, name, prev, int64(len(rows)))
		return count, nil, nil
	}
	if len(rows) == 0 && prev == nil {
		return count, nil, nil
	}
	out, err := take(r.mem, sch, t, rows)
	if err != nil {
		return 0, nil, fmt.Errorf("build %s: %w", name, err)
	}
	defer out.Release()
	enc, n, err := encodeParquet(sch, []arrow.Record{out})
	if err != nil {
		return 0, nil, fmt.Errorf("encode %s: %w", name, err)
	}
	return count, &encoded{data: enc, rows: n}, nil
}
