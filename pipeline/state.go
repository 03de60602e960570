package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the incremental state, two small objects per bucket read once per
// run:
//
//   - _state/bucket-BBB.jsonl.gz, the members: gzip'd JSON lines naming each account
//     extracted at least once, with its user. It changes only when accounts are added
//     or purged.
//   - _state/bucket-BBB.users.jsonl.gz, the users: each token fingerprint seen, with
//     its user. Every shard of a layout-2 dataset reads every bucket's, to skip the
//     tokens of users other shards own; it changes only when tokens are added.
//   - _state/shard-SSS-of-NNN.users.jsonl.gz, a shard's resolved object (layout 2,
//     several shards): the tokens the shard's runs resolved with GET /me whose users
//     other shards own, in the users objects' format. Only that shard's runs write it
//     (and purges, which remove a user's lines); every shard reads every shard's,
//     whatever the shard count that wrote it, so a token costs /me once per fleet,
//     not once per shard, even before its owner's run records it. The shard's later
//     runs drop the lines the owners' users objects name, and the object once empty;
//     a reshard folds the objects of other counts into shard 0's (foldResolved).
//     The entries name a token's user for discovery only: a revoked token's user,
//     whom a purge deletes, is named by the owning bucket's users object alone.
//   - _state/bucket-BBB.coverage.json, the coverage: the date most of the bucket's
//     accounts are covered through, and each account covered through another date.
//     A daily run moves the common date and rewrites a few hundred bytes, whatever the
//     number of accounts.
//
// The state is kept per bucket, not per shard, so a change of shard count (buckets
// move between shards, never between state objects) or an ad-hoc run over some
// accounts never resets another account: a run changes only the accounts it extracted
// completely, and covered_through only moves forward. Both objects are written after
// the manifest, conditional on the generation read, so the state never claims more
// than a committed run extracted; a run that dies between the two leaves the older
// state, and the next run re-reads a little more. Datasets written before the state
// existed start from their newest manifest's covered_through map.

const statePrefix = "_state/"

func membersObject(bk int) string { return fmt.Sprintf("%sbucket-%03d.jsonl.gz", statePrefix, bk) }
func usersObject(bk int) string   { return fmt.Sprintf("%sbucket-%03d.users.jsonl.gz", statePrefix, bk) }
func coverageObject(bk int) string {
	return fmt.Sprintf("%sbucket-%03d.coverage.json", statePrefix, bk)
}

// resolvedPrefix starts the name of every shard's resolved object.
const resolvedPrefix = statePrefix + "shard-"

// resolvedObject is the resolved object of shard of shards: the tokens its runs
// resolved with /me whose users other shards own.
func resolvedObject(shard, shards int) string {
	return fmt.Sprintf("%s%03d-of-%03d.users.jsonl.gz", resolvedPrefix, shard, shards)
}

// StateAccount is one account's line in a members object.
type StateAccount struct {
	AccountID string `json:"account_id"`
	UserID    string `json:"user_id,omitempty"`
}

// StateUser is one token fingerprint's line: the user it belonged to when a run last
// resolved it. Later runs name a revoked token's user by it, and skip the users other
// shards own.
type StateUser struct {
	TokenFP string `json:"token_fingerprint"`
	UserID  string `json:"user_id"`
}

// stateLine is one JSON line of a members object: exactly one field is set.
type stateLine struct {
	Account *StateAccount `json:"account,omitempty"`
	User    *StateUser    `json:"user,omitempty"`
}

// stateCoverage is a coverage object.
type stateCoverage struct {
	// CoveredThrough is the date every member not in Except is covered through.
	CoveredThrough string `json:"covered_through"`
	// Except maps the members covered through another date to that date.
	Except map[string]string `json:"except,omitempty"`
}

// bucketState is one bucket's state as read.
type bucketState struct {
	accounts map[string]StateAccount
	users    map[string]StateUser // by fingerprint
	covered  map[string]string    // every member's covered_through
	memGen   int64                // generations read (0: no object yet)
	usrGen   int64
	covGen   int64
	size     int64 // bytes read
}

// runState is the state of the buckets this shard owns.
type runState struct {
	buckets map[int]*bucketState
	legacy  bool  // no state object yet: covered_through comes from the newest manifest
	foreign int64 // bytes of other shards' users and resolved objects read for the directory
}

