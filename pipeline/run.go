package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// runner holds the state of one run. Its fields are grouped by the stage that sets
// them. Fields set before extraction starts are read-only afterwards and need no lock;
// the run's shared, growing state is guarded by mu.
type runner struct {
	// Configuration, set by Run before run starts; b is wrapped once in the lease guard
	// and lease set by run before loadState.
	cfg      Config
	loc      *time.Location
	runID    string
	started  time.Time
	log      *slog.Logger
	b        bucket.Bucket
	reads    *readCounter // counts every read through b
	mem      memory.Allocator
	txSch    *arrow.Schema
	cols     txCols
	apiStart akahu.Stats
	lease    *lease // nil in a dry run

	// Dataset state, set by openDataset, checkShards and loadState.
	ds        Dataset
	latest    *Manifest
	state     *runState       // the incremental state of the shard's buckets
	purged    map[string]bool // users this run purged: the state keeps nothing of them
	directory *tokenDirectory // what the state objects say of the fleet's tokens (until discovered)
	recorded  recordedUsers   // knownUser's index, built on first use
	resolved  *resolvedState  // the shard's resolved object (layout 2, several shards)
	crashed   []marker        // crashed runs whose leftovers this run must resolve
	recovered []string        // crashed runs already resolved by a committed run: clean up only
	// committedMarkers are markers of runs that committed but died before removing them.
	committedMarkers []string
	trackFresh       bool // the shard had transactions partitions at start

	// The plan, set by the plan stage (discover's pool fills each user from one
	// goroutine). During extraction users and accounts change only under their own
	// locks (userRun.mu, acctRun.mu). The planned windows are each account's months
	// (acctRun.months), which grow only on the run's goroutine between extraction
	// pools (reconcile's re-reads); ensureMarker reads them under mu.
	start    day
	end      day
	tokens   int // the fleet's user tokens (Config.Tokens), counted by discover
	users    []*userRun
	accounts []*acctRun
	orphans  *orphanSet // crashed runs' tombstones, loaded before extraction

	// accountRows are today's accounts-snapshot rows, by bucket, built by the plan
	// (selectAccounts) from the accounts' JSON, which is not kept, and sent to the
	// spill file in batches; accountRowsN counts those not yet spilled, and
	// accountRowsBytes their JSON.
	accountRows      map[int]*heldRows
	accountRowsN     int
	accountRowsBytes int

	// builders are the idle transactions builders, reused across walks (txBuilder)
	// and released when the run ends.
	buildersMu sync.Mutex
	builders   []*schema.TransactionBuilder
	spill      *spill // where extracted rows wait for the rest of their partition

	// mu guards the fields below while extraction pools run (extraction, merging and
	// writing; the re-reads of reconcile included). Between pools, and in reconcile's
	// scan, snapshots, manifest and cleanup, only the run's goroutine touches them.
	mu       sync.Mutex
	m        Manifest
	freshIDs map[string]partKey // ids new to their partition, when the dataset had data
	// suspicious is set when an id new to its partition could have been in the dataset
	// already (Akahu created it before the last committed run started): it may have
	// moved from a partition this run did not read, so every partition is scanned.
	suspicious bool
	deferred   []*heldPart
	held       map[partKey]*heldPart // deferred, by partition
	heldMem    int64                 // bytes of held partitions in memory (held.go)
	keptIDs    map[string]partKey    // while recovering: ids re-read into the partition that already had them
	watch      map[string]bool       // ids of crashed runs' tombstones: seen in a partition?
	pend       pendingRows           // pending transactions fetched, by bucket
	// snapshotTurn lets one snapshot at a time decode, merge and encode, while the
	// reads and writes of several are under way (replaceSnapshot).
	snapshotTurn sync.Mutex
	marker       bool // the in-flight marker is written
	// wrote is the generation of each object this run wrote (0: deleted): a later
	// read of it must find exactly that, and the run records one write per object.
	wrote    map[string]int64
	objIndex map[string]int // position of each object's write in m.Objects
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
	reads := &readCounter{Bucket: cfg.Out}
	r := &runner{
		cfg: cfg, loc: loc, b: bucket.WithHook(reads, cfg.BeforeWrite), reads: reads, mem: cfg.Memory,
		started: cfg.Now().UTC(),
		txSch:   schema.Transactions(),
		watch:   map[string]bool{},
		pend:    pendingRows{rows: map[int]*heldRows{}, fetched: map[int][]string{}},
	}
	r.runID = newRunID(r.started, cfg.Shard, hex.EncodeToString(rnd[:]))
	r.spill = &spill{dir: cfg.SpillDir, budget: max(cfg.HoldBytes, 0), mem: cfg.Memory, sch: r.txSch}
	defer r.spill.close()
	r.apiStart = cfg.Source.Stats() // a client may serve several runs: count this one's
	r.cols = newTxCols(r.txSch)
	r.log = cfg.Logger.With("run_id", r.runID)
	defer r.pend.release()
	defer r.releaseAccountRows()
	defer r.releaseTxBuilders()
	return r.run(ctx)
}

