package pipeline_test

import (
	"context"
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// claimShard is the shard of shards that owns user id in a layout-2 dataset of
// buckets buckets: FNV-1a of the id modulo the bucket count, modulo the shard count.
func claimShard(id string, buckets, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%uint32(buckets)) % shards
}

// claimedIDs returns the fake's user id of each of the harness's tokens.
func claimedIDs(t *testing.T, h *harness) []string {
	t.Helper()
	byToken := map[string]string{}
	for _, u := range h.srv.Users() {
		byToken[u.Token] = u.ID
	}
	ids := make([]string, len(h.tokens))
	for i, tok := range h.tokens {
		if ids[i] = byToken[string(tok)]; ids[i] == "" {
			t.Fatalf("token %d: no user in the fake", i+1)
		}
	}
	return ids
}

// TestClaimsShardsAtOnce: the first run of a 4-shard fleet whose shards start at the
// same time, given each token's user id (Config.UserIDs, the tokens file's second
// column), asks one identifying request per user, and it is not GET /me: each shard
// leaves the users other shards own without a request, and the owner checks the
// claim against the user's pending list (its items' _user), which it asks anyway.
// Without the ids every shard asks /me for every token no committed run has
// recorded (logged, for comparison).
func TestClaimsShardsAtOnce(t *testing.T) {
	const shards, buckets = 4, 8
	var pending int64
	run := func(t *testing.T, claims bool) (me, accounts int64, h *harness) {
		dir := t.TempDir()
		open := func() bucket.Bucket {
			b, err := bucket.NewLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		opts := smallPopulation()
		opts.Users, opts.AccountsPerUser = 12, 1
		h = newHarness(t, open(), opts)
		var ids []string
		if claims {
			ids = claimedIDs(t, h)
		}
		st0 := h.srv.Stats()
		var wg sync.WaitGroup
		errs := make([]error, shards)
		for shard := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cfg := h.config(h.opts.From, h.opts.To)
				cfg.Out, cfg.UserIDs = open(), ids
				cfg.Buckets, cfg.Shard, cfg.Shards = buckets, shard, shards
				_, errs[shard] = pipeline.Run(context.Background(), cfg)
			}()
		}
		wg.Wait()
		for shard, err := range errs {
			if err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
		}
		st := h.srv.Stats()
		pending = st.ByKind["pending"] - st0.ByKind["pending"]
		return st.ByKind["me"] - st0.ByKind["me"], st.ByKind["accounts"] - st0.ByKind["accounts"], h
	}
	me, accounts, h := run(t, true)
	users := int64(len(h.tokens))
	if me != 0 || pending != users || accounts != users {
		t.Errorf("shards at once, with user ids: %d /me, %d pending lists and %d /accounts for %d users; want no /me and one of the others per user",
			me, pending, accounts, users)
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	// The next day every token is known: no /me, with or without the ids.
	h.shift.Add(int64(24 * time.Hour))
	st0 := h.srv.Stats()
	for shard := range shards {
		cfg := h.config(time.Time{}, time.Time{})
		cfg.Buckets, cfg.Shard, cfg.Shards = buckets, shard, shards
		if _, err := pipeline.Run(context.Background(), cfg); err != nil {
			t.Fatalf("daily shard %d: %v", shard, err)
		}
	}
	if st := h.srv.Stats(); st.ByKind["me"] != st0.ByKind["me"] {
		t.Errorf("daily run: %d /me; want none", st.ByKind["me"]-st0.ByKind["me"])
	}

	me, _, _ = run(t, false)
	t.Logf("shards at once, without user ids: %d /me for %d users", me, users)
	if me < users {
		t.Errorf("without user ids: %d /me for %d users; every token needs one", me, users)
	}
}

