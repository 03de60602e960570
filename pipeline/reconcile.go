package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the reconcile stage: deciding every deletion candidate
// (neighbouring months, by-id rounds, the presence scan), moving rows between
// partitions and writing the held partitions, tombstones first, then the snapshots.

// reconcile decides every deletion candidate, writes tombstones before the partitions
// that drop the rows, removes moved rows from the partitions they left, and writes the
// pending and account snapshots.
func (r *runner) reconcile(ctx context.Context) error {
	defer func() {
		for _, h := range r.deferred {
			h.res.t.release()
		}
	}()
	if err := r.lease.check(); err != nil {
		return err
	}
	orphans := r.orphans

	cands := r.candidates()
	// A candidate that no partition of this run received may have moved to a month
	// the run did not read: read the neighbouring months of those accounts first.
	if err := r.extractNeighbours(ctx, cands); err != nil {
		return err
	}
	// Still nowhere: ask Akahu for each one. A 404 confirms the deletion; a
	// transaction that moved further away is found with its new date, whose month is
	// then re-read; anything else keeps the row until a later run can tell. A month
	// re-read that way may have lost rows of its own (moved further still): they are
	// asked about in the next round, so no row becomes a deletion without Akahu's 404.
	keep, err := r.decideByID(ctx)
	if err != nil {
		return err
	}
	cands = r.candidates()
	for id := range keep {
		delete(cands, id)
	}

	// Presence: every partition of this shard is visited once, on disk or in memory.
	held := map[partKey]*heldPart{}
	for _, h := range r.deferred {
		held[h.key] = h
	}
	present := map[string]bool{}              // candidates found in another partition
	moveOut := map[partKey]map[string]bool{}  // ids to remove from partitions on disk
	dropHeld := map[partKey]map[string]bool{} // ids to remove from held partitions
	// The ids kept are copies: a parked partition's table goes after its visit.
	mark := func(m map[partKey]map[string]bool, k partKey, id string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][strings.Clone(id)] = true
	}
	var movedFresh int64 // moves whose new copy this run counted as inserted
	visit := func(key partKey, id string) {
		if c, ok := cands[id]; ok && c.h.key != key {
			present[c.id] = true
		}
		if _, ok := r.watch[id]; ok {
			r.watch[strings.Clone(id)] = true // a scanned record goes after its visit
		}
		fk, ok := r.freshIDs[id]
		if !ok {
			fk, ok = r.keptIDs[id] // a crashed run's half-move
		}
		if ok && fk != key {
			if _, isCand := cands[id]; isCand {
				return // leaves its held partition below
			}
			if held[key] != nil {
				mark(dropHeld, key, id)
			} else {
				mark(moveOut, key, id)
			}
		}
	}
	// Partitions on disk are scanned only when an id may have moved in from one the
	// run did not read, or a crashed run is being recovered; otherwise every candidate
	// is settled by this run's own partitions and Akahu's answer by id.
	var scanned map[partKey]int64 // generation of each partition scanned
	if r.suspicious || len(r.crashed) > 0 || len(r.watch) > 0 {
		if scanned, err = r.scanPartitions(ctx, held, visit); err != nil {
			return err
		}
	} else {
		for id, c := range cands {
			if fk, ok := r.freshIDs[id]; ok && fk != c.h.key {
				present[id] = true
			}
		}
	}
	if err := r.eachHeld(func(_ int, h *heldPart) error {
		for _, row := range h.res.rows {
			visit(h.key, h.res.t.str(row, r.cols.id))
		}
		return nil
	}); err != nil {
		return err
	}
	var deleted []cand
	for id, c := range cands {
		mark(dropHeld, c.h.key, id)
		if present[id] {
			if _, ok := r.freshIDs[id]; ok {
				movedFresh++
			}
		} else {
			deleted = append(deleted, c)
		}
	}
	sort.Slice(deleted, func(i, j int) bool { return deleted[i].id < deleted[j].id })
	// Held partitions' final rows, decided once (they count for the crashed runs'
	// tombstones too), and the deleted rows copied out for the tombstones, in the
	// order above.
	byPart := map[*heldPart][]int{} // indexes into deleted
	for i, d := range deleted {
		byPart[d.h] = append(byPart[d.h], i)
	}
	tb := &table{schema: r.txSch}
	defer tb.release()
	tombRows := make([]rowRef, len(deleted))
	finals := make([]heldFinal, len(r.deferred))
	if err := r.eachHeld(func(i int, h *heldPart) error {
		rows, changed := h.res.final(r.cols, dropHeld[h.key])
		finals[i] = heldFinal{rows, changed}
		r.noteWatched(h.res.t, rows)
		idx := byPart[h]
		if len(idx) == 0 {
			return nil
		}
		refs := make([]rowRef, len(idx))
		for j, k := range idx {
			refs[j] = deleted[k].row
		}
		rec, err := take(r.mem, r.txSch, h.res.t, refs)
		if err != nil {
			return fmt.Errorf("tombstones of %s: %w", txObject(h.key), err)
		}
		src := tb.add(rec)
		for j, k := range idx {
			tombRows[k] = rowRef{src, int32(j)}
		}
		return nil
	}); err != nil {
		return err
	}

	// 1. Tombstones: this run's deletions plus crashed runs' ones whose rows are gone.
	handled := map[string]bool{}
	for id := range cands {
		handled[id] = true
	}
	adopted := orphans.adoptable(r, handled)
	if err := r.writeTombstones(ctx, tb, tombRows, orphans, adopted); err != nil {
		return err
	}

	// 2. Held partitions without their dropped rows: each encoded in turn while the
	// writes of those before it are under way (uploads), all written before a moved
	// row leaves its old partition.
	if err := r.writeHeld(ctx, finals); err != nil {
		return err
	}
	// 3. Rows that moved into a re-read partition leave the one they were in.
	for _, key := range sortedParts(moveOut) {
		if err := r.removeMoved(ctx, key, moveOut[key], scanned[key]); err != nil {
			return err
		}
	}
	r.mu.Lock()
	nMoved := int64(len(present))
	// A move's new copy counted as inserted unless this run found it already there
	// (a crashed run's half-move).
	isFresh := func(id string) int64 {
		if _, ok := r.freshIDs[id]; ok {
			return 1
		}
		return 0
	}
	for _, ids := range moveOut {
		nMoved += int64(len(ids))
		for id := range ids {
			movedFresh += isFresh(id)
		}
	}
	for k, ids := range dropHeld {
		for id := range ids {
			if _, isCand := cands[id]; !isCand && held[k] != nil {
				nMoved++
				movedFresh += isFresh(id)
			}
		}
	}
	r.m.Counts.Moved = nMoved
	r.m.Counts.Inserted -= movedFresh
	r.m.Counts.Deleted = int64(len(deleted) + len(adopted))
	r.mu.Unlock()

	// 4. Snapshots, the pending and accounts objects of every bucket at once.
	return writeSnapshots(ctx, append(r.pendingSnapshots(), r.accountSnapshots()...))
}

