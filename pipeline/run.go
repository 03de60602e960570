package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// runner holds the state of one run.
type runner struct {
	cfg     Config
	loc     *time.Location
	runID   string
	started time.Time
	log     *slog.Logger
	b       bucket.Bucket
	mem     memory.Allocator
	txSch   *arrow.Schema
	cols    txCols
	ds      Dataset

	latest    *Manifest
	crashed   []marker // crashed runs whose leftovers this run must resolve
	recovered []string // crashed runs already resolved by a committed run: clean up only
	// committedMarkers are markers of runs that committed but died before removing them.
	committedMarkers []string
	start            day
	end              day
	users            []*userRun
	accounts         []*acctRun
	windows          []*window
	lease            *lease

	mu         sync.Mutex
	m          Manifest
	freshIDs   map[string]partKey // ids new to their partition, when the dataset had data
	trackFresh bool               // the shard had transactions partitions at start
	// suspicious is set when an id new to its partition could have been in the dataset
	// already (Akahu created it before the last committed run started): it may have
	// moved from a partition this run did not read, so every partition is scanned.
	suspicious bool
	deferred   []*heldPart
	watch      map[string]bool // ids of crashed runs' tombstones: seen in a partition?
	pending    map[string]arrow.Record
	marker     bool
	orphans    *orphanSet
	builders   sync.Pool // *schema.TransactionBuilder, reused across windows
	apiStart   akahu.Stats

	held map[partKey]*heldPart // deferred, by partition
	// wrote is the generation of each object this run wrote (0: deleted): a later
	// read of it must find exactly that, and the run records one write per object.
	wrote    map[string]int64
	objIndex map[string]int // position of each object's write in m.Objects
}

// txBuilder returns a transactions builder from the pool; each keeps its buffers
// between windows.
func (r *runner) txBuilder() *schema.TransactionBuilder {
	if b, ok := r.builders.Get().(*schema.TransactionBuilder); ok {
		return b
	}
	return schema.NewTransactionBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
}

// heldPart is a merged partition held back to the end because it may lose rows.
type heldPart struct {
	key  partKey
	prev *bucket.Attrs
	res  *mergeResult
}

// Run executes one run and returns its manifest. The manifest is also returned, with
// an error wrapping ErrPartial, when the run committed but some users or accounts
// failed. A nil manifest means nothing was committed.
func Run(ctx context.Context, cfg Config) (*Manifest, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("%w: time zone %q: %v", ErrConfig, cfg.TimeZone, err)
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	r := &runner{
		cfg: cfg, loc: loc, b: cfg.Out, mem: cfg.Memory,
		started: cfg.Now().UTC(),
		txSch:   schema.Transactions(),
		watch:   map[string]bool{},
		pending: map[string]arrow.Record{},
	}
	r.runID = newRunID(r.started, cfg.Shard, hex.EncodeToString(rnd[:]))
	r.apiStart = cfg.Source.Stats() // a client may serve several runs: count this one's
	r.cols = newTxCols(r.txSch)
	r.log = cfg.Logger.With("run_id", r.runID)
	for i, t := range cfg.Users {
		r.users = append(r.users, &userRun{index: i, token: t, fp: tokenFingerprint(t)})
	}
	defer func() {
		for _, rec := range r.pending {
			rec.Release()
		}
	}()
	return r.run(ctx)
}

