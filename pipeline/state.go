package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the incremental state: per bucket, each account's covered_through
// and status, and each known token fingerprint's user, in one small object read once
// per run (_state/bucket-BBB.jsonl.gz, gzip'd JSON lines).
//
// The state is kept per bucket, not per shard, so a change of shard count (buckets
// move between shards, never between state objects) or an ad-hoc run over some
// accounts never resets another account: a run rewrites only the entries of the
// accounts it extracted completely, and covered_through only moves forward. It is
// written after the manifest, conditional on the generation read, so it never claims
// more than a committed run extracted; a run that dies between the two leaves the
// older state, and the next run re-reads a little more. Datasets written before the
// state existed start from their newest manifest's covered_through map.

const statePrefix = "_state/"

func stateObject(bucketIdx int) string {
	return fmt.Sprintf("%sbucket-%03d.jsonl.gz", statePrefix, bucketIdx)
}

// StateAccount is one account's line in a state object.
type StateAccount struct {
	AccountID      string `json:"account_id"`
	UserID         string `json:"user_id,omitempty"`
	CoveredThrough string `json:"covered_through,omitempty"`
	Status         string `json:"status,omitempty"`
	RunID          string `json:"run_id,omitempty"` // the run that last extracted it completely
}

// StateUser is one token fingerprint's line: the user it belonged to when a run last
// resolved it. Later runs name a revoked token's user by it.
type StateUser struct {
	TokenFP string `json:"token_fingerprint"`
	UserID  string `json:"user_id"`
}

// stateLine is one JSON line: exactly one of its fields is set.
type stateLine struct {
	Account *StateAccount `json:"account,omitempty"`
	User    *StateUser    `json:"user,omitempty"`
}

// bucketState is one bucket's state object as read.
type bucketState struct {
	accounts map[string]StateAccount
	users    map[string]StateUser // by fingerprint
	gen      int64                // 0: no object yet
	size     int64
}

// runState is the state of the buckets this shard owns.
type runState struct {
	buckets map[int]*bucketState
	legacy  bool  // no state object yet: covered_through comes from the newest manifest
	foreign int64 // bytes of other shards' state objects read for the directory
}