// heldFinal is a held partition's final rows, and whether they differ from its
// object's.
type heldFinal struct {
	rows    []rowRef
	changed bool
}

// writeHeld writes the held partitions (r.deferred) that changed, with their final
// rows, and adopts the others as they are. Each is encoded in turn, its write going
// to the uploads while the next is encoded; it returns when every write has
// answered, with the first that failed.
func (r *runner) writeHeld(ctx context.Context, finals []heldFinal) error {
	up := newUploads(ctx, nil)
	for i, h := range r.deferred {
		if !finals[i].changed {
			r.adopt("transactions", txObject(h.key), h.prev, int64(len(finals[i].rows)))
			continue
		}
		err := r.loadHeld(h)
		var write func(context.Context) error
		var size int64
		if err == nil {
			write, size, err = r.encodeTx(h.key, h.res.t, finals[i].rows, h.prev)
			r.unloadHeld(h)
		}
		if err == nil {
			err = up.add(size, write)
		}
		if err != nil {
			if werr := up.wait(); werr != nil {
				return werr // a failed write cancelled the encoding's add
			}
			return err
		}
	}
	return up.wait()
}

// cand is a deletion candidate: a row of a held partition.
type cand struct {
	h   *heldPart
	row rowRef
	id  string // the row's id (a copy)
	// account is the row's account, one this run extracted.
	account *acctRun
}