// run performs the stages in order: open the dataset, take the shard's lease, load
// the state, plan, extract (merging and writing each partition as its windows
// complete), reconcile (deletions, moves, tombstones, held partitions,
// snapshots), assemble the manifest, purge revoked users if asked, commit, clean up.
func (r *runner) run(ctx context.Context) (_ *Manifest, err error) {
	if err := r.openDataset(ctx); err != nil {
		return nil, err
	}
	if r.ds.Shards != 0 && r.ds.Shards != r.cfg.Shards {
		return nil, shardConflict(r.ds.Shards, r.cfg.Shards)
	}
	if !r.cfg.DryRun {
		l, lerr := acquireLock(ctx, r.b, lockObject(r.cfg.Shard, r.cfg.Shards), r.runID, r.cfg.LockTTL, r.cfg.LockWait, r.cfg.Now)
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
	if r.cfg.Shard >= r.ds.Buckets {
		// Not an error (the dataset stays valid, and a reshard may have been meant
		// for later), but the shard's work is none: say so where operators look.
		r.log.Warn("this shard owns no bucket and extracts nothing: the dataset has fewer buckets than shards, which adds no parallelism (buckets are fixed when a dataset is created; create one with --buckets a multiple of the shard count)",
			"shard", r.cfg.Shard, "shards", r.cfg.Shards, "buckets", r.ds.Buckets)
	}
	if err := r.loadState(ctx); err != nil {
		return nil, err
	}
	if err := r.planRange(); err != nil {
		return nil, err
	}
	if r.directory, err = r.loadDirectory(ctx); err != nil {
		return nil, err
	}
	want := r.accountChoice()
	if err := r.discover(ctx, func(u *userRun) { r.selectAccounts(u, want) }); err != nil {
		return nil, err
	}
	r.directory = nil // every token is resolved: the fleet's directory is not needed again
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.checkAppToken(); err != nil {
		return nil, err
	}
	if err := r.accountsSelected(want); err != nil {
		return nil, err
	}
	r.planWindows()
	r.log.Info("plan", "start", r.start.String(), "end", r.end.String(), "accounts", len(r.accounts), "windows", r.windowCount())
	if r.cfg.DryRun {
		r.printPlan(r.cfg.PlanOut)
		return nil, nil
	}
	r.refresh(ctx)
	orphans, err := r.loadOrphanTombstones(ctx)
	if err != nil {
		return nil, err
	}
	r.orphans = orphans
	defer orphans.release()
	if err := r.extractAll(ctx); err != nil {
		return nil, err
	}
	if err := r.reconcile(ctx); err != nil {
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
	if _, err := r.saveState(ctx); err != nil {
		// The run is committed; the next run starts from the older state and
		// re-reads a little more.
		r.log.Warn("state not saved", "err", err)
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

// sortedKeys returns map keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