// coveredThrough returns the account's covered_through, if any.
func (s *runState) coveredThrough(id string) (string, bool) {
	if s == nil {
		return "", false
	}
	for _, bs := range s.buckets {
		if d, ok := bs.covered[id]; ok && d != "" {
			return d, true
		}
	}
	return "", false
}

// users returns every fingerprint → user entry of the shard's buckets.
func (s *runState) users() []StateUser {
	if s == nil {
		return nil
	}
	var out []StateUser
	for _, bs := range s.buckets {
		for _, u := range bs.users {
			out = append(out, u)
		}
	}
	return out
}

// loadRunState reads the state objects of the buckets shard owns.
func loadRunState(ctx context.Context, b bucket.Bucket, buckets, shard, shards int) (*runState, error) {
	s := &runState{buckets: map[int]*bucketState{}}
	found := false
	var own []int
	for bk := shard; bk < buckets; bk += shards {
		own = append(own, bk)
	}
	err := inOrder(ctx, len(own), stateReads, func(ctx context.Context, i int) (*bucketState, error) {
		return readBucketState(ctx, b, own[i], true)
	}, func(i int, bs *bucketState) {
		found = found || bs.memGen != 0 || bs.usrGen != 0
		s.buckets[own[i]] = bs
	})
	if err != nil {
		return nil, err
	}
	s.legacy = !found
	return s, nil
}

// readBucketState reads a bucket's users and, with all, its members and coverage.
func readBucketState(ctx context.Context, b bucket.Bucket, bk int, all bool) (*bucketState, error) {
	bs := &bucketState{accounts: map[string]StateAccount{}, users: map[string]StateUser{}, covered: map[string]string{}}
	if err := bs.readUsers(ctx, b, nil, bk, 0); err != nil || !all {
		return bs, err
	}
	if err := readLines(ctx, b, membersObject(bk), &bs.memGen, &bs.size, func(l stateLine) {
		if l.Account != nil && l.Account.AccountID != "" {
			bs.accounts[l.Account.AccountID] = *l.Account
		}
	}); err != nil {
		return nil, err
	}
	if bs.memGen == 0 {
		return bs, nil
	}
	name := coverageObject(bk)
	data, attrs, err := b.Get(ctx, name)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return bs, nil // members without coverage: every member starts from the history
	case err != nil:
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	bs.covGen, bs.size = attrs.Generation, bs.size+int64(len(data))
	var c stateCoverage
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	for id := range bs.accounts {
		d, ok := c.Except[id]
		if !ok {
			d = c.CoveredThrough
		}
		bs.covered[id] = d
	}
	return bs, nil
}

// readUsers reads bucket bk's users object into bs, through cache at the generation
// listed (readLinesCached).
func (bs *bucketState) readUsers(ctx context.Context, b bucket.Bucket, cache *StateCache, bk int, listed int64) error {
	return readLinesCached(ctx, b, cache, usersObject(bk), listed, &bs.usrGen, &bs.size, func(l stateLine) {
		if l.User != nil && l.User.TokenFP != "" {
			bs.users[l.User.TokenFP] = *l.User
		}
	})
}

// readLines reads a gzip'd JSON-lines state object, if it exists.
func readLines(ctx context.Context, b bucket.Bucket, name string, gen, size *int64, fn func(stateLine)) error {
	return readLinesCached(ctx, b, nil, name, 0, gen, size, fn)
}