func (r *runner) run(ctx context.Context) (_ *Manifest, err error) {
	if err := r.openDataset(ctx); err != nil {
		return nil, err
	}
	if r.ds.Shards != 0 && r.ds.Shards != r.cfg.Shards {
		return nil, shardConflict(r.ds.Shards, r.cfg.Shards)
	}
	if !r.cfg.DryRun {
		l, lerr := acquireLock(ctx, r.b, lockObject(r.cfg.Shard, r.cfg.Shards), r.runID, r.cfg.LockTTL, r.cfg.LockWait, r.cfg.Now, r.cfg.BeforeWrite)
		if lerr != nil {
			return nil, lerr
		}
		r.lease = l
		defer func() {
			if err := l.release(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("lock release failed", "err", err)
			}
		}()
		// From here the run writes only through the lease and stops when it is lost.
		guarded := &leasedBucket{Bucket: r.b, leases: []*lease{l}}
		r.b = guarded
		var stop context.CancelFunc
		ctx, stop = l.bind(ctx)
		defer stop()
		defer func() { err = leaseError(guarded, err) }()
		if err := r.checkShards(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.loadState(ctx); err != nil {
		return nil, err
	}
	if err := r.planRange(); err != nil {
		return nil, err
	}
	r.discover(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.checkAppToken(); err != nil {
		return nil, err
	}
	if err := r.selectAccounts(); err != nil {
		return nil, err
	}
	r.planWindows()
	r.log.Info("plan", "start", r.start.String(), "end", r.end.String(), "accounts", len(r.accounts), "windows", len(r.windows))
	if r.cfg.DryRun {
		r.printPlan(r.cfg.PlanOut)
		return nil, nil
	}
	orphans, err := r.loadOrphanTombstones(ctx)
	if err != nil {
		return nil, err
	}
	r.orphans = orphans
	defer orphans.release()
	if err := r.extractAll(ctx); err != nil {
		return nil, err
	}
	if err := r.finish(ctx); err != nil {
		return nil, err
	}
	m := r.manifest()
	if r.cfg.PurgeRevoked {
		if err := r.purgeRevoked(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := r.commit(ctx, m); err != nil {
		return nil, err
	}
	r.cleanup(ctx)
	if len(m.Failures) > 0 {
		return m, fmt.Errorf("%w: %s", ErrPartial, strings.Join(m.Failures, "; "))
	}
	if r.cfg.FailOnRevoked {
		var refused []string
		for _, u := range r.users {
			if u.isRefused() {
				refused = append(refused, u.err.Error())
			}
		}
		if len(refused) > 0 {
			return m, fmt.Errorf("%w: %d user(s) refused: %s", ErrPartial, len(refused), strings.Join(refused, "; "))
		}
	}
	return m, nil
}

// openDataset reads _dataset.json, creating it on first use, and checks that this
// run's settings agree with it.
func (r *runner) openDataset(ctx context.Context) error {
	want := Dataset{LayoutVersion: LayoutVersion, SchemaVersion: schema.Version, TimeZone: r.loc.String(),
		Grain: "month", Buckets: r.cfg.Buckets, CreatedAt: r.started, Shards: r.cfg.Shards}
	data, _, err := r.b.Get(ctx, datasetObject)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		if r.cfg.DryRun {
			r.ds = want
			return nil
		}
		buf, _ := json.MarshalIndent(want, "", "  ")
		r.cfg.BeforeWrite(datasetObject)
		if _, err := r.b.Put(ctx, datasetObject, buf, bucket.Condition{DoesNotExist: true}); err != nil && !errors.Is(err, bucket.ErrConflict) {
			return fmt.Errorf("create %s in %s: %w", datasetObject, r.b, err)
		}
		return r.openDataset(ctx)
	case err != nil:
		return fmt.Errorf("read %s in %s: %w", datasetObject, r.b, err)
	}
	var ds Dataset
	if err := json.Unmarshal(data, &ds); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, datasetObject, err)
	}
	switch {
	case ds.LayoutVersion != LayoutVersion:
		return fmt.Errorf("%w: layout version %d, this tool writes %d", ErrDatasetMismatch, ds.LayoutVersion, LayoutVersion)
	case ds.TimeZone != want.TimeZone:
		return fmt.Errorf("%w: dataset time zone is %s, run asked for %s", ErrDatasetMismatch, ds.TimeZone, want.TimeZone)
	case r.cfg.Buckets != DefaultBuckets && ds.Buckets != r.cfg.Buckets:
		return fmt.Errorf("%w: dataset has %d buckets, run asked for %d", ErrDatasetMismatch, ds.Buckets, r.cfg.Buckets)
	case ds.SchemaVersion > schema.Version:
		return fmt.Errorf("%w: dataset schema version %d is newer than this tool's %d", ErrDatasetMismatch, ds.SchemaVersion, schema.Version)
	}
	r.ds = ds
	return nil
}

// loadState reads the latest committed manifest, crashed runs' markers and the list
// of transactions partitions this shard owns.
func (r *runner) loadState(ctx context.Context) error {
	latest, err := latestManifest(ctx, r.b, r.cfg.Shard, r.cfg.Shards)
	if err != nil {
		return err
	}
	r.latest = latest
	crashed, err := crashedRuns(ctx, r.b, r.cfg.Shard, r.runID)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	if latest != nil {
		for _, id := range latest.Recovered {
			done[id] = true
		}
	}
	for _, c := range crashed {
		switch _, err := r.b.Attrs(ctx, manifestObject(c.RunID)); {
		case err == nil:
			// The run committed and died before removing its marker: its tombstones
			// are committed ones. Only the marker goes.
			r.committedMarkers = append(r.committedMarkers, c.RunID)
		case !errors.Is(err, bucket.ErrNotFound):
			return fmt.Errorf("check manifest of run %s: %w", c.RunID, err)
		case done[c.RunID]:
			r.recovered = append(r.recovered, c.RunID)
		default:
			r.crashed = append(r.crashed, c)
		}
	}
	list, err := r.b.List(ctx, txPrefix)
	if err != nil {
		return fmt.Errorf("list %s in %s: %w", txPrefix, r.b, err)
	}
	// Ids new to their partition matter only when other partitions exist: they may
	// have moved from one. A first backfill keeps no per-id state at all.
	for _, a := range list {
		if p, ok := parseTxObject(a.Name); ok && p.bucket%r.cfg.Shards == r.cfg.Shard {
			r.trackFresh = true
			break
		}
	}
	if len(r.crashed) > 0 {
		r.log.Warn("recovering crashed runs", "runs", len(r.crashed))
	}
	return nil
}

// windowResult is the outcome of one window's cursor walk.
type windowResult struct {
	w    *window
	recs []arrow.Record
	err  error
}

// partState collects the windows of one partition until all are in.
type partState struct {
	key       partKey
	remaining int
	results   []windowResult
}

// extractAll walks every planned window and pending list.
func (r *runner) extractAll(ctx context.Context) error {
	return r.extract(ctx, r.windows, true)
}

// extractWindows walks extra windows (no pending lists).
func (r *runner) extractWindows(ctx context.Context, windows []*window) error {
	return r.extract(ctx, windows, false)
}

// extract walks windows through a bounded pool and merges each partition as soon as
// its last window is in. At most Workers+2 partitions are open at once.
//
// Windows are fed partition by partition, whatever order the caller lists them in: a
// partition takes a slot and all its windows go to the pool before the next
// partition asks for one. Every partition holding a slot can therefore complete, and
// its merge frees the slot; had a partition's windows been spread over the list, the
// slots could all be held by partitions waiting for windows the feed never reached.
func (r *runner) extract(ctx context.Context, windows []*window, withPending bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := map[partKey]*partState{}
	byPart := map[partKey][]*window{}
	var order []partKey // partitions in the order of their first window
	for _, w := range windows {
		ps := parts[w.part]
		if ps == nil {
			ps = &partState{key: w.part}
			parts[w.part] = ps
			order = append(order, w.part)
		}
		ps.remaining++
		byPart[w.part] = append(byPart[w.part], w)
	}
	slots := make(chan struct{}, r.cfg.Workers+2)
	ready := make(chan *partState, len(parts))
	var mu sync.Mutex
	var done atomic.Int64

	// Merging and encoding is about half the CPU of a run: two consumers, so it keeps
	// up with extraction and few partitions wait in memory.
	merge := pool.New().WithErrors().WithContext(ctx).WithCancelOnError()
	for range DefaultMergers {
		merge.Go(func(ctx context.Context) error {
			for ps := range ready {
				err := r.mergeAndWrite(ctx, ps)
				<-slots
				if err != nil {
					cancel()
					for range ready { // drain so producers never block
						<-slots
					}
					return err
				}
			}
			return nil
		})
	}

	extract := pool.New().WithContext(ctx).WithMaxGoroutines(r.cfg.Workers)
	// Pending transactions, one request per account, ride the same pool.
	for _, a := range r.accounts {
		if a.status == "skipped" || !withPending {
			continue
		}
		extract.Go(func(ctx context.Context) error {
			r.extractPending(ctx, a)
			return nil
		})
	}
feed:
	for _, key := range order {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		for _, w := range byPart[key] {
			extract.Go(func(ctx context.Context) error {
				res := r.extractWindow(ctx, w)
				if r.cfg.Progress != nil {
					r.cfg.Progress(int(done.Add(1)), len(windows))
				}
				mu.Lock()
				ps := parts[w.part]
				ps.results = append(ps.results, res)
				ps.remaining--
				last := ps.remaining == 0
				mu.Unlock()
				if last {
					ready <- ps
				}
				return nil
			})
		}
	}
	_ = extract.Wait()
	close(ready)
	if err := merge.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// extractWindow walks one window and normalises its pages into Arrow records.
func (r *runner) extractWindow(ctx context.Context, w *window) (res windowResult) {
	res.w = w
	a := w.acct
	if a.user.isRefused() || a.failed() {
		res.err = errSkipped
		return res
	}
	b := r.txBuilder()
	defer r.builders.Put(b)
	aw := akahu.LocalDates(w.span.from.civil(), w.span.to.civil(), r.loc)
	log := r.log.With("user", a.user.me.ID, "account", a.acct.ID, "window", w.part.month.String())
	err := r.cfg.Source.Transactions(ctx, a.user.token, a.acct.ID, aw, func(p akahu.Page) error {
		for i, item := range p.Items {
			if err := b.Append(item, a.acct.Currency); err != nil {
				return fmt.Errorf("%w: page %d item %d: %w", ErrBadResponse, p.Index, i, err)
			}
		}
		if b.Len() >= DefaultBatchRows {
			res.recs = append(res.recs, b.NewRecord())
		}
		return nil
	})
	if err == nil && b.Len() > 0 {
		res.recs = append(res.recs, b.NewRecord())
	}
	if err == nil {
		err = r.validateWindow(w, res.recs)
	}
	if err != nil {
		if b.Len() > 0 {
			b.NewRecord().Release() // drop the partial window; the builder goes back clean
		}
		for _, rec := range res.recs {
			rec.Release()
		}
		res.recs = nil
		res.err = fmt.Errorf("account %s, window %s..%s: %w", a.acct.ID, w.span.from, w.span.to, err)
		if refusal(err) {
			a.user.refuse(fmt.Errorf("user %d (%s): %w", a.user.index+1, a.user.me.ID, err))
		}
		a.fail(res.err)
		log.Error("window failed", "err", res.err)
		return res
	}
	var rows int64
	for _, rec := range res.recs {
		rows += rec.NumRows()
	}
	a.mu.Lock()
	a.rows += rows
	a.done = append(a.done, w.span)
	a.mu.Unlock()
	log.Debug("window extracted", "rows", rows)
	return res
}

var errSkipped = errors.New("skipped after an earlier failure of the same account or user")

// validateWindow checks what the client cannot: every row belongs to the account and
// is dated inside the window.
func (r *runner) validateWindow(w *window, recs []arrow.Record) error {
	t := &table{schema: r.txSch, recs: recs}
	for s := range recs {
		for i := 0; i < int(recs[s].NumRows()); i++ {
			ref := rowRef{int32(s), int32(i)}
			if acc := t.str(ref, r.cols.account); acc != w.acct.acct.ID {
				return fmt.Errorf("%w: transaction %s belongs to account %s, not %s", ErrBadResponse, t.str(ref, r.cols.id), acc, w.acct.acct.ID)
			}
			if d := day(t.i64(ref, r.cols.dateLocal)); !w.span.contains(d) {
				return fmt.Errorf("%w: transaction %s dated %s is outside the window %s..%s", ErrBadResponse, t.str(ref, r.cols.id), d, w.span.from, w.span.to)
			}
		}
	}
	return nil
}

// extractPending fetches one account's pending transactions.
func (r *runner) extractPending(ctx context.Context, a *acctRun) {
	if a.user.isRefused() {
		return
	}
	items, err := r.cfg.Source.Pending(ctx, a.user.token, a.acct.ID)
	if err == nil {
		b := schema.NewPendingBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
		defer b.Release()
		for i, it := range items {
			if err = b.Append(it, a.acct.Currency); err != nil {
				err = fmt.Errorf("%w: pending item %d: %w", ErrBadResponse, i, err)
				break
			}
		}
		if err == nil {
			// An empty list is an answer too: the account's pending rows are all
			// replaced, by none if need be.
			rec := b.NewRecord()
			r.mu.Lock()
			r.pending[a.acct.ID] = rec
			r.mu.Unlock()
			a.setPending("fetched")
			return
		}
	}
	if refusal(err) {
		a.user.refuse(fmt.Errorf("user %d (%s): %w", a.user.index+1, a.user.me.ID, err))
	}
	a.setPending("kept (request failed)")
	a.fail(fmt.Errorf("account %s, pending transactions (the previous pending rows are kept): %w", a.acct.ID, err))
}

// mergeAndWrite merges one partition with its fresh windows and writes it, or holds
// it back when it may lose rows.
func (r *runner) mergeAndWrite(ctx context.Context, ps *partState) error {
	if err := r.lease.check(); err != nil {
		return err
	}
	reread := map[string]span{}
	var fresh []arrow.Record
	for _, res := range ps.results {
		if res.err == nil {
			reread[res.w.acct.acct.ID] = res.w.span
			fresh = append(fresh, res.recs...)
		}
	}
	if len(reread) == 0 {
		return nil // every window of the partition failed: the file stays as it is
	}
	r.mu.Lock()
	h := r.held[ps.key]
	r.mu.Unlock()
	if h != nil {
		// A re-read (neighbouring month, or a month a transaction moved to) reached a
		// partition this run holds back: its windows join the held state, which is
		// written once at the end. Read from storage and written now, the partition
		// would change under the held write, which would then fail as a conflict with
		// this very run. Only this goroutine touches h until extraction is over.
		c := h.res.mergeMore(r.cols, fresh, reread)
		r.mu.Lock()
		r.noteMerge(ps.key, h.res.t, c)
		r.mu.Unlock()
		return nil
	}
	old, prev, err := r.readPartition(ctx, ps.key, nil)
	if err != nil {
		for _, rec := range fresh {
			rec.Release()
		}
		return err
	}
	res := mergePartition(r.cols, r.txSch, old, fresh, reread)
	r.mu.Lock()
	r.noteMerge(ps.key, res.t, res.mergeCounts)
	if len(res.candidates) > 0 {
		h := &heldPart{key: ps.key, prev: prev, res: res}
		r.deferred = append(r.deferred, h)
		if r.held == nil {
			r.held = map[partKey]*heldPart{}
		}
		r.held[ps.key] = h
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	defer res.t.release()
	rows, changed := res.final(r.cols, nil)
	r.noteWatched(res.t, rows)
	if !changed {
		r.adopt("transactions", txObject(ps.key), prev, int64(len(rows)))
		return nil
	}
	return r.writeTx(ctx, ps.key, res.t, rows, prev)
}

// noteMerge counts one merge into a partition and records the ids new to it. r.mu
// must be held.
func (r *runner) noteMerge(key partKey, t *table, c mergeCounts) {
	r.m.Counts.Updated += int64(c.updated)
	r.m.Counts.Unchanged += int64(c.same)
	r.m.Counts.Duplicates += int64(c.dupFresh)
	if r.trackFresh {
		if r.freshIDs == nil {
			r.freshIDs = map[string]partKey{}
		}
		for i, id := range c.fresh {
			r.freshIDs[id] = key
			if !r.suspicious && !r.surelyNew(t, c.freshRow[i]) {
				r.suspicious = true
			}
		}
	}
	r.m.Counts.Inserted += int64(len(c.fresh)) // moves are subtracted at the end
}

// clockSkew bounds how far this machine's clock and Akahu's may disagree.
const clockSkew = 5 * time.Minute

// surelyNew reports whether a row's transaction was created at Akahu after the last
// committed run started, so no earlier run can have written it anywhere.
func (r *runner) surelyNew(t *table, row rowRef) bool {
	if r.latest == nil || len(r.crashed) > 0 || t.col(row, r.cols.createdAt).IsNull(int(row.row)) {
		return false
	}
	return t.i64(row, r.cols.createdAt) > r.latest.StartedAt.Add(clockSkew).UnixMicro()
}

// readPartition reads a transactions object (all columns, or the named ones).
// A missing object is an empty partition.
func (r *runner) readPartition(ctx context.Context, key partKey, cols []string) ([]arrow.Record, *bucket.Attrs, error) {
	return r.readObject(ctx, txObject(key), cols)
}

func (r *runner) readObject(ctx context.Context, name string, cols []string) ([]arrow.Record, *bucket.Attrs, error) {
	data, attrs, err := r.b.Get(ctx, name)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, nil, r.checkOwn(name, nil)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := r.checkOwn(name, &attrs); err != nil {
		return nil, nil, err
	}
	var opts []parquetsink.ReadOption
	if len(cols) > 0 {
		opts = append(opts, parquetsink.Columns(cols...))
	}
	_, recs, err := parquetsink.Read(bytes.NewReader(data), int64(len(data)), r.mem, opts...)
	if err == nil && len(cols) == 0 {
		err = checkSchema(name, recs)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	return recs, &attrs, nil
}

// checkOwn fails when an object this run wrote earlier is no longer what it left
// (attrs nil: the object is absent): another writer changed it, and merging on top of
// its content would hide that.
func (r *runner) checkOwn(name string, attrs *bucket.Attrs) error {
	r.mu.Lock()
	gen, ok := r.wrote[name]
	r.mu.Unlock()
	var got int64
	if attrs != nil {
		got = attrs.Generation
	}
	if ok && got != gen {
		return fmt.Errorf("read %s: this run left generation %d, found %d (is another run writing this dataset?): %w", name, gen, got, bucket.ErrConflict)
	}
	return nil
}

// recordWrite notes one of this run's writes in the manifest: one entry per object,
// with the generation before the run and the one the run left. r.mu must be held.
func (r *runner) recordWrite(ow ObjectWrite) {
	if r.wrote == nil {
		r.wrote, r.objIndex = map[string]int64{}, map[string]int{}
	}
	r.wrote[ow.Path] = ow.Generation
	if i, ok := r.objIndex[ow.Path]; ok {
		ow.PreviousGeneration = r.m.Objects[i].PreviousGeneration
		r.m.Objects[i] = ow
		return
	}
	r.objIndex[ow.Path] = len(r.m.Objects)
	r.m.Objects = append(r.m.Objects, ow)
}

// noteWatched marks ids of crashed runs' tombstones that are present in a partition.
func (r *runner) noteWatched(t *table, rows []rowRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.watch) == 0 {
		return
	}
	for _, row := range rows {
		id := t.str(row, r.cols.id)
		if _, ok := r.watch[id]; ok {
			r.watch[id] = true
		}
	}
}

// writeTx encodes rows as a transactions partition and writes it.
func (r *runner) writeTx(ctx context.Context, key partKey, t *table, rows []rowRef, prev *bucket.Attrs) error {
	name := txObject(key)
	if len(rows) == 0 {
		return r.deleteObject(ctx, "transactions", name, prev)
	}
	rec, err := take(r.mem, r.txSch, t, rows)
	if err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	defer rec.Release()
	return r.writeRecords(ctx, "transactions", name, r.txSch, []arrow.Record{rec}, prev)
}

// writeRecords encodes records as Parquet and writes the object unless its bytes are
// already there.
func (r *runner) writeRecords(ctx context.Context, kind, name string, sch *arrow.Schema, recs []arrow.Record, prev *bucket.Attrs) error {
	data, rows, err := encodeParquet(sch, recs)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return r.putObject(ctx, kind, name, data, rows, prev)
}

// encodeParquet encodes records with the sink's defaults (deterministic bytes).
func encodeParquet(sch *arrow.Schema, recs []arrow.Record) ([]byte, int64, error) {
	var buf bytes.Buffer
	info, err := parquetsink.Write(&buf, sch, recs)
	if err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), info.Rows, nil
}

// readParquet decodes a whole Parquet object.
func readParquet(data []byte, mem memory.Allocator) (*arrow.Schema, []arrow.Record, error) {
	return parquetsink.Read(bytes.NewReader(data), int64(len(data)), mem)
}

// checkSchema rejects a transactions object whose columns are not this tool's
// (a file of a newer schema version, or a foreign file): merging it would lose columns.
func checkSchema(name string, recs []arrow.Record) error {
	if len(recs) == 0 || !strings.HasPrefix(name, txPrefix) {
		return nil
	}
	want := schema.Transactions()
	got := recs[0].Schema()
	if len(got.Fields()) != len(want.Fields()) {
		return fmt.Errorf("%d columns, this tool writes %d (schema version %d)", len(got.Fields()), len(want.Fields()), schema.Version)
	}
	for i, f := range want.Fields() {
		if g := got.Field(i); g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	return nil
}

// putObject writes one data object, conditional on the generation that was read
// (or on its absence), and records it in the manifest.
func (r *runner) putObject(ctx context.Context, kind, name string, data []byte, rows int64, prev *bucket.Attrs) error {
	crc := bucket.CRC32C(data)
	if prev != nil && prev.CRC32C == crc && prev.Size == int64(len(data)) {
		r.mu.Lock()
		r.m.Uploads.Skipped++
		r.mu.Unlock()
		r.adopt(kind, name, prev, rows)
		return nil
	}
	if err := r.ensureMarker(ctx); err != nil {
		return err
	}
	cond := bucket.Condition{DoesNotExist: true}
	var prevGen int64
	if prev != nil {
		cond = bucket.Condition{GenerationMatch: prev.Generation}
		prevGen = prev.Generation
	}
	r.cfg.BeforeWrite(name)
	attrs, err := r.b.Put(ctx, name, data, cond)
	if err != nil {
		if errors.Is(err, bucket.ErrConflict) {
			return fmt.Errorf("write %s: another writer changed it since generation %d (is another run writing this dataset?): %w", name, prevGen, err)
		}
		return fmt.Errorf("write %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m.Uploads.Objects++
	r.m.Uploads.Bytes += int64(len(data))
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "put", Bytes: int64(len(data)), Rows: rows,
		CRC32C: crc, Generation: attrs.Generation, PreviousGeneration: prevGen})
	return nil
}

// adopt records, while recovering crashed runs, an object whose bytes are already what
// this run would write: they may be a crashed run's, and Verify trusts only bytes a
// committed manifest records.
func (r *runner) adopt(kind, name string, prev *bucket.Attrs, rows int64) {
	if prev == nil || len(r.crashed) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.objIndex[name]; ok {
		return // this run wrote it, and its entry vouches for these bytes
	}
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "adopt", Bytes: prev.Size, Rows: rows,
		CRC32C: prev.CRC32C, Generation: prev.Generation, PreviousGeneration: prev.Generation})
}

func (r *runner) deleteObject(ctx context.Context, kind, name string, prev *bucket.Attrs) error {
	if prev == nil {
		return nil
	}
	if err := r.ensureMarker(ctx); err != nil {
		return err
	}
	r.cfg.BeforeWrite(name)
	if err := r.b.Delete(ctx, name, bucket.Condition{GenerationMatch: prev.Generation}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "delete", PreviousGeneration: prev.Generation})
	return nil
}

// ensureMarker writes the in-flight marker before the run's first data write.
func (r *runner) ensureMarker(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.marker {
		return nil
	}
	mk := marker{RunID: r.runID, Shard: r.cfg.Shard, Shards: r.cfg.Shards, StartedAt: r.started, Coverage: r.plannedCoverage()}
	data, _ := json.Marshal(mk)
	r.cfg.BeforeWrite(inflightObject(r.runID))
	if _, err := r.b.Put(ctx, inflightObject(r.runID), data, bucket.Condition{DoesNotExist: true}); err != nil {
		return fmt.Errorf("write in-flight marker %s: %w", inflightObject(r.runID), err)
	}
	r.marker = true
	return nil
}

func (r *runner) plannedCoverage() []Coverage {
	var out []Coverage
	for _, w := range r.windows {
		out = append(out, Coverage{UserID: w.acct.user.me.ID, AccountID: w.acct.acct.ID, From: w.span.from.String(), To: w.span.to.String()})
	}
	return out
}

// sortedKeys returns map keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