// TestClaimWrong: a token given with another user's id is not extracted anywhere:
// its real owner's shard leaves it on the claim's word, and the claimed user's shard
// asks the user's pending list, finds another user in its items' _user and fails
// the token with ErrUserMismatch, naming both ids (never the token) and the answer
// that said so. The other users are extracted. Once the id is corrected the
// token is extracted; a later wrong id for a token an earlier run resolved fails it
// again, without a request, in the shard of its user.
func TestClaimWrong(t *testing.T) {
	const shards, buckets = 2, 8
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 6, 1
	h := newHarness(t, b, opts)
	ids := claimedIDs(t, h)
	// Token 1 claims the user of a token whose shard is not its own.
	wrong := -1
	for i := 1; i < len(ids); i++ {
		if claimShard(ids[i], buckets, shards) != claimShard(ids[0], buckets, shards) {
			wrong = i
			break
		}
	}
	if wrong < 0 {
		t.Fatal("population: every user in one shard")
	}
	runAll := func(claims []string, start, end time.Time) (failures []string, me int64) {
		t.Helper()
		st0 := h.srv.Stats()
		for shard := range shards {
			cfg := h.config(start, end)
			cfg.UserIDs = claims
			cfg.Buckets, cfg.Shard, cfg.Shards = buckets, shard, shards
			m, err := pipeline.Run(context.Background(), cfg)
			switch {
			case err == nil:
			case errors.Is(err, pipeline.ErrPartial) && m != nil:
				if strings.Contains(err.Error(), string(h.tokens[0])) {
					t.Errorf("shard %d: the error names the token", shard)
				}
				failures = append(failures, m.Failures...)
			default:
				t.Fatalf("shard %d: %v", shard, err)
			}
		}
		return failures, h.srv.Stats().ByKind["me"] - st0.ByKind["me"]
	}
	claims := append([]string(nil), ids...)
	claims[0] = ids[wrong]
	failures, _ := runAll(claims, h.opts.From, h.opts.To)
	if len(failures) != 1 || !strings.Contains(failures[0], ids[0]) || !strings.Contains(failures[0], ids[wrong]) ||
		!strings.Contains(failures[0], "user 1 ") || !strings.Contains(failures[0], "pending list (_user) says "+ids[0]) {
		t.Fatalf("failures %q; want one naming token 1, both user ids and the pending list", failures)
	}
	rows := readRows(t, b, "transactions/")
	users := map[string]bool{}
	for _, r := range rows {
		users[r.User] = true
	}
	if users[ids[0]] {
		t.Errorf("user %s extracted under a wrong claim", ids[0])
	}
	for _, id := range ids[1:] {
		if !users[id] {
			t.Errorf("user %s not extracted", id)
		}
	}

	// Corrected: extracted.
	if failures, _ = runAll(ids, h.opts.From, h.opts.To); len(failures) != 0 {
		t.Fatalf("corrected ids: failures %q", failures)
	}
	h.expectFaithful(h.opts.From, h.opts.To)

	// Wrong again, now that a run resolved the token: failed without a request.
	h.shift.Add(int64(24 * time.Hour))
	failures, me := runAll(claims, time.Time{}, time.Time{})
	if len(failures) != 1 || !strings.Contains(failures[0], ids[wrong]) || !strings.Contains(failures[0], "user 1 ") {
		t.Errorf("known token, wrong id: failures %q; want one naming token 1 and the id given", failures)
	}
	if me != 0 {
		t.Errorf("known token, wrong id: %d /me; want none", me)
	}
}

// TestClaimsBadConfig: user ids that cannot be claims are refused before any request,
// naming the token's position, never the value (a token put in the id column by
// mistake must not reach the error).
func TestClaimsBadConfig(t *testing.T) {
	h := newHarness(t, newLocal(t), smallPopulation())
	for _, c := range []struct {
		name string
		ids  []string
		want string
	}{
		{"too few", []string{"user_a"}, "1 user ids for 2 user tokens"},
		{"not an id", []string{"", "acc_1"}, "user id of token 2: not an Akahu user id"},
		{"a token", []string{"user_token_s3cr3t", ""}, "user id of token 1: a user token, not a user id"},
		{"bad character", []string{"user_a b", ""}, "user id of token 1: not an Akahu user id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st0 := h.srv.Stats()
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.UserIDs = c.ids
			_, err := pipeline.Run(context.Background(), cfg)
			if !errors.Is(err, pipeline.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v; want ErrConfig saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error quotes the value: %v", err)
			}
			if n := h.srv.Stats().Requests - st0.Requests; n != 0 {
				t.Errorf("%d requests before the configuration was refused", n)
			}
		})
	}
}
