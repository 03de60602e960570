package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// fleetRun runs the given shards of n one after another over b, the backfill of the
// harness's range (or, with zero dates, the incremental run), and returns the /me
// and /accounts requests they made.
func fleetRun(t *testing.T, h *harness, b bucket.Bucket, tokens []akahu.Token, start, end time.Time, n int, shards ...int) (me, accounts int64) {
	t.Helper()
	return fleetRunCached(t, h, b, tokens, start, end, n, nil, shards...)
}

// fleetRunCached is fleetRun with the runs sharing cache, as a task's do.
func fleetRunCached(t *testing.T, h *harness, b bucket.Bucket, tokens []akahu.Token, start, end time.Time, n int, cache *pipeline.StateCache, shards ...int) (me, accounts int64) {
	t.Helper()
	st0 := h.srv.Stats()
	for _, shard := range shards {
		cfg := h.config(start, end)
		cfg.Out, cfg.Users, cfg.StateCache = b, tokens, cache
		cfg.Buckets, cfg.Shard, cfg.Shards = 8, shard, n
		if _, err := pipeline.Run(context.Background(), cfg); err != nil {
			t.Fatalf("shard %d of %d: %v", shard, n, err)
		}
	}
	st := h.srv.Stats()
	return st.ByKind["me"] - st0.ByKind["me"], st.ByKind["accounts"] - st0.ByKind["accounts"]
}

// resolvedObjects returns every shard's resolved object: its generation, bytes and
// token fingerprint → user lines.
func resolvedObjects(t *testing.T, b bucket.Bucket) map[string]resolvedObject {
	t.Helper()
	out := map[string]resolvedObject{}
	for _, a := range mustList(t, b, "_state/shard-") {
		data, attrs, err := b.Get(context.Background(), a.Name)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		o := resolvedObject{gen: attrs.Generation, data: data, users: map[string]string{}}
		for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			var e struct {
				User struct {
					TokenFP string `json:"token_fingerprint"`
					UserID  string `json:"user_id"`
				} `json:"user"`
			}
			if err := json.Unmarshal(l, &e); err != nil || e.User.TokenFP == "" || !strings.HasPrefix(e.User.UserID, "user_") {
				t.Fatalf("%s: line %q: %v", a.Name, l, err)
			}
			o.users[e.User.TokenFP] = e.User.UserID
		}
		out[a.Name] = o
	}
	return out
}

type resolvedObject struct {
	gen   int64
	data  []byte
	users map[string]string // token fingerprint → user id
}