// coveredThrough returns the account's covered_through, if any.
func (s *runState) coveredThrough(id string) (string, bool) {
	if s == nil {
		return "", false
	}
	for _, bs := range s.buckets {
		if a, ok := bs.accounts[id]; ok && a.CoveredThrough != "" {
			return a.CoveredThrough, true
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
		bs, err := readBucketState(ctx, b, bk)
		if err != nil {
			return nil, err
		}
		found = found || bs.gen != 0
		s.buckets[bk] = bs
	}
	s.legacy = !found
	return s, nil
}

func readBucketState(ctx context.Context, b bucket.Bucket, bk int) (*bucketState, error) {
	bs := &bucketState{accounts: map[string]StateAccount{}, users: map[string]StateUser{}}
	name := stateObject(bk)
	data, attrs, err := b.Get(ctx, name)
	if errors.Is(err, bucket.ErrNotFound) {
		return bs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	bs.gen, bs.size = attrs.Generation, int64(len(data))
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l stateLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, name, n, err)
		}
		switch {
		case l.Account != nil && l.Account.AccountID != "":
			bs.accounts[l.Account.AccountID] = *l.Account
		case l.User != nil && l.User.TokenFP != "":
			bs.users[l.User.TokenFP] = *l.User
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return bs, nil
}

// encode renders a bucket's state deterministically: users then accounts, sorted.
func (bs *bucketState) encode() []byte {
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	fps := make([]string, 0, len(bs.users))
	for fp := range bs.users {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	for _, fp := range fps {
		u := bs.users[fp]
		_ = enc.Encode(stateLine{User: &u})
	}
	for _, id := range sortedKeys(bs.accounts) {
		a := bs.accounts[id]
		_ = enc.Encode(stateLine{Account: &a})
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = zw.Write(raw.Bytes())
	_ = zw.Close()
	return out.Bytes()
}

// saveState folds this run into the state of its buckets and writes the objects
// that changed. It runs after the commit; a failure is reported, not fatal: the
// next run starts from the older state and re-reads more.
func (r *runner) saveState(ctx context.Context) (written int64, err error) {
	if r.state == nil {
		return 0, nil
	}
	changed := map[int]bool{}
	for _, a := range r.accounts {
		bs := r.state.buckets[a.bucket]
		if bs == nil || r.purged[a.user.me.ID] {
			continue
		}
		old, had := bs.accounts[a.acct.ID]
		if !had && r.state.legacy && r.latest != nil {
			if d, ok := r.latest.CoveredThrough[a.acct.ID]; ok {
				old = StateAccount{AccountID: a.acct.ID, CoveredThrough: d}
			}
		}
		next := old
		next.AccountID, next.UserID = a.acct.ID, a.user.me.ID
		next.Status = a.status
		switch {
		case a.user.isRefused():
			next.Status = a.user.status
		case a.failed():
			next.Status = "failed"
		case a.status != "skipped" && len(a.done) > 0:
			if end := r.end.String(); next.CoveredThrough < end {
				next.CoveredThrough = end
			}
			next.RunID = r.runID
		}
		if next != old || !had {
			bs.accounts[a.acct.ID] = next
			changed[a.bucket] = true
		}
	}
	for _, u := range r.users {
		if u.me.ID == "" || u.status != "ok" || r.purged[u.me.ID] {
			continue
		}
		// One bucket of the shard names the user: its own (layout 2), or that of its
		// first account the shard owns (layout 1).
		bks := []int{bucketOf(u.me.ID, r.ds.Buckets)}
		if r.ds.BucketBy != bucketByUser {
			bks = bks[:0]
			for _, a := range u.accounts {
				bks = append(bks, r.ds.bucketFor(u.me.ID, a.ID))
			}
		}
		for _, bk := range bks {
			bs := r.state.buckets[bk]
			if bs == nil {
				continue
			}
			if old, ok := bs.users[u.fp]; !ok || old.UserID != u.me.ID {
				bs.users[u.fp] = StateUser{TokenFP: u.fp, UserID: u.me.ID}
				changed[bk] = true
			}
			break
		}
	}
	for bk := range changed {
		bs := r.state.buckets[bk]
		data := bs.encode()
		cond := bucket.Condition{DoesNotExist: bs.gen == 0, GenerationMatch: bs.gen}
		attrs, perr := r.b.Put(ctx, stateObject(bk), data, cond)
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("write state %s: %w", stateObject(bk), perr))
			continue
		}
		bs.gen, bs.size = attrs.Generation, int64(len(data))
		written += int64(len(data))
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
		bs, err := readBucketState(ctx, r.b, bk)
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

// CoveredThrough returns every account's covered_through across the dataset's state
// objects (or, for a dataset without any, the newest manifests' maps), for status
// reports and tests.
func CoveredThrough(ctx context.Context, b bucket.Bucket) (map[string]string, error) {
	list, err := b.List(ctx, statePrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", statePrefix, err)
	}
	out := map[string]string{}
	for _, a := range list {
		var bk int
		if _, err := fmt.Sscanf(strings.TrimPrefix(a.Name, statePrefix), "bucket-%d.jsonl.gz", &bk); err != nil {
			continue
		}
		bs, err := readBucketState(ctx, b, bk)
		if err != nil {
			return nil, err
		}
		for id, acc := range bs.accounts {
			if acc.CoveredThrough != "" {
				out[id] = acc.CoveredThrough
			}
		}
	}
	return out, nil
}

// redactState removes a purged user's or account's entries from every state object.
func redactState(ctx context.Context, b bucket.Bucket, user, account string) error {
	list, err := b.List(ctx, statePrefix)
	if err != nil {
		return fmt.Errorf("list %s: %w", statePrefix, err)
	}
	for _, a := range list {
		var bk int
		if _, err := fmt.Sscanf(strings.TrimPrefix(a.Name, statePrefix), "bucket-%d.jsonl.gz", &bk); err != nil {
			continue
		}
		bs, err := readBucketState(ctx, b, bk)
		if err != nil {
			return err
		}
		changed := false
		for id, acc := range bs.accounts {
			if (user != "" && acc.UserID == user) || (account != "" && id == account) {
				delete(bs.accounts, id)
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
		if _, err := b.Put(ctx, a.Name, bs.encode(), bucket.Condition{GenerationMatch: bs.gen}); err != nil {
			return fmt.Errorf("redact state %s: %w", a.Name, err)
		}
	}
	return nil
}