// readLinesCached is readLines through cache: when cache holds the object's
// generation listed (the generation a List just gave), it is not read again (size
// counts the bytes read, none then); what is read is kept in the cache.
func readLinesCached(ctx context.Context, b bucket.Bucket, cache *StateCache, name string, listed int64, gen, size *int64, fn func(stateLine)) error {
	data, ok := cache.get(name, listed)
	if ok {
		*gen = listed
	} else {
		var attrs bucket.Attrs
		var err error
		data, attrs, err = b.Get(ctx, name)
		switch {
		case errors.Is(err, bucket.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("read state %s: %w", name, err)
		}
		*gen, *size = attrs.Generation, *size+int64(len(data))
		cache.put(name, attrs.Generation, data)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l, err := decodeStateLine(sc.Bytes())
		if err != nil {
			return fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, name, n, err)
		}
		fn(l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return nil
}

// The exact lines gzipLines writes for a user and an account: decodeStateLine reads
// them without encoding/json (a task's runs read every bucket's users object, tens of
// thousands of lines each run).
var (
	userLinePrefix    = []byte(`{"user":{"token_fingerprint":"`)
	userLineMiddle    = []byte(`","user_id":"`)
	accountLinePrefix = []byte(`{"account":{"account_id":"`)
	lineSuffix        = []byte(`"}}`)
)

// decodeStateLine parses one line of a state object. The lines this tool writes are
// read directly; any other line (another writer's spacing, escapes, other fields)
// goes through encoding/json, so the result is what json.Unmarshal gives.
func decodeStateLine(b []byte) (stateLine, error) {
	if l, ok := fastStateLine(b); ok {
		return l, nil
	}
	var l stateLine
	err := json.Unmarshal(b, &l)
	return l, err
}

// fastStateLine reads a line in the exact form gzipLines writes, whose values hold
// no quote, backslash or control character; ok is false for any other line.
func fastStateLine(b []byte) (stateLine, bool) {
	plain := func(v []byte) bool {
		for _, c := range v {
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				return false
			}
		}
		return true
	}
	rest, ok := bytes.CutSuffix(b, lineSuffix)
	if !ok {
		return stateLine{}, false
	}
	if v, ok := bytes.CutPrefix(rest, userLinePrefix); ok {
		fp, id, ok := bytes.Cut(v, userLineMiddle)
		if !ok || !plain(fp) || !plain(id) {
			return stateLine{}, false
		}
		return stateLine{User: &StateUser{TokenFP: string(fp), UserID: string(id)}}, true
	}
	if v, ok := bytes.CutPrefix(rest, accountLinePrefix); ok {
		acct, id, withUser := bytes.Cut(v, userLineMiddle)
		if !plain(acct) || (withUser && (len(id) == 0 || !plain(id))) {
			return stateLine{}, false
		}
		return stateLine{Account: &StateAccount{AccountID: string(acct), UserID: string(id)}}, true
	}
	return stateLine{}, false
}

// encodeMembers renders a bucket's members deterministically.
func (bs *bucketState) encodeMembers() []byte {
	var lines []stateLine
	for _, id := range sortedKeys(bs.accounts) {
		a := bs.accounts[id]
		lines = append(lines, stateLine{Account: &a})
	}
	return gzipLines(lines)
}

// encodeUsers renders a bucket's users deterministically.
func (bs *bucketState) encodeUsers() []byte { return encodeUserLines(bs.users) }

// encodeUserLines renders token fingerprints and their users (a users object, a
// resolved object) as gzip'd JSON lines sorted by fingerprint.
func encodeUserLines(users map[string]StateUser) []byte {
	var lines []stateLine
	for _, fp := range sortedKeys(users) {
		u := users[fp]
		lines = append(lines, stateLine{User: &u})
	}
	return gzipLines(lines)
}

func gzipLines(lines []stateLine) []byte {
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	for _, l := range lines {
		_ = enc.Encode(l)
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = zw.Write(raw.Bytes())
	_ = zw.Close()
	return out.Bytes()
}

// encodeCoverage renders a bucket's coverage: the most common date, and the others.
func (bs *bucketState) encodeCoverage() []byte {
	count := map[string]int{}
	for _, d := range bs.covered {
		count[d]++
	}
	common := ""
	for _, d := range sortedKeys(count) {
		if count[d] > count[common] || common == "" {
			common = d
		}
	}
	c := stateCoverage{CoveredThrough: common, Except: map[string]string{}}
	for id := range bs.accounts {
		if d := bs.covered[id]; d != common {
			c.Except[id] = d // "": a member never covered (its coverage was lost)
		}
	}
	out, _ := json.Marshal(c) // map keys are sorted: deterministic
	return out
}

// saveState folds this run into the state of its buckets and writes the objects
// that changed. It runs after the commit; a failure is reported, not fatal: the
// next run starts from the older state and re-reads more.
func (r *runner) saveState(ctx context.Context) (written int64, err error) {
	if r.state == nil {
		return 0, nil
	}
	members, users, coverage := map[int]bool{}, map[int]bool{}, map[int]bool{}
	for _, a := range r.accounts {
		bs := r.state.buckets[a.bucket]
		if bs == nil || r.purged[a.user.me.ID] || a.status == "skipped" || a.failed() || a.user.isRefused() || len(a.done) == 0 {
			continue // only an account extracted completely moves
		}
		id := a.acct.ID
		old, had := bs.covered[id]
		if !had && r.state.legacy && r.latest != nil {
			old = r.latest.CoveredThrough[id]
		}
		next := max(old, r.end.String())
		if m, ok := bs.accounts[id]; !ok || m.UserID != a.user.me.ID {
			bs.accounts[id] = StateAccount{AccountID: id, UserID: a.user.me.ID}
			members[a.bucket] = true
		}
		if !had || next != old {
			bs.covered[id] = next
			coverage[a.bucket] = true
		}
	}
	for _, u := range r.users {
		if u.me.ID == "" || u.status != "ok" || r.purged[u.me.ID] {
			continue
		}
		// One bucket of the shard names the user: its own (layout 2), or that of its
		// first account the shard owns (layout 1); selectAccounts chose it.
		if bs := r.state.buckets[u.home]; u.home >= 0 && bs != nil {
			if old, ok := bs.users[u.fp]; !ok || old.UserID != u.me.ID {
				bs.users[u.fp] = StateUser{TokenFP: u.fp, UserID: u.me.ID}
				users[u.home] = true
			}
		}
	}
	var mu sync.Mutex // err and written, from the puts of one kind at once
	put := func(name string, data []byte, gen *int64) {
		attrs, perr := r.b.Put(ctx, name, data, bucket.Condition{DoesNotExist: *gen == 0, GenerationMatch: *gen})
		mu.Lock()
		defer mu.Unlock()
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("write state %s: %w", name, perr))
			return
		}
		*gen = attrs.Generation
		written += int64(len(data))
	}
	// One kind after the other, members first: a coverage entry of an account no
	// members object names is never read. The buckets' objects of a kind go up to
	// DefaultUploads at once (each a round trip to the store at the end of the run).
	// The objects are encoded here, one at a time, while the earlier ones' puts are
	// under way (a gzip writer at its best compression holds about a megabyte).
	putAll := func(bks map[int]bool, object func(int) string, encode func(*bucketState) []byte, gen func(*bucketState) *int64) {
		p := pool.New().WithMaxGoroutines(DefaultUploads)
		for _, bk := range sortedInts(bks) {
			bs := r.state.buckets[bk]
			name, data := object(bk), encode(bs)
			p.Go(func() { put(name, data, gen(bs)) })
		}
		p.Wait()
	}
	putAll(users, usersObject, (*bucketState).encodeUsers, func(bs *bucketState) *int64 { return &bs.usrGen })
	putAll(members, membersObject, (*bucketState).encodeMembers, func(bs *bucketState) *int64 { return &bs.memGen })
	putAll(coverage, coverageObject, (*bucketState).encodeCoverage, func(bs *bucketState) *int64 { return &bs.covGen })
	if rs := r.resolved; rs != nil {
		changed := false
		for _, u := range rs.fresh {
			if old, ok := rs.users[u.TokenFP]; !r.purged[u.UserID] && (!ok || old.UserID != u.UserID) {
				rs.users[u.TokenFP] = u
				changed = true
			}
		}
		rs.fresh = nil
		// Conditional on the generation read: a lost race with another run of
		// this shard, or a purge, is reported, and the next run asks /me again.
		switch {
		case !changed && !rs.pruned:
		case len(rs.users) > 0:
			put(rs.name, rs.encode(), &rs.gen)
		case rs.gen != 0:
			if derr := r.b.Delete(ctx, rs.name, bucket.Condition{GenerationMatch: rs.gen}); derr != nil && !errors.Is(derr, bucket.ErrNotFound) {
				err = errors.Join(err, fmt.Errorf("remove state %s: %w", rs.name, derr))
			} else {
				rs.gen = 0
			}
		}
		rs.pruned = false
	}
	return written, err
}