// candidates returns the old rows of fully re-read accounts that Akahu did not return.
// Rows of accounts with a failed window are not candidates: they stay.
func (r *runner) candidates() map[string]cand {
	out := map[string]cand{}
	for _, h := range r.deferred {
		for _, c := range h.cands {
			a := r.accountByID(c.account)
			if a == nil || a.failed() {
				continue
			}
			out[c.id] = cand{h: h, row: c.row, id: c.id, account: a}
		}
	}
	return out
}

// maxByIDRounds bounds how many times the months found by id are re-read in one run;
// candidates still open after that keep their rows until a later run decides them.
const maxByIDRounds = 8

// decideByID asks Akahu about every candidate no partition of this run received,
// round after round, until the months those answers send the run to re-read bring no
// new candidate. It returns the candidates whose rows stay (undecided).
func (r *runner) decideByID(ctx context.Context) (map[string]bool, error) {
	keep, asked := map[string]bool{}, map[string]bool{}
	for round := 0; ; round++ {
		open := map[string]cand{}
		for id, c := range r.candidates() {
			if !asked[id] && !keep[id] {
				open[id] = c
			}
		}
		if len(open) == 0 {
			return keep, nil
		}
		if round == maxByIDRounds {
			r.log.Warn("deletions left undecided after re-reading the months transactions moved to; their rows stay until a later run",
				"rounds", round, "transactions", len(open))
			for id := range open {
				keep[id] = true
			}
			return keep, nil
		}
		undecided, reread, err := r.confirmCandidates(ctx, open)
		if err != nil {
			return nil, err
		}
		for id := range open {
			asked[id] = true
		}
		for id := range undecided {
			keep[id] = true
		}
		if !reread {
			return keep, nil // no month was re-read, so no new candidate can have appeared
		}
	}
}

// confirmCandidates looks up, by id, every candidate that no partition of this run
// received. It re-reads the month a found one moved to (reread reports whether it
// did), and returns the candidates it could not decide (their rows stay).
func (r *runner) confirmCandidates(ctx context.Context, cands map[string]cand) (undecided map[string]bool, reread bool, err error) {
	type lookup struct {
		id   string
		acct *acctRun
	}
	var todo []lookup
	for id, c := range cands {
		if _, fresh := r.freshIDs[id]; !fresh {
			todo = append(todo, lookup{id, c.account})
		}
	}
	if len(todo) == 0 {
		return nil, false, nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].id < todo[j].id })
	asked := map[partKey]map[*acctRun]bool{} // the re-reads below
	var mu sync.Mutex
	keep := map[string]bool{}
	var extra []*window
	p := pool.New().WithMaxGoroutines(r.cfg.Workers)
	for _, l := range todo {
		p.Go(func() {
			raw, err := r.cfg.Source.Transaction(ctx, l.acct.user.token, l.id)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, akahu.ErrNotFound) {
				return // deleted at Akahu: confirmed
			}
			m, perr := movedMonth(raw, r.loc)
			if err != nil || perr != nil {
				keep[l.id] = true
				r.log.Warn("cannot confirm a deletion; the row stays until a later run", "transaction", l.id,
					"account", l.acct.acct.ID, "err", errors.Join(err, perr))
				return
			}
			key := partKey{m, l.acct.bucket}
			if l.acct.hasMonth(m) || asked[key][l.acct] {
				// Its month was read: the row is there already (an earlier run, perhaps
				// a crashed one, wrote it) and the presence check below sees a move.
				return
			}
			if asked[key] == nil {
				asked[key] = map[*acctRun]bool{}
			}
			asked[key][l.acct] = true
			extra = append(extra, &window{acct: l.acct, part: key, span: span{m.first(), m.last()}})
		})
	}
	p.Wait()
	if len(extra) > 0 {
		r.log.Info("re-reading the months that transactions moved to", "windows", len(extra))
		if err := r.extractWindows(ctx, extra); err != nil {
			return nil, false, err
		}
		r.plan(extra)
	}
	return keep, len(extra) > 0, ctx.Err()
}

// movedMonth returns the local month of a transaction's date.
func movedMonth(raw []byte, loc *time.Location) (month, error) {
	var tx struct {
		Date string `json:"date"`
	}
	if err := json.Unmarshal(raw, &tx); err != nil {
		return month{}, fmt.Errorf("%w: transaction: %v", ErrBadResponse, err)
	}
	t, err := time.Parse(time.RFC3339Nano, tx.Date)
	if err != nil {
		return month{}, fmt.Errorf("%w: transaction date %q", ErrBadResponse, tx.Date)
	}
	return dayOfTime(t, loc).month(), nil
}

