package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds purges: Purge (a user or account, on request) and purgeRevoked
// (revoked users during a run), both removing rows and redacting earlier manifests.

// PurgeRecord is what a purge manifest records: the scope and how much was removed,
// never the removed values.
type PurgeRecord struct {
	Scope string           `json:"scope"` // user or account
	ID    string           `json:"id"`
	Rows  map[string]int64 `json:"rows"` // per dataset: transactions, pending, accounts, deletions
	// Manifests counts earlier manifests from which the scope's entries were removed.
	Manifests int    `json:"manifests_redacted"`
	Reason    string `json:"reason"`
}

// PurgeConfig configures Purge. Exactly one of UserID and AccountID is set.
type PurgeConfig struct {
	Out       bucket.Bucket
	UserID    string
	AccountID string
	// Shards is the dataset's shard count (zero: read it from the dataset); the purge
	// takes every shard's lock. A count other than the dataset's is refused.
	Shards      int
	LockWait    time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	ToolVersion string
	BeforeWrite func(string)
	Memory      memory.Allocator
	Reason      string
}

// Purge removes every row of a user or an account from all datasets (transactions,
// pending, accounts, deletions), removes the scope's entries from earlier manifests,
// and records the purge in a manifest of its own. It is idempotent: a second purge
// finds nothing and writes no data object.
func Purge(ctx context.Context, cfg PurgeConfig) (*Manifest, error) {
	if (cfg.UserID == "") == (cfg.AccountID == "") {
		return nil, fmt.Errorf("%w: purge needs exactly one of --user and --account", ErrConfig)
	}
	if cfg.UserID != "" && !strings.HasPrefix(cfg.UserID, "user_") {
		return nil, fmt.Errorf("%w: --user %q is not a user id (user_…)", ErrConfig, cfg.UserID)
	}
	if cfg.AccountID != "" && !strings.HasPrefix(cfg.AccountID, "acc_") {
		return nil, fmt.Errorf("%w: --account %q is not an account id (acc_…)", ErrConfig, cfg.AccountID)
	}
	if cfg.Out == nil {
		return nil, fmt.Errorf("%w: no output bucket", ErrConfig)
	}
	if cfg.Shards < 0 {
		return nil, fmt.Errorf("%w: --shards %d", ErrConfig, cfg.Shards)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Out = bucket.WithHook(cfg.Out, cfg.BeforeWrite) // every write point, for crash tests
	if cfg.Memory == nil {
		cfg.Memory = memory.DefaultAllocator
	}
	if cfg.Reason == "" {
		cfg.Reason = "requested"
	}
	if _, _, err := cfg.Out.Get(ctx, datasetObject); err != nil {
		return nil, fmt.Errorf("purge %s: not a dataset: %w", cfg.Out, err)
	}
	_, _, shards, _, err := datasetShards(ctx, cfg.Out)
	if err != nil {
		return nil, err
	}
	shards = max(shards, 1)
	if cfg.Shards != 0 && cfg.Shards != shards {
		return nil, fmt.Errorf("%w: %w: %s; the purge asked for --shards %d (leave --shards out: the purge takes every lock of the dataset's count)",
			ErrConfig, ErrDatasetMismatch, shardedWays(shards), cfg.Shards)
	}
	cfg.Shards = shards
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	started := cfg.Now().UTC()
	runID := newRunID(started, 0, hex.EncodeToString(rnd[:]))
	names := make([]string, cfg.Shards)
	for i := range names {
		names[i] = lockObject(i, cfg.Shards)
	}
	out, release, err := acquireAll(ctx, cfg.Out, names, runID, cfg.LockWait, cfg.Now)
	if err != nil {
		return nil, err
	}
	defer release()
	if _, _, cur, _, err := datasetShards(ctx, out); err != nil {
		return nil, err
	} else if max(cur, 1) != shards {
		return nil, fmt.Errorf("purge: the dataset's shard count changed from %d to %d while waiting for the locks; run it again", shards, cur)
	}
	m, err := purgeLocked(ctx, cfg, out, runID, started)
	return m, leaseError(out, err)
}

func purgeLocked(ctx context.Context, cfg PurgeConfig, out *leasedBucket, runID string, started time.Time) (*Manifest, error) {
	ctx, stop := out.bind(ctx)
	defer stop()
	p := &purger{b: out, mem: cfg.Memory, log: cfg.Logger.With("run_id", runID),
		user: cfg.UserID, account: cfg.AccountID, owns: func(string) bool { return true }}
	m := &Manifest{ManifestVersion: ManifestVersion, Kind: "purge", RunID: runID, Shards: cfg.Shards,
		StartedAt: started, ToolVersion: cfg.ToolVersion}
	rec, err := p.purge(ctx, m)
	if err != nil {
		return nil, err
	}
	rec.Reason = cfg.Reason
	m.Purge = rec
	m.FinishedAt = cfg.Now().UTC()
	if err := commitManifest(ctx, out, m); err != nil {
		return nil, err
	}
	return m, nil
}

// purger removes the rows of one user or account.
type purger struct {
	b             bucket.Bucket
	mem           memory.Allocator
	log           *slog.Logger
	user, account string
	owns          func(object string) bool // objects this shard may touch
}

func (p *purger) scope() (string, string) {
	if p.user != "" {
		return "user", p.user
	}
	return "account", p.account
}

func (p *purger) purge(ctx context.Context, m *Manifest) (*PurgeRecord, error) {
	scope, id := p.scope()
	rec := &PurgeRecord{Scope: scope, ID: id, Rows: map[string]int64{}}
	for _, prefix := range []string{txPrefix, pendingPrefix, accountsPrefix, deletionPrefix} {
		list, err := p.b.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		kind := strings.TrimSuffix(prefix, "/")
		for _, a := range list {
			if !strings.HasSuffix(a.Name, ".parquet") || !p.owns(a.Name) {
				continue
			}
			n, ow, err := p.purgeObject(ctx, kind, a.Name)
			if err != nil {
				return nil, err
			}
			rec.Rows[kind] += n
			if ow != nil {
				m.Objects = append(m.Objects, *ow)
			}
		}
	}
	n, err := p.redactManifests(ctx, m.RunID)
	if err != nil {
		return nil, err
	}
	rec.Manifests = n
	if err := redactState(ctx, p.b, p.user, p.account); err != nil {
		return nil, err
	}
	return rec, nil
}

// purgeObject rewrites one Parquet object without the scope's rows.
func (p *purger) purgeObject(ctx context.Context, kind, name string) (int64, *ObjectWrite, error) {
	data, attrs, err := p.b.Get(ctx, name)
	if errors.Is(err, bucket.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", name, err)
	}
	sch, recs, err := readParquet(data, p.mem)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	t := &table{schema: sch, recs: recs}
	defer t.release()
	col := fieldIndex(sch, "user_id")
	want := p.user
	if p.account != "" {
		col, want = fieldIndex(sch, "account_id"), p.account
	}
	var keep []rowRef
	var removed int64
	for s, r := range recs {
		for i := 0; i < int(r.NumRows()); i++ {
			ref := rowRef{int32(s), int32(i)}
			if t.str(ref, col) == want {
				removed++
			} else {
				keep = append(keep, ref)
			}
		}
	}
	if removed == 0 {
		return 0, nil, nil
	}
	ow := &ObjectWrite{Path: name, Kind: kind, PreviousGeneration: attrs.Generation}
	if len(keep) == 0 {
		ow.Op = "delete"
		if err := p.b.Delete(ctx, name, bucket.Condition{GenerationMatch: attrs.Generation}); err != nil {
			return 0, nil, fmt.Errorf("delete %s: %w", name, err)
		}
		return removed, ow, nil
	}
	// The file's key-values come back as the schema's metadata: its day digests
	// describe the rows before the purge. A transactions partition gets its
	// remaining rows' digests, so daily runs can still tell it unchanged from its
	// footer.
	sch = schemaWithout(sch, digestsKey)
	var opts []parquetsink.Option
	if key, ok := parseTxObject(name); ok && checkTxSchema(sch) == nil {
		if d, ok := digestRows(newTxCols(sch), t, keep, key.month); ok {
			opts = append(opts, parquetsink.WithKeyValue(digestsKey, d.String()))
		}
	}
	out, err := take(p.mem, sch, t, keep)
	if err != nil {
		return 0, nil, fmt.Errorf("build %s: %w", name, err)
	}
	defer out.Release()
	buf, rows, err := encodeParquet(sch, []arrow.Record{out}, opts...)
	if err != nil {
		return 0, nil, fmt.Errorf("encode %s: %w", name, err)
	}
	na, err := p.b.Put(ctx, name, buf, bucket.Condition{GenerationMatch: attrs.Generation})
	if err != nil {
		return 0, nil, fmt.Errorf("write %s: %w", name, err)
	}
	ow.Op, ow.Bytes, ow.Rows, ow.CRC32C, ow.Generation = "put", int64(len(buf)), rows, na.CRC32C, na.Generation
	p.log.Info("purged rows", "object", name, "rows", removed)
	return removed, ow, nil
}

// redactManifests removes the scope's entries (users, accounts, coverage, deleted
// values) from earlier manifests.
func (p *purger) redactManifests(ctx context.Context, self string) (int, error) {
	list, err := p.b.List(ctx, manifestPrefix)
	if err != nil {
		return 0, fmt.Errorf("list manifests: %w", err)
	}
	n := 0
	for _, a := range list {
		id, ok := runIDOfObject(a.Name, manifestPrefix)
		if !ok || id == self || !p.owns(a.Name) {
			continue
		}
		data, attrs, err := p.b.Get(ctx, a.Name)
		if err != nil {
			return n, fmt.Errorf("read %s: %w", a.Name, err)
		}
		m, err := decodeManifest(data, a.Name)
		if err != nil {
			return n, err
		}
		if !p.redact(m) {
			continue
		}
		m.Redacted = append(m.Redacted, self)
		out, _ := json.MarshalIndent(m, "", "  ")
		if _, err := p.b.Put(ctx, a.Name, out, bucket.Condition{GenerationMatch: attrs.Generation}); err != nil {
			return n, fmt.Errorf("redact %s: %w", a.Name, err)
		}
		n++
	}
	return n, nil
}

// redact removes the scope's entries from m and reports whether anything changed.
func (p *purger) redact(m *Manifest) bool {
	match := func(user, account string) bool {
		return (p.user != "" && user == p.user) || (p.account != "" && account == p.account)
	}
	// The scope's accounts, known before their entries are removed.
	scopeAccounts := map[string]bool{p.account: p.account != ""}
	for _, a := range m.Accounts {
		if match(a.UserID, a.AccountID) {
			scopeAccounts[a.AccountID] = true
		}
	}
	for _, c := range m.Coverage {
		if match(c.UserID, c.AccountID) {
			scopeAccounts[c.AccountID] = true
		}
	}
	var changed [6]bool
	m.Users, changed[0] = without(m.Users, func(u UserStatus) bool { return match(u.UserID, "") })
	m.Accounts, changed[1] = without(m.Accounts, func(a AccountStatus) bool { return match(a.UserID, a.AccountID) })
	m.Coverage, changed[2] = without(m.Coverage, func(c Coverage) bool { return match(c.UserID, c.AccountID) })
	m.Deleted, changed[3] = without(m.Deleted, func(d Tombstone) bool { return match(d.UserID, d.AccountID) })
	_, scopeID := p.scope()
	m.Failures, changed[4] = without(m.Failures, func(f string) bool { return strings.Contains(f, scopeID) })
	for id := range m.CoveredThrough {
		if scopeAccounts[id] {
			delete(m.CoveredThrough, id)
			changed[5] = true
		}
	}
	if m.Deleted == nil {
		m.Deleted = []Tombstone{}
	}
	return changed != [6]bool{}
}

// without returns xs without the elements drop matches, and whether it dropped any.
func without[T any](xs []T, drop func(T) bool) ([]T, bool) {
	var out []T
	dropped := false
	for _, x := range xs {
		if drop(x) {
			dropped = true
			continue
		}
		out = append(out, x)
	}
	return out, dropped
}

// tokenFingerprint identifies a token across runs without revealing it: 128 bits of a
// SHA-256 of a high-entropy secret, so two tokens never share one in practice.
// Manifests of older versions recorded the first 48 bits (12 hex digits).
func tokenFingerprint(t akahu.Token) string {
	s := sha256.Sum256([]byte("akahu-parquet/token-fingerprint/v1:" + string(t)))
	return hex.EncodeToString(s[:16])
}

// legacyFingerprintLen is the length of the 48-bit fingerprints of older manifests.
const legacyFingerprintLen = 12

// ownsObject reports whether an object belongs to this run's shard.
func (r *runner) ownsObject(name string) bool {
	if r.cfg.Shards == 1 {
		return true
	}
	if run, ok := parseDeletionObject(name); ok {
		return runShard(run) == r.cfg.Shard
	}
	if id, ok := runIDOfObject(name, manifestPrefix); ok {
		return runShard(id) == r.cfg.Shard
	}
	i := strings.LastIndex(name, "/part-")
	if i < 0 {
		return false
	}
	b, err := strconv.Atoi(strings.TrimSuffix(name[i+len("/part-"):], ".parquet"))
	return err == nil && b%r.cfg.Shards == r.cfg.Shard
}

// purgeRevoked removes the data of users whose access was revoked (Config.PurgeRevoked)
// and notes, on each revoked user of m, whether its data was purged or why not.
func (r *runner) purgeRevoked(ctx context.Context, m *Manifest) error {
	ids, notes := r.purgeTargets()
	for k := range m.Users {
		if note, ok := notes[m.Users[k].Index-1]; ok {
			m.Users[k].Note = note
		}
	}
	for _, i := range slices.Sorted(maps.Keys(notes)) {
		if note := notes[i]; note != notePurged {
			r.log.Warn("revoked user not purged", "index", i+1, "reason", note)
		}
	}
	for _, id := range ids {
		p := &purger{b: r.b, mem: r.mem, log: r.log, user: id, owns: r.ownsObject}
		rec, err := p.purge(ctx, m)
		if err != nil {
			return fmt.Errorf("purge revoked user %s: %w", id, err)
		}
		rec.Reason = "access revoked (401)"
		m.Purges = append(m.Purges, *rec)
		if r.purged == nil {
			r.purged = map[string]bool{}
		}
		r.purged[id] = true
	}
	if len(ids) > 0 {
		// The purge redacted the state objects: start again from them, so the
		// state this run saves keeps nothing of the purged users.
		st, err := loadRunState(ctx, r.b, r.ds.Buckets, r.cfg.Shard, r.cfg.Shards)
		if err != nil {
			return err
		}
		r.state = st
		if r.resolved != nil {
			if err := r.resolved.reload(ctx, r.b); err != nil {
				return err
			}
		}
	}
	return nil
}

// notePurged is the note on a revoked user whose data the run purged.
const notePurged = "data purged"

// purgeTargets decides which revoked users' data may be deleted: the sorted user ids,
// and a note per user of the run (by index) for each revoked one.
//
// Only a 401 is a revocation; a 403 never purges. A revoked token is named by this
// run's /me, or by the fingerprint the latest run recorded for it (knownUser, which
// refuses ambiguous matches). Nothing is purged when no user of the run was served
// (every user refused at once is more likely Akahu's problem or this deployment's
// than that many users withdrawing access together), nor while any token that was
// not revoked remains unidentified (it may be the same user's new token). A user id
// that another token of this run resolves to, or is recorded for, is never purged:
// that user still grants access through the other token.
func (r *runner) purgeTargets() ([]string, map[int]string) {
	notes := map[int]string{} // by token index, for the revoked users of this run
	var revoked []*userRun
	served, unidentified := 0, 0
	live := map[string]bool{}
	for _, u := range r.users {
		switch {
		case u.isRevoked():
			revoked = append(revoked, u)
			continue
		case u.status == "ok":
			served++
		}
		if u.me.ID == "" {
			unidentified++
		} else {
			live[u.me.ID] = true
		}
	}
	var ids []string
	seen := map[string]bool{}
	for _, u := range revoked {
		switch {
		case u.me.ID == "":
			notes[u.index] = "not purged: no earlier run recorded this token's user, or more than one"
		case served == 0:
			notes[u.index] = "not purged: no user of this run was served, so the revocation is not trusted"
		case live[u.me.ID]:
			notes[u.index] = "not purged: another token of this run belongs to the same user"
		case unidentified > 0:
			notes[u.index] = fmt.Sprintf("not purged this run: %d other token(s) could not be identified and may belong to this user", unidentified)
		default:
			notes[u.index] = notePurged
			if !seen[u.me.ID] {
				seen[u.me.ID] = true
				ids = append(ids, u.me.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids, notes
}

// schemaWithout returns sch without the metadata key (sch itself if it has none).
func schemaWithout(sch *arrow.Schema, key string) *arrow.Schema {
	md := sch.Metadata()
	if md.FindKey(key) < 0 {
		return sch
	}
	var keys, values []string
	for i, k := range md.Keys() {
		if k != key {
			keys, values = append(keys, k), append(values, md.Values()[i])
		}
	}
	kv := arrow.NewMetadata(keys, values)
	return arrow.NewSchema(sch.Fields(), &kv)
}