// resolvedState is this shard's resolved object as read, and what the run adds.
type resolvedState struct {
	name  string
	users map[string]StateUser // by fingerprint
	gen   int64                // generation read (0: no object yet)
	fresh []StateUser          // tokens this run resolved for other shards
	// pruned: the run dropped lines the owning buckets' users objects now name
	// (their owners' runs recorded them), so the object shrinks to the tokens no
	// owner has recorded yet, and goes when none is left.
	pruned bool
}

// reload reads the object again, after a purge redacted it.
func (rs *resolvedState) reload(ctx context.Context, b bucket.Bucket) error {
	users, gen, size := map[string]StateUser{}, int64(0), int64(0)
	if err := readLines(ctx, b, rs.name, &gen, &size, func(l stateLine) {
		if l.User != nil && l.User.TokenFP != "" && l.User.UserID != "" {
			users[l.User.TokenFP] = *l.User
		}
	}); err != nil {
		return err
	}
	rs.users, rs.gen, rs.pruned = users, gen, false
	return nil
}

// encode renders a resolved object deterministically.
func (rs *resolvedState) encode() []byte { return encodeUserLines(rs.users) }

// readResolved reads every shard's resolved object, whatever the shard count that
// wrote it, through cache (readLinesCached; nil reads every object): fn sees each
// object's name and entries.
func readResolved(ctx context.Context, b bucket.Bucket, cache *StateCache, fn func(name string, gen, size int64, users map[string]StateUser)) error {
	list, err := b.List(ctx, resolvedPrefix)
	if err != nil {
		return fmt.Errorf("list %s: %w", resolvedPrefix, err)
	}
	cache.keepListed(resolvedPrefix, list)
	// One at a time: on a fleet's first run with its shards started at once, each
	// object may name most of the fleet's tokens (users objects, read 16 at once,
	// are a bucket's size).
	for _, a := range list {
		if !strings.HasSuffix(a.Name, ".users.jsonl.gz") {
			continue
		}
		var gen, size int64
		users := map[string]StateUser{}
		if err := readLinesCached(ctx, b, cache, a.Name, a.Generation, &gen, &size, func(l stateLine) {
			if l.User != nil && l.User.TokenFP != "" && l.User.UserID != "" {
				users[l.User.TokenFP] = *l.User
			}
		}); err != nil {
			return err
		}
		fn(a.Name, gen, size, users)
	}
	return nil
}