// TestFleetAsksMeOncePerUser: the first run of a 4-shard fleet over a layout-2
// dataset, its shards one after another, asks GET /me once per user, not once per
// shard that meets the token: the first shard records the tokens of other shards'
// users in its resolved object, which the later shards read. The daily run after
// the backfill asks no /me, and shard 0 removes its resolved object: the owners'
// users objects now name every token in it. The objects' bytes do not depend on the
// order of the tokens or the number of workers.
//
// Shards run at the same time cost what they did before: each shard asks /me for
// every token no committed run has recorded yet (up to shards × users for a first
// fleet run), since a shard records what it resolved only after its commit.
func TestFleetAsksMeOncePerUser(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	users := int64(len(h.tokens))

	me, accounts := fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0, 1, 2, 3)
	if me != users || accounts != users {
		t.Errorf("first fleet run: %d /me and %d /accounts for %d users; want one of each per user", me, accounts, users)
	}
	objs := resolvedObjects(t, b)
	first := objs["_state/shard-000-of-004.users.jsonl.gz"]
	if len(first.users) == 0 || len(first.users) >= len(h.tokens) {
		t.Fatalf("shard 0's resolved object names %d of %d tokens; want the users of the other shards (objects %v)", len(first.users), len(h.tokens), slices.Collect(maps.Keys(objs)))
	}
	if len(objs) != 1 {
		t.Errorf("resolved objects %v; want shard 0's alone (it resolved every token the later shards met)", slices.Collect(maps.Keys(objs)))
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	// The daily run: every token is known.
	h.shift.Add(int64(24 * time.Hour))
	me, accounts = fleetRun(t, h, b, h.tokens, time.Time{}, time.Time{}, 4, 0, 1, 2, 3)
	if me != 0 || accounts != users {
		t.Errorf("daily fleet run: %d /me and %d /accounts for %d users; want none and one per user", me, accounts, users)
	}
	if left := resolvedObjects(t, b); len(left) != 0 {
		t.Errorf("resolved objects %v left after the daily run; want none (the owners recorded every token)", slices.Collect(maps.Keys(left)))
	}
	h.shift.Add(int64(24 * time.Hour))
	if me, _ = fleetRun(t, h, b, h.tokens, time.Time{}, time.Time{}, 4, 0, 1, 2, 3); me != 0 {
		t.Errorf("second daily fleet run: %d /me", me)
	}
	if left := resolvedObjects(t, b); len(left) != 0 {
		t.Errorf("resolved objects %v written by the second daily run", slices.Collect(maps.Keys(left)))
	}

	// Deterministic bytes: another dataset, the tokens in reverse, one worker.
	b2 := newLocal(t)
	rev := slices.Clone(h.tokens)
	slices.Reverse(rev)
	cfgWorkers := func() { // the harness's config has 4 workers; run shard 0 with 1
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Out, cfg.Users, cfg.Workers = b2, rev, 1
		cfg.Buckets, cfg.Shard, cfg.Shards = 8, 0, 4
		if _, err := pipeline.Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	cfgWorkers()
	again := resolvedObjects(t, b2)["_state/shard-000-of-004.users.jsonl.gz"]
	if !bytes.Equal(again.data, first.data) {
		t.Errorf("shard 0's resolved object differs with the tokens in another order: %d bytes vs %d", len(again.data), len(first.data))
	}
}

// TestResolvedSurvivesReshard: the resolved objects are read whatever shard count
// wrote them. Shard 3 of a 4-way fleet never runs, so its users are recorded only
// in shard 0's resolved object: shard 0's next run keeps those lines (and drops
// those shards 1 and 2 recorded), the run after that leaves the object as it is,
// and after a reshard to 2 ways neither shard asks /me.
func TestResolvedSurvivesReshard(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	users := int64(len(h.tokens))
	if me, _ := fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0, 1, 2); me != users {
		t.Errorf("shards 0-2 of 4: %d /me for %d users; want one per user", me, users)
	}
	const name = "_state/shard-000-of-004.users.jsonl.gz"
	first := resolvedObjects(t, b)[name]
	if me, _ := fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0); me != 0 {
		t.Errorf("shard 0 again: %d /me", me)
	}
	kept := resolvedObjects(t, b)[name]
	if len(kept.users) == 0 || len(kept.users) >= len(first.users) {
		t.Errorf("shard 0's resolved object: %d lines, then %d; want those of shard 3's users alone", len(first.users), len(kept.users))
	}
	for fp, id := range kept.users {
		if first.users[fp] != id {
			t.Errorf("line %s → %s not in the first object", fp, id)
		}
	}
	fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0)
	if again := resolvedObjects(t, b)[name]; again.gen != kept.gen {
		t.Errorf("%s rewritten by a run that changed nothing (generation %d, was %d)", name, again.gen, kept.gen)
	}
	if _, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// No run of 4 shards will prune the old count's objects again: the reshard folds
	// their lines into shard 0's object of the new count, which its runs prune.
	const into = "_state/shard-000-of-002.users.jsonl.gz"
	objs := resolvedObjects(t, b)
	if len(objs) != 1 || !maps.Equal(objs[into].users, kept.users) {
		t.Errorf("resolved objects after the reshard: %d (%s: %d lines); want only %s, with the %d lines of %s", len(objs), into, len(objs[into].users), into, len(kept.users), name)
	}
	if me, accounts := fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 2, 0, 1); me != 0 || accounts != users {
		t.Errorf("after the reshard to 2: %d /me and %d /accounts for %d users; want none and one per user", me, accounts, users)
	}
	fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 2, 0)
	if objs := resolvedObjects(t, b); len(objs) != 0 {
		t.Errorf("%d resolved objects left once every user's own shard recorded it (%s: %d lines); want none", len(objs), into, len(objs[into].users))
	}
	// Resharding to the count it has finishes an interrupted fold; with one shard no
	// resolved object is read, so the fold deletes them.
	putJSONLines(t, b, "_state/shard-001-of-004.users.jsonl.gz", kept.data)
	if old, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond}); err != nil || old != 2 {
		t.Fatalf("reshard 2 → 2: old %d, %v", old, err)
	}
	if objs := resolvedObjects(t, b); len(objs) != 1 || !maps.Equal(objs[into].users, kept.users) {
		t.Errorf("after resharding to the same count, %d resolved objects; want the left-over one folded into %s", len(objs), into)
	}
	if _, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: b, Shards: 1, LockWait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if objs := resolvedObjects(t, b); len(objs) != 0 {
		t.Errorf("after the reshard to 1: %d resolved objects; want none", len(objs))
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}

