package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

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
	foreign int64 // bytes of other shards' members objects read for the directory
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
	for bk := shard; bk < buckets; bk += shards {
		bs, err := readBucketState(ctx, b, bk, true)
		if err != nil {
			return nil, err
		}
		found = found || bs.memGen != 0 || bs.usrGen != 0
		s.buckets[bk] = bs
	}
	s.legacy = !found
	return s, nil
}

// readBucketState reads a bucket's users and, with all, its members and coverage.
func readBucketState(ctx context.Context, b bucket.Bucket, bk int, all bool) (*bucketState, error) {
	bs := &bucketState{accounts: map[string]StateAccount{}, users: map[string]StateUser{}, covered: map[string]string{}}
	if err := readLines(ctx, b, usersObject(bk), &bs.usrGen, &bs.size, func(l stateLine) {
		if l.User != nil && l.User.TokenFP != "" {
			bs.users[l.User.TokenFP] = *l.User
		}
	}); err != nil || !all {
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

// readLines reads a gzip'd JSON-lines state object, if it exists.
func readLines(ctx context.Context, b bucket.Bucket, name string, gen, size *int64, fn func(stateLine)) error {
	data, attrs, err := b.Get(ctx, name)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read state %s: %w", name, err)
	}
	*gen, *size = attrs.Generation, *size+int64(len(data))
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l stateLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, name, n, err)
		}
		fn(l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return nil
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
func (bs *bucketState) encodeUsers() []byte {
	var lines []stateLine
	for _, fp := range sortedKeys(bs.users) {
		u := bs.users[fp]
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
	put := func(name string, data []byte, gen *int64) {
		attrs, perr := r.b.Put(ctx, name, data, bucket.Condition{DoesNotExist: *gen == 0, GenerationMatch: *gen})
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("write state %s: %w", name, perr))
			return
		}
		*gen = attrs.Generation
		written += int64(len(data))
	}
	// Members first: a coverage entry of an account no members object names is
	// never read.
	for _, bk := range sortedInts(users) {
		bs := r.state.buckets[bk]
		put(usersObject(bk), bs.encodeUsers(), &bs.usrGen)
	}
	for _, bk := range sortedInts(members) {
		bs := r.state.buckets[bk]
		put(membersObject(bk), bs.encodeMembers(), &bs.memGen)
	}
	for _, bk := range sortedInts(coverage) {
		bs := r.state.buckets[bk]
		put(coverageObject(bk), bs.encodeCoverage(), &bs.covGen)
	}
	return written, err
}

// loadDirectory returns the user of every token fingerprint the state objects name:
// with layout 2, of every bucket (a shard skips the tokens of users other shards
// own, without a request); with layout 1, of the shard's own buckets.
func (r *runner) loadDirectory(ctx context.Context) (map[string]string, error) {
	dir := map[string]string{}
	for _, u := range r.state.users() {
		dir[u.TokenFP] = u.UserID
	}
	if r.ds.BucketBy != bucketByUser || r.cfg.Shards == 1 {
		return dir, nil
	}
	for bk := range r.ds.Buckets {
		if _, own := r.state.buckets[bk]; own {
			continue
		}
		bs, err := readBucketState(ctx, r.b, bk, false)
		if err != nil {
			return nil, err
		}
		r.state.foreign += bs.size
		for fp, u := range bs.users {
			dir[fp] = u.UserID
		}
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
	return nil
}