// resolvedElsewhere notes a token this run resolved with /me whose user another
// shard owns, for saveState to record in the shard's resolved object. discover
// calls it as the user leaves the run (only /me places a user on another shard
// there: the directory's tokens of other shards never enter the run).
func (r *runner) resolvedElsewhere(u *userRun) {
	if r.resolved == nil || u.me.ID == "" {
		return
	}
	r.resolved.fresh = append(r.resolved.fresh, StateUser{TokenFP: u.fp, UserID: u.me.ID})
}

// pruneResolved drops the lines of the shard's resolved object that a users object
// names (named: what the users objects say of those lines' fingerprints).
func (r *runner) pruneResolved(named map[string]string) {
	if r.resolved == nil {
		return
	}
	kept := map[string]StateUser{}
	for fp, u := range r.resolved.users {
		if id, ok := named[fp]; ok && id == u.UserID {
			r.resolved.pruned = true
			continue
		}
		kept[fp] = u
	}
	// A new map: a Go map keeps its size after deletes, and after a fleet's first run
	// the object named most of the fleet's tokens.
	r.resolved.users = kept
}

// tokenDirectory is what the state objects say of the fleet's tokens, by
// fingerprint: the user of each token whose user this shard owns, and for the
// others (most of a fleet's tokens) only that another shard owns it: a set entry
// of 16 bytes and the map's overhead, about 25–40 bytes a token.
type tokenDirectory struct {
	mine   map[fpKey]dirEntry
	others map[fpKey]struct{}
}

func newTokenDirectory() *tokenDirectory {
	return &tokenDirectory{mine: map[fpKey]dirEntry{}, others: map[fpKey]struct{}{}}
}

// fpKey is a token fingerprint (tokenFingerprint) as the bytes its hex spells.
type fpKey [16]byte

// dirEntry is one token of the directory.
type dirEntry struct {
	userID  string // its user, when this shard owns the user; else ""
	hearsay bool   // only resolved objects name it, no users object
}

// mine reports whether this shard owns the token's user.
func (e dirEntry) mine() bool { return e.userID != "" }

// keyOf is fp's key, or false when fp is not a full fingerprint (a legacy one
// names no token of a run: discovery matches full fingerprints only).
func keyOf(fp string) (fpKey, bool) {
	var k fpKey
	if len(fp) != 2*len(k) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(fp))
	return k, err == nil
}