// extractNeighbours re-reads, for each account with a candidate that no partition of
// this run received, the month before its first window and the month after its last
// one (if that month has begun): a transaction whose date moved just outside the run's
// range is found there and recorded as moved, not deleted.
func (r *runner) extractNeighbours(ctx context.Context, cands map[string]cand) error {
	need := map[*acctRun]bool{}
	for id, c := range cands {
		if _, fresh := r.freshIDs[id]; !fresh {
			need[c.account] = true
		}
	}
	if len(need) == 0 {
		return nil
	}
	now := dayOfTime(r.cfg.Now(), r.loc).month()
	var extra []*window
	for _, a := range r.accounts {
		if !need[a] || len(a.months) == 0 {
			continue
		}
		lo, hi := a.months[0].from, a.months[len(a.months)-1].to
		for _, m := range []month{lo.add(-1), hi.next()} {
			if a.hasMonth(m) || now.before(m) {
				continue
			}
			extra = append(extra, newWindow(a, m))
		}
	}
	if len(extra) == 0 {
		return nil
	}
	r.log.Info("re-reading neighbouring months to tell moves from deletions", "windows", len(extra))
	if err := r.extractWindows(ctx, extra); err != nil {
		return err
	}
	r.plan(extra)
	return nil
}

// accountByID finds an account of the run by binary search: accountsSelected sorts
// r.accounts by id (a linear scan here made the reconcile stage O(accounts²)).
func (r *runner) accountByID(id string) *acctRun {
	i, ok := slices.BinarySearchFunc(r.accounts, id, func(a *acctRun, id string) int { return strings.Compare(a.acct.ID, id) })
	if !ok {
		return nil
	}
	return r.accounts[i]
}

func sortedParts[V any](m map[partKey]V) []partKey {
	out := make([]partKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return txObject(out[i]) < txObject(out[j]) })
	return out
}

// scanPartitions lists the transactions partitions of this shard and calls visit for
// every id of every partition that is not held in memory, reading only their footers
// and id column chunks, by range. It returns the generation of each partition it read.
func (r *runner) scanPartitions(ctx context.Context, held map[partKey]*heldPart, visit func(partKey, string)) (map[partKey]int64, error) {
	list, err := r.b.List(ctx, txPrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", txPrefix, r.b, err)
	}
	gens := map[partKey]int64{}
	for _, a := range list {
		key, ok := parseTxObject(a.Name)
		if !ok || key.bucket%r.cfg.Shards != r.cfg.Shard || held[key] != nil {
			continue
		}
		recs, gen, err := r.readIDs(ctx, key, a)
		if err != nil {
			return nil, err
		}
		gens[key] = gen
		for _, rec := range recs {
			ids := rec.Column(0).(*array.String)
			for i := 0; i < ids.Len(); i++ {
				visit(key, ids.Value(i))
			}
			rec.Release()
		}
	}
	return gens, nil
}

// removeMoved rewrites an untouched partition without rows that moved away: the
// generation scanned (gen), which the decision rests on, or it fails with ErrConflict.
func (r *runner) removeMoved(ctx context.Context, key partKey, ids map[string]bool, gen int64) error {
	old, prev, err := r.readPartition(ctx, key, nil)
	if err != nil {
		return err
	}
	if prev == nil || prev.Generation != gen {
		for _, rec := range old {
			rec.Release()
		}
		var got int64
		if prev != nil {
			got = prev.Generation
		}
		return fmt.Errorf("remove moved rows from %s: scanned generation %d, found %d (is another run writing this dataset?): %w",
			txObject(key), gen, got, bucket.ErrConflict)
	}
	t := &table{schema: r.txSch}
	defer t.release()
	var rows []rowRef
	for _, rec := range old {
		src := t.add(rec)
		for i := 0; i < int(rec.NumRows()); i++ {
			ref := rowRef{src, int32(i)}
			if !ids[t.str(ref, r.cols.id)] {
				rows = append(rows, ref)
			}
		}
	}
	r.log.Info("moved rows leave their old partition", "object", txObject(key), "rows", len(ids))
	return r.writeTx(ctx, key, t, rows, prev)
}