// putJSONLines writes data (a resolved object's bytes) as name.
func putJSONLines(t *testing.T, b bucket.Bucket, name string, data []byte) {
	t.Helper()
	if _, err := b.Put(context.Background(), name, data, bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
}

// TestPurgeForgetsResolved: a purged user is forgotten everywhere, its lines in
// the resolved objects too; the other users' lines stay.
func TestPurgeForgetsResolved(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0, 1, 2, 3)
	before := resolvedObjects(t, b)
	var victim string
	for _, o := range before {
		for _, id := range o.users {
			victim = max(victim, id)
		}
	}
	if victim == "" {
		t.Fatal("no resolved object names a user")
	}
	if _, err := pipeline.Purge(ctx, pipeline.PurgeConfig{Out: b, UserID: victim, LockWait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for name, o := range resolvedObjects(t, b) {
		want := 0
		for fp, id := range before[name].users {
			if id == victim {
				continue
			}
			want++
			if o.users[fp] != id {
				t.Errorf("%s lost %s's line", name, id)
			}
		}
		if len(o.users) != want {
			t.Errorf("%s has %d lines after the purge of %s, want %d: %v", name, len(o.users), victim, want, o.users)
		}
	}
}

// TestResolvedNamesNoRevokedUser: a revoked token that only another shard's
// resolved object names is not purged on that entry's word: a purge names a revoked
// token's user by the owning bucket's users object (or this run's /me) alone, as
// before the resolved objects existed.
func TestResolvedNamesNoRevokedUser(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0)
	var victim string
	for _, id := range resolvedObjects(t, b)["_state/shard-000-of-004.users.jsonl.gz"].users {
		victim = max(victim, id)
	}
	if victim == "" {
		t.Fatal("shard 0 recorded no other shard's user")
	}
	h.srv.RevokeUser(victim)
	var revoked []pipeline.UserStatus
	var purges int
	for shard := 1; shard < 4; shard++ {
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Buckets, cfg.Shard, cfg.Shards, cfg.PurgeRevoked = 8, shard, 4, true
		m, err := pipeline.Run(context.Background(), cfg)
		if m == nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		for _, u := range m.Users {
			if u.Status == "revoked" {
				revoked = append(revoked, u)
			}
		}
		purges += len(m.Purges)
	}
	if len(revoked) != 1 || purges != 0 || !strings.HasPrefix(revoked[0].Note, "not purged") || revoked[0].UserID != "" {
		t.Errorf("revoked %s, named by shard 0's resolved object only: users %+v, %d purges; want it reported, unnamed and not purged", victim, revoked, purges)
	}
}

// TestResolvedLostRace: the resolved object is written on the condition of the
// generation read; another writer's object is never overwritten, and the run that
// lost the race still succeeds (the next run asks /me again).
func TestResolvedLostRace(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	const name = "_state/shard-000-of-004.users.jsonl.gz"
	var rival bytes.Buffer
	zw := gzip.NewWriter(&rival)
	_, _ = zw.Write([]byte(`{"user":{"token_fingerprint":"rival","user_id":"user_rival"}}` + "\n"))
	_ = zw.Close()
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.Buckets, cfg.Shard, cfg.Shards = 8, 0, 4
	cfg.BeforeWrite = func(object string) {
		if object == name {
			if _, err := b.Put(context.Background(), name, rival.Bytes(), bucket.Condition{DoesNotExist: true}); err != nil {
				t.Errorf("rival write: %v", err)
			}
		}
	}
	if _, err := pipeline.Run(context.Background(), cfg); err != nil {
		t.Fatalf("shard 0, its resolved object's write lost: %v", err)
	}
	got := resolvedObjects(t, b)[name]
	if !bytes.Equal(got.data, rival.Bytes()) {
		t.Errorf("%s: the rival's object was overwritten: %v", name, got.users)
	}
}

// TestStateCacheReadsUnchangedObjectsOnce: a process that runs a fleet's shards one
// after another (the command's --tasks) shares a StateCache: each run reads the
// other buckets' users objects only if they changed since a run of the process read
// them, and the runs decide as they would without it (no /me for a known token, every
// user once). Without the cache, every run reads every bucket's users object.
func TestStateCacheReadsUnchangedObjectsOnce(t *testing.T) {
	local := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, local, opts)
	users := int64(len(h.tokens))
	b := &countingBucket{Bucket: local, gets: map[string]int{}}
	cache := pipeline.NewStateCache()
	round := func(start, end time.Time, cache *pipeline.StateCache) (gets map[string]int, me, accounts int64) {
		t.Helper()
		b.mu.Lock()
		clear(b.gets)
		b.mu.Unlock()
		me, accounts = fleetRunCached(t, h, b, h.tokens, start, end, 4, cache, 0, 1, 2, 3)
		gets = map[string]int{}
		b.mu.Lock()
		defer b.mu.Unlock()
		for name, n := range b.gets {
			if strings.HasPrefix(name, "_state/bucket-") && strings.HasSuffix(name, ".users.jsonl.gz") {
				gets[name] = n
			}
		}
		return gets, me, accounts
	}

	_, me, accounts := round(h.opts.From, h.opts.To, cache)
	if me != users || accounts != users {
		t.Errorf("backfill with the cache: %d /me and %d /accounts for %d users; want one of each per user", me, accounts, users)
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	h.shift.Add(int64(24 * time.Hour))
	gets, me, accounts := round(time.Time{}, time.Time{}, cache)
	if me != 0 || accounts != users {
		t.Errorf("daily run with the cache: %d /me and %d /accounts for %d users; want none and one per user", me, accounts, users)
	}
	if len(gets) == 0 {
		t.Fatal("no users object was read")
	}
	for name, n := range gets {
		if n > 2 { // its owner's read, and at most one for the other shards' runs
			t.Errorf("%s read %d times by the four runs sharing a cache; want at most 2", name, n)
		}
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	h.shift.Add(int64(24 * time.Hour))
	gets, me, _ = round(time.Time{}, time.Time{}, nil)
	if me != 0 {
		t.Errorf("daily run without the cache: %d /me", me)
	}
	if most := slices.Max(slices.Collect(maps.Values(gets))); most != 4 {
		t.Errorf("without the cache a users object was read at most %d times by the four runs; want 4 (each run reads every bucket's)", most)
	}
}

// failDelete fails every Delete of an object whose name starts with prefix.
type failDelete struct {
	bucket.Bucket
	prefix string
}

func (f failDelete) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	if strings.HasPrefix(name, f.prefix) {
		return errInjected
	}
	return f.Bucket.Delete(ctx, name, cond)
}

// TestReshardFoldInterrupted: a reshard whose fold of the old count's resolved
// objects fails after the new count is recorded says so and to run it again; the
// fleet meanwhile runs as before (the old object is still read: no /me), and the
// reshard run again finishes the fold.
func TestReshardFoldInterrupted(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 1
	h := newHarness(t, b, opts)
	fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 4, 0)
	const old, into = "_state/shard-000-of-004.users.jsonl.gz", "_state/shard-000-of-002.users.jsonl.gz"
	lines := resolvedObjects(t, b)[old].users
	if len(lines) == 0 {
		t.Fatalf("shard 0 of 4 resolved no token for other shards")
	}
	_, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: failDelete{b, old}, Shards: 2, LockWait: time.Millisecond})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "run the reshard again") {
		t.Fatalf("reshard with the old object's delete failing: %v; want the failure, and to run it again", err)
	}
	if objs := resolvedObjects(t, b); len(objs) != 2 || !maps.Equal(objs[into].users, lines) {
		t.Errorf("after the interrupted fold: %d resolved objects; want the old one and %s with its %d lines", len(objs), into, len(lines))
	}
	if me, accounts := fleetRun(t, h, b, h.tokens, h.opts.From, h.opts.To, 2, 0, 1); me != 0 || accounts != int64(len(h.tokens)) {
		t.Errorf("2 shards after the interrupted fold: %d /me, %d /accounts for %d users; want none and one per user", me, accounts, len(h.tokens))
	}
	if _, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if objs := resolvedObjects(t, b); objs[old].users != nil {
		t.Errorf("%s still there after the reshard ran again", old)
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}