// set records that the token with fingerprint fp is userID's; a later call for the
// same token replaces an earlier one.
func (d *tokenDirectory) set(fp, userID string, mine, hearsay bool) {
	k, ok := keyOf(fp)
	if !ok || userID == "" {
		return
	}
	if mine {
		delete(d.others, k)
		d.mine[k] = dirEntry{userID: userID, hearsay: hearsay}
		return
	}
	delete(d.mine, k)
	d.others[k] = struct{}{}
}

// lookup returns the directory's entry for the token with fingerprint fp.
func (d *tokenDirectory) lookup(fp string) (dirEntry, bool) {
	k, ok := keyOf(fp)
	if !ok || d == nil {
		return dirEntry{}, false
	}
	if e, ok := d.mine[k]; ok {
		return e, true
	}
	_, ok = d.others[k]
	return dirEntry{}, ok
}

// loadDirectory returns the user of every token fingerprint the state objects name:
// with layout 2, of every bucket and every shard's resolved object (a shard skips
// the tokens of users other shards own, without a request); with layout 1, of the
// shard's own buckets. Entries only resolved objects name are hearsay; the shard's
// own resolved object is kept in r.resolved.
func (r *runner) loadDirectory(ctx context.Context) (*tokenDirectory, error) {
	dir := newTokenDirectory()
	add := func(fp, userID string, hearsay bool) { dir.set(fp, userID, r.ownsUser(userID), hearsay) }
	r.resolved = nil
	if r.ds.BucketBy == bucketByUser && r.cfg.Shards > 1 {
		own := resolvedObject(r.cfg.Shard, r.cfg.Shards)
		r.resolved = &resolvedState{name: own, users: map[string]StateUser{}}
		err := readResolved(ctx, r.b, r.cfg.StateCache, func(name string, gen, size int64, users map[string]StateUser) {
			r.state.foreign += size
			if name == own {
				r.resolved.users, r.resolved.gen = users, gen
			}
			for fp, u := range users {
				add(fp, u.UserID, true)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	// The buckets' users objects are read last: where they name a token, they are
	// what names its user.
	named := map[string]string{} // what they say of the own resolved object's lines
	fromUsersObject := func(u StateUser) {
		add(u.TokenFP, u.UserID, false)
		if r.resolved != nil {
			if _, ok := r.resolved.users[u.TokenFP]; ok {
				named[u.TokenFP] = u.UserID
			}
		}
	}
	for _, u := range r.state.users() {
		fromUsersObject(u)
	}
	if r.ds.BucketBy != bucketByUser || r.cfg.Shards == 1 {
		return dir, nil
	}
	defer r.pruneResolved(named)
	var foreign []int
	for bk := range r.ds.Buckets {
		if _, own := r.state.buckets[bk]; !own {
			foreign = append(foreign, bk)
		}
	}
	cache := r.cfg.StateCache
	var listed map[string]int64 // with a cache: each users object's generation
	if cache != nil {
		// A process that runs several shards in turn reads each users object once
		// while it is unchanged: one List says which exist and their generations.
		list, err := r.b.List(ctx, statePrefix+"bucket-")
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", statePrefix, err)
		}
		cache.keepListed(statePrefix+"bucket-", list)
		listed = make(map[string]int64, len(list))
		for _, a := range list {
			listed[a.Name] = a.Generation
		}
	}
	err := inOrder(ctx, len(foreign), stateReads, func(ctx context.Context, i int) (*bucketState, error) {
		bs := &bucketState{users: map[string]StateUser{}}
		gen, ok := listed[usersObject(foreign[i])]
		if cache != nil && !ok {
			return bs, nil // none when listed: its tokens, if any now, cost a /me
		}
		return bs, bs.readUsers(ctx, r.b, cache, foreign[i], gen)
	}, func(_ int, bs *bucketState) {
		r.state.foreign += bs.size
		for _, u := range bs.users {
			fromUsersObject(u)
		}
	})
	if err != nil {
		return nil, err
	}
	return dir, nil
}

// stateBuckets lists the buckets that have state objects.
func stateBuckets(ctx context.Context, b bucket.Bucket) ([]int, error) {
	list, err := b.List(ctx, statePrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", statePrefix, err)
	}
	var out []int
	seen := map[int]bool{}
	for _, a := range list {
		var bk int
		if _, err := fmt.Sscanf(strings.TrimPrefix(a.Name, statePrefix), "bucket-%d.", &bk); err == nil && !seen[bk] {
			seen[bk] = true
			out = append(out, bk)
		}
	}
	return out, nil
}

// CoveredThrough returns every account's covered_through across the dataset's state
// objects, for status reports and tests.
func CoveredThrough(ctx context.Context, b bucket.Bucket) (map[string]string, error) {
	bks, err := stateBuckets(ctx, b)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, bk := range bks {
		bs, err := readBucketState(ctx, b, bk, true)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, bs.covered)
	}
	return out, nil
}

// redactState removes a purged user's or account's entries from every state object.
func redactState(ctx context.Context, b bucket.Bucket, user, account string) error {
	bks, err := stateBuckets(ctx, b)
	if err != nil {
		return err
	}
	for _, bk := range bks {
		bs, err := readBucketState(ctx, b, bk, true)
		if err != nil {
			return err
		}
		changed := false
		for id, acc := range bs.accounts {
			if (user != "" && acc.UserID == user) || (account != "" && id == account) {
				delete(bs.accounts, id)
				delete(bs.covered, id)
				changed = true
			}
		}
		for fp, u := range bs.users {
			if user != "" && u.UserID == user {
				delete(bs.users, fp)
				changed = true
			}
		}
		if !changed {
			continue
		}
		for _, o := range []struct {
			name string
			data []byte
			gen  int64
		}{{usersObject(bk), bs.encodeUsers(), bs.usrGen}, {membersObject(bk), bs.encodeMembers(), bs.memGen}} {
			if o.gen == 0 {
				continue
			}
			if _, err := b.Put(ctx, o.name, o.data, bucket.Condition{GenerationMatch: o.gen}); err != nil {
				return fmt.Errorf("redact state %s: %w", o.name, err)
			}
		}
		if bs.covGen != 0 {
			if _, err := b.Put(ctx, coverageObject(bk), bs.encodeCoverage(), bucket.Condition{GenerationMatch: bs.covGen}); err != nil {
				return fmt.Errorf("redact state %s: %w", coverageObject(bk), err)
			}
		}
	}
	if user == "" {
		return nil // resolved objects name users, not accounts
	}
	var errs []error
	err = readResolved(ctx, b, nil, func(name string, gen, _ int64, users map[string]StateUser) {
		rs := &resolvedState{name: name, users: users, gen: gen}
		changed := false
		for fp, u := range users {
			if u.UserID == user {
				delete(users, fp)
				changed = true
			}
		}
		if changed {
			if _, err := b.Put(ctx, name, rs.encode(), bucket.Condition{GenerationMatch: gen}); err != nil {
				errs = append(errs, fmt.Errorf("redact state %s: %w", name, err))
			}
		}
	})
	return errors.Join(err, errors.Join(errs...))
}

// StateCache keeps state objects a run reads to learn which of the fleet's tokens
// are its shard's (the other buckets' users objects and the shards' resolved
// objects), by name and generation, for a process that runs several shards one
// after another (Config.StateCache): each run reads only the objects that changed
// since the previous run read them, where without it every shard's run reads every
// bucket's users object. An object is used from the cache only at the generation a
// List has just given, so a run sees what it would have read. Safe for concurrent
// use; a nil *StateCache caches nothing.
type StateCache struct {
	mu   sync.Mutex
	objs map[string]cachedState
}

type cachedState struct {
	gen  int64
	data []byte
}

// NewStateCache returns an empty cache.
func NewStateCache() *StateCache { return &StateCache{objs: map[string]cachedState{}} }

func (c *StateCache) get(name string, gen int64) ([]byte, bool) {
	if c == nil || gen == 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.objs[name]
	return o.data, ok && o.gen == gen
}

// keepListed forgets the cached objects under prefix that list (a List of prefix)
// no longer names: a shard's resolved object goes when its last line is pruned, and
// after a fleet's first run it names most of the fleet's tokens.
func (c *StateCache) keepListed(prefix string, list []bucket.Attrs) {
	if c == nil {
		return
	}
	listed := make(map[string]bool, len(list))
	for _, a := range list {
		listed[a.Name] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.objs {
		if strings.HasPrefix(name, prefix) && !listed[name] {
			delete(c.objs, name)
		}
	}
}

func (c *StateCache) put(name string, gen int64, data []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objs[name] = cachedState{gen: gen, data: data}
}
