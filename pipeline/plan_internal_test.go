package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// TestPlanKeepsNoAccountJSON: once the plan has chosen the shard's accounts, the run
// keeps no account's JSON as served (with the HTTP client, each user's whole
// /accounts body): its accounts-snapshot rows are built then, per bucket, and wait in
// the spill file (they are as many as the shard's accounts). The
// snapshot written at the end still has every account of a user that stayed
// served, none of a user refused during the run, and an account whose JSON cannot
// become a snapshot row fails at the end, as before, after its transactions were
// extracted.
func TestPlanKeepsNoAccountJSON(t *testing.T) {
	loc := mustZone(t)
	r := &runner{cfg: Config{Workers: 1, Shards: 1}, loc: loc, b: bucket.NewMemory(), mem: memory.DefaultAllocator,
		txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		started: time.Date(2026, 3, 1, 9, 0, 0, 0, loc), ds: Dataset{Buckets: 4, BucketBy: bucketByUser}}
	r.spill = &spill{dir: t.TempDir(), budget: DefaultHoldBytes, mem: r.mem, sch: r.txSch}
	defer r.spill.close()
	defer r.releaseAccountRows()
	account := func(id string, attrs ...string) akahu.Account {
		raw := fmt.Sprintf(`{"_id":%q,"_authorisation":"auth_1","connection":{"_id":"conn_1","name":"Bank"},"name":"Acct %s",`+
			`"status":"ACTIVE","type":"CHECKING","attributes":%s,"balance":{"currency":"NZD","current":1.5}}`,
			id, id, mustJSON(t, attrs))
		return akahu.Account{ID: id, Status: "ACTIVE", Currency: "NZD", Attributes: attrs, Raw: json.RawMessage(raw)}
	}
	bad := akahu.Account{ID: "acc_bad", Currency: "NZD", Attributes: []string{"TRANSACTIONS"}, Raw: json.RawMessage(`{"_id":5}`)}
	served := &userRun{index: 0, me: akahu.Me{ID: "user_a"}, status: "ok",
		accounts: []akahu.Account{account("acc_a1", "TRANSACTIONS"), account("acc_a2"), bad}}
	refused := &userRun{index: 1, me: akahu.Me{ID: "user_b"}, status: "ok",
		accounts: []akahu.Account{account("acc_b1", "TRANSACTIONS")}}
	r.users = []*userRun{served, refused}
	want := r.accountChoice()
	for _, u := range r.users {
		r.selectAccounts(u, want)
	}
	if err := r.accountsSelected(want); err != nil {
		t.Fatal(err)
	}
	for _, u := range r.users {
		if u.accounts != nil {
			t.Errorf("user %s keeps its accounts' listing after the plan", u.me.ID)
		}
	}
	// The rows wait in the spill file, not in memory.
	if r.spill.size == 0 {
		t.Errorf("accounts-snapshot rows: nothing spilled; want them spilled")
	}
	for bk, h := range r.accountRows {
		if h.b != nil || len(h.recs) > 0 {
			t.Errorf("accounts-snapshot rows of bucket %d kept in memory after the plan", bk)
		}
	}
	for _, a := range r.accounts {
		if a.failed() {
			t.Errorf("account %s failed at plan time: %v (its transactions are extracted first)", a.acct.ID, a.err)
		}
	}
	refused.refuse(fmt.Errorf("user 2: %w", akahu.ErrAccessRevoked))
	if err := r.writeAccounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, bk := range []int{bucketOf("user_a", 4), bucketOf("user_b", 4)} {
		recs, _, err := r.readObject(context.Background(), accountsObject(dayOfTime(r.started, loc), bk), []string{"account_id"})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			col := rec.Column(0).(*array.String)
			for i := range col.Len() {
				got = append(got, col.Value(i))
			}
			rec.Release()
		}
	}
	slices.Sort(got)
	if want := []string{"acc_a1", "acc_a2"}; !slices.Equal(got, want) {
		t.Errorf("accounts snapshot rows %v, want %v", got, want)
	}
	for _, a := range r.accounts {
		if want := a.acct.ID == "acc_bad"; a.failed() != want {
			t.Errorf("account %s failed %v (%v), want %v", a.acct.ID, a.failed(), a.err, want)
		} else if want && !strings.Contains(a.err.Error(), "acc_bad") {
			t.Errorf("account acc_bad failed with %v: want it named", a.err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.([]string); ok && s == nil {
		v = []string{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPlanMonth: an account's planned months stay sorted runs of consecutive months,
// whatever order they are added in (the plan adds its range, then crashed runs' and
// re-reads' months), and the windows made from them are exactly the months added.
func TestPlanMonth(t *testing.T) {
	m := func(k int) month { return month{2026, time.January}.add(k) }
	cases := []struct {
		name string
		add  []int
		want []monthRun
	}{
		{"one", []int{3}, []monthRun{{m(3), m(3)}}},
		{"a range", []int{0, 1, 2, 3}, []monthRun{{m(0), m(3)}}},
		{"backwards", []int{3, 2, 1, 0}, []monthRun{{m(0), m(3)}}},
		{"apart", []int{5, 0, 9}, []monthRun{{m(0), m(0)}, {m(5), m(5)}, {m(9), m(9)}}},
		{"a gap filled", []int{0, 1, 3, 4, 2}, []monthRun{{m(0), m(4)}}},
		{"again", []int{1, 2, 1, 2, 2}, []monthRun{{m(1), m(2)}}},
		{"before and after", []int{4, 5, 3, 6, 9, 8, 10}, []monthRun{{m(3), m(6)}, {m(8), m(10)}}},
		{"across a year", []int{11, 12, 10}, []monthRun{{m(10), m(12)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &acctRun{bucket: 2}
			for _, k := range c.add {
				a.planMonth(m(k))
			}
			if !slices.Equal(a.months, c.want) {
				t.Fatalf("runs %v, want %v", a.months, c.want)
			}
			seen := map[month]bool{}
			for _, w := range a.windows() {
				if w.acct != a || w.part != (partKey{w.part.month, 2}) || w.span != (span{w.part.month.first(), w.part.month.last()}) {
					t.Errorf("window %+v", *w)
				}
				seen[w.part.month] = true
			}
			for k := -1; k <= 13; k++ {
				if want := slices.Contains(c.add, k); a.hasMonth(m(k)) != want || seen[m(k)] != want {
					t.Errorf("month %s: has %v, window %v, want %v", m(k), a.hasMonth(m(k)), seen[m(k)], want)
				}
			}
		})
	}
}

// TestUserBatches: the main pass yields every planned window once, user by user (all
// of a user's accounts in one batch, for the walk over all of them), users in the
// order of their first account's bucket; the partitions' counts are the windows'.
func TestUserBatches(t *testing.T) {
	r := &runner{}
	users := []*userRun{{index: 0}, {index: 1}, {index: 2}}
	// Account ids in id order, as selectAccounts leaves them; user 2 has no months.
	for i, spec := range []struct {
		user, bucket, months int
	}{{1, 3, 2}, {0, 1, 3}, {0, 2, 1}, {1, 3, 2}, {2, 0, 0}} {
		a := &acctRun{user: users[spec.user], acct: acctInfo{ID: fmt.Sprintf("acc_%d", i)}, bucket: spec.bucket}
		for k := range spec.months {
			a.planMonth(month{2026, time.March}.add(k))
		}
		r.accounts = append(r.accounts, a)
	}
	counts := map[partKey]int{}
	var order []int
	for batch := range r.userBatches() {
		u := batch[0].acct.user
		order = append(order, u.index)
		for _, w := range batch {
			if w.acct.user != u {
				t.Errorf("batch of user %d has a window of user %d", u.index, w.acct.user.index)
			}
			counts[w.part]++
		}
	}
	if want := []int{0, 1}; !slices.Equal(order, want) {
		t.Errorf("users in order %v, want %v (user 0's first account is in bucket 1, user 1's in 3; user 2 has no windows)", order, want)
	}
	if want := r.plannedParts(); !maps.Equal(counts, want) {
		t.Errorf("windows per partition %v, want %v", counts, want)
	}
	if n := r.windowCount(); n != 8 {
		t.Errorf("%d windows planned, want 8", n)
	}
}

// TestDiscoverDropsOtherShardsUsers: every shard is given the whole fleet's tokens;
// the users other shards own leave the run at discovery, and nothing may keep them
// (a shard of a 100k-user fleet would otherwise hold a record per fleet user). A
// token the directory places on another shard gets no record at all: discovery
// allocates less per such token than one user record.
func TestDiscoverDropsOtherShardsUsers(t *testing.T) {
	r := &runner{cfg: Config{Workers: 2, Shards: 2, Shard: 0}, ds: Dataset{Buckets: 8, BucketBy: bucketByUser},
		directory: newTokenDirectory()}
	const others = 5000
	for i := 0; len(r.cfg.Users) < others; i++ {
		id := fmt.Sprintf("user_%d", i)
		if r.ownsUser(id) {
			continue
		}
		tok := akahu.Token(fmt.Sprintf("token_%d", i))
		r.directory.set(tokenFingerprint(tok), id, false, false) // another shard's user
		r.cfg.Users = append(r.cfg.Users, tok)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r.cfg.Tokens = TokenList(r.cfg.Users, nil)
	if err := r.discover(context.Background(), func(u *userRun) { t.Errorf("user %d handed to the plan; it is another shard's", u.index+1) }); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if len(r.users) != 0 {
		t.Fatalf("%d users left after discovery, want 0 (all are another shard's)", len(r.users))
	}
	perToken := float64(after.TotalAlloc-before.TotalAlloc) / others
	if record := float64(unsafe.Sizeof(userRun{})); perToken >= record {
		t.Errorf("discovery allocated %.0f bytes per other shard's token; want less than a user record (%.0f bytes)", perToken, record)
	}
	t.Logf("%.0f bytes allocated per other shard's token", perToken)
}

// listingSource serves /accounts (three accounts a user) and counts the listings it
// served that are still reachable, with weak pointers to their arrays.
type listingSource struct {
	Source // only Accounts is called: every token is in the directory
	mu     sync.Mutex
	served []weak.Pointer[akahu.Account]
	most   int // the most listings reachable at one check
}

func (s *listingSource) Accounts(_ context.Context, tok akahu.Token) ([]akahu.Account, error) {
	accts := make([]akahu.Account, 3)
	for i := range accts {
		id := fmt.Sprintf("acc_%s_%d", tok, i)
		accts[i] = akahu.Account{ID: id, Status: "ACTIVE", Currency: "NZD", Attributes: []string{"TRANSACTIONS"},
			Raw: json.RawMessage(fmt.Sprintf(`{"_id":%q,"name":"x","status":"ACTIVE","type":"CHECKING","attributes":["TRANSACTIONS"]}`, id))}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served = append(s.served, weak.Make(&accts[0]))
	if len(s.served)%50 == 0 {
		runtime.GC()
		alive := 0
		for _, w := range s.served {
			if w.Value() != nil {
				alive++
			}
		}
		s.most = max(s.most, alive)
	}
	return accts, nil
}

// TestDiscoveryHoldsFewListings: discovery hands each user to the plan as soon as it
// is discovered, in order, so a shard holds the /accounts listings of the users in
// flight (at most discoverAhead of them), not one per user of the shard until the
// last is discovered.
func TestDiscoveryHoldsFewListings(t *testing.T) {
	loc := mustZone(t)
	src := &listingSource{}
	const users = 2000
	r := &runner{cfg: Config{Workers: 4, Shards: 1, Source: src}, loc: loc, b: bucket.NewMemory(), mem: memory.DefaultAllocator,
		txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		started: time.Date(2026, 3, 1, 9, 0, 0, 0, loc), ds: Dataset{Buckets: 4, BucketBy: bucketByUser},
		directory: newTokenDirectory()}
	r.spill = &spill{dir: t.TempDir(), budget: DefaultHoldBytes, mem: r.mem, sch: r.txSch}
	defer r.spill.close()
	defer r.releaseAccountRows()
	for i := range users {
		tok := akahu.Token(fmt.Sprintf("tok%04d", i))
		r.directory.set(tokenFingerprint(tok), fmt.Sprintf("user_%04d", i), true, false)
		r.cfg.Users = append(r.cfg.Users, tok)
	}
	if discoverAhead > users/4 {
		t.Fatalf("discoverAhead %d: the test needs many more users than that (%d)", discoverAhead, users)
	}
	var order []int
	want := r.accountChoice()
	r.cfg.Tokens = TokenList(r.cfg.Users, nil)
	if err := r.discover(context.Background(), func(u *userRun) {
		order = append(order, u.index)
		r.selectAccounts(u, want)
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.accountsSelected(want); err != nil {
		t.Fatal(err)
	}
	if len(order) != users || !slices.IsSorted(order) {
		t.Errorf("the plan got %d users (in order: %v); want all %d in order", len(order), slices.IsSorted(order), users)
	}
	if len(r.accounts) != 3*users {
		t.Errorf("%d accounts planned, want %d", len(r.accounts), 3*users)
	}
	if limit := discoverAhead + 2*r.cfg.Workers; src.most > limit || src.most == 0 {
		t.Errorf("up to %d users' listings reachable at once during discovery; want 1 to %d (discoverAhead %d plus the requests in flight)",
			src.most, limit, discoverAhead)
	}
}

// TestKnownUser: a failing token's user is named by what the state and the latest
// run recorded for its fingerprint (full, or the 48-bit prefix older manifests
// kept), and by nobody when the records disagree or another token of the run
// matches the same record.
func TestKnownUser(t *testing.T) {
	tokA, tokB, tokC := akahu.Token("user_token_a"), akahu.Token("user_token_b"), akahu.Token("user_token_c")
	fpA, fpB := tokenFingerprint(tokA), tokenFingerprint(tokB)
	legacy := func(fp string) string { return fp[:legacyFingerprintLen] }
	tests := []struct {
		name   string
		state  []StateUser  // in the shard's state
		latest []UserStatus // in the latest committed run's manifest
		tokens []akahu.Token
		want   string
	}{
		{name: "nothing recorded", tokens: []akahu.Token{tokA, tokB}},
		{name: "in the state", state: []StateUser{{fpA, "user_1"}, {fpB, "user_2"}}, tokens: []akahu.Token{tokA, tokB}, want: "user_1"},
		{name: "in the latest manifest", latest: []UserStatus{{TokenFP: fpB, UserID: "user_2"}, {TokenFP: fpA, UserID: "user_1"}}, tokens: []akahu.Token{tokA}, want: "user_1"},
		{name: "legacy fingerprint", latest: []UserStatus{{TokenFP: legacy(fpA), UserID: "user_1"}}, tokens: []akahu.Token{tokA, tokB}, want: "user_1"},
		{name: "state and manifest agree", state: []StateUser{{fpA, "user_1"}}, latest: []UserStatus{{TokenFP: legacy(fpA), UserID: "user_1"}}, tokens: []akahu.Token{tokA}, want: "user_1"},
		{name: "state and manifest disagree", state: []StateUser{{fpA, "user_1"}}, latest: []UserStatus{{TokenFP: fpA, UserID: "user_9"}}, tokens: []akahu.Token{tokA}},
		{name: "full and legacy records disagree", state: []StateUser{{fpA, "user_1"}}, latest: []UserStatus{{TokenFP: legacy(fpA), UserID: "user_9"}}, tokens: []akahu.Token{tokA}},
		{name: "a record without a user id names nobody", latest: []UserStatus{{TokenFP: fpA}}, tokens: []akahu.Token{tokA}},
		{name: "an empty fingerprint matches nothing", latest: []UserStatus{{TokenFP: "", UserID: "user_1"}}, tokens: []akahu.Token{tokA}},
		{name: "the same token twice is not another token", state: []StateUser{{fpA, "user_1"}}, tokens: []akahu.Token{tokA, tokA}, want: "user_1"},
		{
			// Another token whose fingerprint starts like A's matches A's legacy record.
			name:   "legacy record another token matches too",
			latest: []UserStatus{{TokenFP: legacy(fpA), UserID: "user_1"}},
			tokens: []akahu.Token{tokA, tokC},
		},
		{
			name:   "legacy record another token matches, full record unambiguous",
			state:  []StateUser{{fpA, "user_1"}},
			latest: []UserStatus{{TokenFP: legacy(fpA), UserID: "user_1"}},
			tokens: []akahu.Token{tokA, tokC},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{latest: &Manifest{Users: tt.latest}}
			bs := &bucketState{users: map[string]StateUser{}}
			for _, u := range tt.state {
				bs.users[u.TokenFP] = u
			}
			r.state = &runState{buckets: map[int]*bucketState{0: bs}}
			fingerprint := func(tok akahu.Token) string {
				fp := tokenFingerprint(tok)
				if tok == tokC {
					fp = legacy(fpA) + fp[legacyFingerprintLen:] // a 48-bit collision with A
				}
				return fp
			}
			r.cfg.Users = tt.tokens
			r.recorded.once.Do(func() {
				r.indexRecorded(func(yield func(akahu.Token, string) bool) {
					for _, tok := range tt.tokens {
						if !yield(tok, fingerprint(tok)) {
							return
						}
					}
				})
			})
			u := &userRun{index: 0, token: tokA, fp: fpA}
			for i := range 2 {
				if got := r.knownUser(u); got != tt.want {
					t.Errorf("call %d: knownUser = %q, want %q", i+1, got, tt.want)
				}
			}
		})
	}
}

// TestKnownUserTokensUnreadable: knownUser reads the run's tokens again (to see that
// no other token shares a record); when they cannot be read it names nobody, so a
// revoked token is never purged on an unchecked match, and says so in the log.
func TestKnownUserTokensUnreadable(t *testing.T) {
	tokA := akahu.Token("user_token_a")
	fpA := tokenFingerprint(tokA)
	var logs strings.Builder
	for _, fail := range []bool{false, true} {
		r := &runner{log: slog.New(slog.NewTextHandler(&logs, nil))}
		r.state = &runState{buckets: map[int]*bucketState{0: {users: map[string]StateUser{fpA: {fpA, "user_1"}}}}}
		r.cfg.Tokens = func(yield func(akahu.Token, string) bool) error {
			if !yield(tokA, "") || fail {
				return errors.New("tokens file /x: gone")
			}
			return nil
		}
		want := "user_1"
		if fail {
			want = ""
		}
		if got := r.knownUser(&userRun{token: tokA, fp: fpA}); got != want {
			t.Errorf("tokens unreadable %v: knownUser = %q, want %q", fail, got, want)
		}
	}
	if !strings.Contains(logs.String(), "tokens file /x: gone") || strings.Contains(logs.String(), string(tokA)) {
		t.Errorf("log %q: want the source's error, no token", logs.String())
	}
}

// TestDirectoryCostsLittlePerFleetToken: every shard reads the whole fleet's token
// directory; what it keeps of a token whose user another shard owns is its
// fingerprint's 16 bytes and a flag, not the fingerprint's and the user id's strings.
// The shard's own users keep their ids, and a users object overrides a resolved
// object's hearsay. The lines of the shard's resolved object that users objects now
// name are pruned, and the map that held them is not kept (a map keeps its size
// after deletes).
func TestDirectoryCostsLittlePerFleetToken(t *testing.T) {
	ctx := context.Background()
	b := bucket.NewMemory()
	const buckets, shards, tokens = 64, 16, 20000
	r := &runner{cfg: Config{Shards: shards, Shard: 1}, b: b, ds: Dataset{Buckets: buckets, BucketBy: bucketByUser}}
	byBucket := map[int]map[string]StateUser{}
	owners := map[string]string{}
	for i := range tokens {
		id := fmt.Sprintf("user_%06d", i)
		fp := tokenFingerprint(akahu.Token(fmt.Sprintf("token_%06d", i)))
		bk := bucketOf(id, buckets)
		if byBucket[bk] == nil {
			byBucket[bk] = map[string]StateUser{}
		}
		byBucket[bk][fp] = StateUser{TokenFP: fp, UserID: id}
		owners[fp] = id
	}
	for bk, users := range byBucket {
		if _, err := b.Put(ctx, usersObject(bk), encodeUserLines(users), bucket.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	// A resolved object of shard 0 names a token the users objects name too, and one
	// they do not (hearsay); its line the users objects name is pruned.
	heard := tokenFingerprint("token_heard_only")
	var named string
	for fp, id := range owners {
		if r.ownsUser(id) {
			named = fp
			break
		}
	}
	heardUser := "user_heard"
	for i := 0; !r.ownsUser(heardUser); i++ {
		heardUser = fmt.Sprintf("user_heard_%d", i) // hearsay matters for this shard's users
	}
	// As after a fleet's first run, the shard's resolved object names every other
	// shard's token too; the users objects name them all now, so they are pruned.
	resolved := map[string]StateUser{named: {TokenFP: named, UserID: owners[named]}, heard: {TokenFP: heard, UserID: heardUser}}
	for fp, id := range owners {
		if !r.ownsUser(id) {
			resolved[fp] = StateUser{TokenFP: fp, UserID: id}
		}
	}
	if _, err := b.Put(ctx, resolvedObject(1, shards), encodeUserLines(resolved), bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.state, err = loadRunState(ctx, b, buckets, r.cfg.Shard, shards); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	dir, err := r.loadDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perToken := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / tokens
	t.Logf("directory and resolved object: %.0f bytes kept per fleet token", perToken)
	if perToken > 45 {
		t.Errorf("directory and resolved object keep %.0f bytes per fleet token; want at most 45 (most tokens are other shards')", perToken)
	}
	mine := 0
	for fp, id := range owners {
		e, ok := dir.lookup(fp)
		switch {
		case !ok:
			t.Fatalf("token %s of %s not in the directory", fp, id)
		case e.mine() != r.ownsUser(id) || (e.mine() && e.userID != id):
			t.Fatalf("token of %s: entry %+v; owned by this shard: %v", id, e, r.ownsUser(id))
		case e.hearsay:
			t.Fatalf("token of %s: hearsay, but a users object names it", id)
		}
		if e.mine() {
			mine++
		}
	}
	if mine == 0 || mine == tokens {
		t.Fatalf("%d of %d tokens are this shard's; want some", mine, tokens)
	}
	if e, ok := dir.lookup(heard); !ok || !e.hearsay || e.userID != heardUser {
		t.Errorf("token only a resolved object names: entry %+v (found %v); want hearsay", e, ok)
	}
	if _, ok := r.resolved.users[named]; ok || !r.resolved.pruned {
		t.Errorf("resolved line a users object names: kept (pruned %v); want it dropped", r.resolved.pruned)
	}
	if _, ok := r.resolved.users[heard]; !ok || len(r.resolved.users) != 1 {
		t.Errorf("resolved lines kept: %d (the one no users object names: %v); want that one alone", len(r.resolved.users), ok)
	}
	runtime.KeepAlive(dir)
}

// meSource answers /me with the user the test gave each token, and samples the live
// heap every 1,000 answers.
type meSource struct {
	Source // only Me is called: every user is another shard's
	users  map[akahu.Token]string
	mu     sync.Mutex
	calls  int
	peak   uint64
}

func (s *meSource) Me(_ context.Context, tok akahu.Token) (akahu.Me, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls%1000 == 0 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		s.peak = max(s.peak, m.HeapAlloc)
	}
	return akahu.Me{ID: s.users[tok]}, nil
}

// TestDiscoveryKeepsNoRecordOfOthersUsers: on a fleet's first run (or with shards
// started at once) no state names the tokens, so a shard asks /me for each; a user
// /me places on another shard leaves the run as soon as it is discovered, noted for
// the shard's resolved object, and no record of it is kept until discovery ends.
func TestDiscoveryKeepsNoRecordOfOthersUsers(t *testing.T) {
	const tokens = 20000
	src := &meSource{users: map[akahu.Token]string{}}
	r := &runner{cfg: Config{Workers: 4, Shards: 2, Shard: 0, Source: src}, ds: Dataset{Buckets: 8, BucketBy: bucketByUser},
		directory: newTokenDirectory(), resolved: &resolvedState{users: map[string]StateUser{}}}
	for i := 0; len(r.cfg.Users) < tokens; i++ {
		id := fmt.Sprintf("user_%06d", i)
		if r.ownsUser(id) {
			continue
		}
		tok := akahu.Token(fmt.Sprintf("token_%06d", i))
		src.users[tok] = id
		r.cfg.Users = append(r.cfg.Users, tok)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r.cfg.Tokens = TokenList(r.cfg.Users, nil)
	if err := r.discover(context.Background(), func(u *userRun) { t.Errorf("user %d handed to the plan; it is another shard's", u.index+1) }); err != nil {
		t.Fatal(err)
	}
	if len(r.users) != 0 {
		t.Fatalf("%d users left after discovery, want 0", len(r.users))
	}
	if n := len(r.resolved.fresh); n != tokens {
		t.Errorf("%d tokens noted for the resolved object, want %d", n, tokens)
	}
	perToken := (float64(src.peak) - float64(before.HeapAlloc)) / tokens
	t.Logf("discovery's live heap grew by up to %.0f bytes per token", perToken)
	// What must stay: the resolved object's line (a fingerprint and a user id).
	if perToken > 160 {
		t.Errorf("discovery's live heap grew by up to %.0f bytes per other shard's token; want at most 160 (its resolved line, no user record)", perToken)
	}
}
