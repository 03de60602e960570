package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds Status: a dataset at a glance (layout, each shard's last committed
// run, lagging accounts, locks and in-flight markers, rows and bytes per table), read
// without writing anything.

// StatusReport is what Status finds. Its JSON form is what 'extract status --json'
// prints; fields are only ever added. Times are UTC, ages whole seconds.
type StatusReport struct {
	// Location is where the dataset is ("file:///data/out", "gs://b/p").
	Location string `json:"location"`
	// Now is the time the ages are measured against.
	Now time.Time `json:"now"`
	// Dataset is _dataset.json; Shards the shard count in force (the recorded one, or
	// for a dataset written before it was recorded, the newest run's; at least 1).
	Dataset Dataset `json:"dataset"`
	Shards  int     `json:"shards"`
	// Manifests counts the committed manifests (runs and purges).
	Manifests int `json:"manifests"`
	// ShardRuns has one entry per shard, in shard order.
	ShardRuns []ShardStatus `json:"shard_runs"`
	// Lagging lists the accounts whose covered_through is before their shard's newest
	// one, most behind first.
	Lagging []AccountLag `json:"lagging_accounts"`
	// Locks lists the shard lock objects, held or expired.
	Locks []LockStatus `json:"locks"`
	// InFlight lists the in-flight markers: runs in progress, or that died.
	InFlight []InFlightStatus `json:"in_flight"`
	// Tables has one entry per table: transactions, pending, accounts, deletions.
	Tables []TableStatus `json:"tables"`
	// MaxAgeSeconds and StaleShards are set by CheckAge: the shards whose last
	// committed run finished longer ago than that, or that never committed.
	MaxAgeSeconds int64 `json:"max_age_seconds,omitempty"`
	StaleShards   []int `json:"stale_shards"`
}

// ShardStatus is one shard's newest committed run and how far its data reaches.
type ShardStatus struct {
	Shard int `json:"shard"`
	// LastRun is nil when no run of the current shard count committed.
	LastRun *RunStatus `json:"last_run"`
	// CoveredThrough is the newest local date any account of the shard is complete
	// through ("" when none is); DaysBehindToday is today, in the dataset's time zone,
	// minus that date.
	CoveredThrough  string `json:"covered_through,omitempty"`
	DaysBehindToday int    `json:"covered_days_behind_today"`
}

// RunStatus summarises a committed run's manifest.
type RunStatus struct {
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// AgeSeconds is Now minus FinishedAt.
	AgeSeconds int64       `json:"age_seconds"`
	Range      DateRange   `json:"range"`
	Counts     Counts      `json:"counts"`
	API        APIStats    `json:"api"`
	Uploads    UploadStats `json:"uploads"`
	Users      int         `json:"users"`
	Accounts   int         `json:"accounts"`
	// RefusedUsers are the users whose status was not ok: revoked (401), forbidden
	// (403) or failed.
	RefusedUsers []UserStatus `json:"refused_users"`
	// FailedAccounts are the accounts whose status was failed; Failures the run's
	// failure lines.
	FailedAccounts []AccountStatus `json:"failed_accounts"`
	Failures       []string        `json:"failures"`
}

// AccountLag is an account whose data is complete through an earlier date than the
// newest of its shard.
type AccountLag struct {
	Shard          int    `json:"shard"`
	AccountID      string `json:"account_id"`
	UserID         string `json:"user_id,omitempty"`
	CoveredThrough string `json:"covered_through"`
	// DaysBehind is the shard's newest covered_through minus this account's.
	DaysBehind int `json:"days_behind"`
	// LastStatus is the account's status in the shard's last run (failed, revoked,
	// inactive, …) and Error its error there; both "" when that run did not list it
	// (manifests list only the accounts that are not plainly ok).
	LastStatus string `json:"last_status,omitempty"`
	Error      string `json:"error,omitempty"`
}

// LockStatus is one lock object under _locks/.
type LockStatus struct {
	Object     string    `json:"object"`
	RunID      string    `json:"run_id"`
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// State is "held" (its lease runs until ExpiresAt) or "expired" (its holder
	// stopped refreshing it: the next run takes it over).
	State string `json:"state"`
}

// InFlightStatus is one in-flight marker under _inflight/.
type InFlightStatus struct {
	RunID      string    `json:"run_id"`
	Shard      int       `json:"shard"`
	StartedAt  time.Time `json:"started_at"`
	AgeSeconds int64     `json:"age_seconds"`
	// State is "in progress" (its run holds an unexpired lock), "committed" (its run
	// committed and died before removing it), "recovered" (a later run resolved it;
	// its clean-up is not finished) or "crashed" (the next run of its shard recovers
	// it).
	State string `json:"state"`
}

// TableStatus is one table's objects: bytes from the listing, rows from the newest
// committed manifest record of each object.
type TableStatus struct {
	Name    string `json:"name"`
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
	Rows    int64  `json:"rows"`
	// Unrecorded counts objects whose current bytes no committed manifest records (a
	// run in progress or one that died wrote them); their rows are not in Rows.
	Unrecorded int `json:"unrecorded_objects"`
}

// statusTables are the tables Status reports, in order, with their object prefixes.
var statusTables = []struct{ name, prefix string }{
	{"transactions", txPrefix},
	{"pending", pendingPrefix},
	{"accounts", accountsPrefix},
	{"deletions", deletionPrefix},
}

// CheckAge sets MaxAgeSeconds and StaleShards: the shards that never committed or
// whose last run finished more than maxAge before Now. It returns StaleShards.
func (r *StatusReport) CheckAge(maxAge time.Duration) []int {
	r.MaxAgeSeconds = int64(maxAge / time.Second)
	r.StaleShards = []int{}
	for _, s := range r.ShardRuns {
		if s.LastRun == nil || r.Now.Sub(s.LastRun.FinishedAt) > maxAge {
			r.StaleShards = append(r.StaleShards, s.Shard)
		}
	}
	return r.StaleShards
}

// ErrNotDataset is returned by Status when the location holds no _dataset.json.
var ErrNotDataset = errors.New("not a dataset: no _dataset.json")

// Status reads a dataset's layout, manifests, locks, in-flight markers and object
// listing and reports them as of now. It writes nothing and takes no lock, so what it
// reports may be changing under a run in progress.
func Status(ctx context.Context, b bucket.Bucket, now time.Time) (*StatusReport, error) {
	rep := &StatusReport{Location: b.String(), Now: now.UTC(),
		Lagging: []AccountLag{}, Locks: []LockStatus{}, InFlight: []InFlightStatus{}, StaleShards: []int{}}
	data, _, err := b.Get(ctx, datasetObject)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", b, ErrNotDataset)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", datasetObject, b, err)
	}
	if err := json.Unmarshal(data, &rep.Dataset); err != nil {
		return nil, fmt.Errorf("%w: %s in %s: %v", ErrCorrupt, datasetObject, b, err)
	}
	_, _, shards, _, err := datasetShards(ctx, b)
	if err != nil {
		return nil, err
	}
	rep.Shards = max(shards, 1)
	loc, err := time.LoadLocation(rep.Dataset.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("%w: %s in %s: time zone %q: %v", ErrCorrupt, datasetObject, b, rep.Dataset.TimeZone, err)
	}
	today := dayOfTime(now, loc)

	all, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b, err)
	}
	// Every manifest, oldest first: the newest run of each shard, and the newest
	// record of each object.
	var runIDs []string
	for _, a := range all {
		if id, ok := runIDOfObject(a.Name, manifestPrefix); ok {
			runIDs = append(runIDs, id)
		}
	}
	sort.Strings(runIDs)
	rep.Manifests = len(runIDs)
	latest := make([]*Manifest, rep.Shards)
	committed := map[string]bool{}
	records := map[string]ObjectWrite{}
	for _, id := range runIDs {
		m, err := readManifest(ctx, b, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b, err)
		}
		committed[id] = true
		for _, ow := range m.Objects {
			records[ow.Path] = ow
		}
		if m.Kind == "run" && m.Shard >= 0 && m.Shard < rep.Shards && (m.Shards == rep.Shards || shards == 0) {
			latest[m.Shard] = m
		}
	}

	recovered := map[string]bool{}
	for shard, m := range latest {
		ss := ShardStatus{Shard: shard}
		if m != nil {
			ss.LastRun = runStatus(m, now)
			for _, id := range m.Recovered {
				recovered[id] = true
			}
		}
		through, err := coveredThrough(ctx, b, rep.Dataset, rep.Shards, shard, m)
		if err != nil {
			return nil, err
		}
		lags, newest := lagging(shard, through, m)
		rep.Lagging = append(rep.Lagging, lags...)
		if newest != "" {
			ss.CoveredThrough = newest
			if d, err := parseDay(newest); err == nil {
				ss.DaysBehindToday = int(today - d)
			}
		}
		rep.ShardRuns = append(rep.ShardRuns, ss)
	}
	sort.SliceStable(rep.Lagging, func(i, j int) bool {
		if rep.Lagging[i].DaysBehind != rep.Lagging[j].DaysBehind {
			return rep.Lagging[i].DaysBehind > rep.Lagging[j].DaysBehind
		}
		if rep.Lagging[i].Shard != rep.Lagging[j].Shard {
			return rep.Lagging[i].Shard < rep.Lagging[j].Shard
		}
		return rep.Lagging[i].AccountID < rep.Lagging[j].AccountID
	})

	held := map[string]bool{} // run ids holding an unexpired lock
	for _, a := range all {
		if !strings.HasPrefix(a.Name, lockPrefix) {
			continue
		}
		ls, err := lockStatus(ctx, b, a.Name, now)
		if errors.Is(err, bucket.ErrNotFound) {
			continue // released since the listing
		}
		if err != nil {
			return nil, err
		}
		if ls.State == "held" {
			held[ls.RunID] = true
		}
		rep.Locks = append(rep.Locks, ls)
	}
	for _, a := range all {
		id, ok := runIDOfObject(a.Name, inflightPrefix)
		if !ok {
			continue
		}
		fs := InFlightStatus{RunID: id, Shard: runShard(id)}
		data, _, err := b.Get(ctx, a.Name)
		if errors.Is(err, bucket.ErrNotFound) {
			continue // its run finished since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("read in-flight marker %s in %s: %w", a.Name, b, err)
		}
		var mk marker
		if json.Unmarshal(data, &mk) == nil && mk.RunID == id {
			fs.StartedAt = mk.StartedAt.UTC()
			fs.AgeSeconds = seconds(now.Sub(mk.StartedAt))
		}
		switch {
		case committed[id]:
			fs.State = "committed"
		case recovered[id]:
			fs.State = "recovered"
		case held[id]:
			fs.State = "in progress"
		default:
			fs.State = "crashed"
		}
		rep.InFlight = append(rep.InFlight, fs)
	}

	for _, t := range statusTables {
		ts := TableStatus{Name: t.name}
		for _, a := range all {
			if !strings.HasPrefix(a.Name, t.prefix) || !strings.HasSuffix(a.Name, ".parquet") {
				continue
			}
			ts.Objects++
			ts.Bytes += a.Size
			if ow, ok := records[a.Name]; ok && ow.Op != "delete" && ow.Bytes == a.Size && ow.CRC32C == a.CRC32C {
				ts.Rows += ow.Rows
			} else {
				ts.Unrecorded++
			}
		}
		rep.Tables = append(rep.Tables, ts)
	}
	return rep, nil
}

// coveredAccount is an account's covered_through with its user, as Status reads it.
type coveredAccount struct {
	userID, through string
}

// coveredThrough returns each account of one shard (of shards, in dataset ds) that
// has a covered_through, the local date through which its data is complete, with its
// user. It is the only place Status reads that state: the shard's per-bucket state
// objects, or for a dataset without any, the covered_through map of the shard's
// newest committed run (latest, nil when none).
func coveredThrough(ctx context.Context, b bucket.Bucket, ds Dataset, shards, shard int, latest *Manifest) (map[string]coveredAccount, error) {
	st, err := loadRunState(ctx, b, ds.Buckets, shard, shards)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	out := map[string]coveredAccount{}
	if !st.legacy {
		for _, bs := range st.buckets {
			for id, d := range bs.covered {
				if d != "" {
					out[id] = coveredAccount{userID: bs.accounts[id].UserID, through: d}
				}
			}
		}
		return out, nil
	}
	if latest == nil {
		return out, nil
	}
	for id, d := range latest.CoveredThrough {
		out[id] = coveredAccount{through: d}
	}
	return out, nil
}

// lagging returns the accounts of through that are behind its newest date, with
// their status and error in the shard's last run (last) when it lists them, and that
// newest date.
func lagging(shard int, through map[string]coveredAccount, last *Manifest) ([]AccountLag, string) {
	newest := ""
	for _, a := range through {
		newest = max(newest, a.through)
	}
	nd, err := parseDay(newest)
	if err != nil {
		return nil, newest
	}
	listed := map[string]AccountStatus{}
	if last != nil {
		for _, a := range last.Accounts {
			listed[a.AccountID] = a
		}
	}
	var out []AccountLag
	for id, ca := range through {
		ad, err := parseDay(ca.through)
		if err != nil || ad >= nd {
			continue
		}
		lag := AccountLag{Shard: shard, AccountID: id, UserID: ca.userID, CoveredThrough: ca.through, DaysBehind: int(nd - ad)}
		if a, ok := listed[id]; ok {
			lag.LastStatus, lag.Error = a.Status, a.Error
			if lag.UserID == "" {
				lag.UserID = a.UserID
			}
		}
		out = append(out, lag)
	}
	return out, newest
}

func runStatus(m *Manifest, now time.Time) *RunStatus {
	rs := &RunStatus{RunID: m.RunID, StartedAt: m.StartedAt.UTC(), FinishedAt: m.FinishedAt.UTC(),
		AgeSeconds: seconds(now.Sub(m.FinishedAt)), Range: m.Range, Counts: m.Counts, API: m.API, Uploads: m.Uploads,
		Users: total(m.UserCounts, len(m.Users)), Accounts: total(m.AccountCounts, len(m.Accounts)),
		RefusedUsers: []UserStatus{}, FailedAccounts: []AccountStatus{}, Failures: []string{}}
	for _, u := range m.Users {
		if u.Status != "ok" {
			rs.RefusedUsers = append(rs.RefusedUsers, u)
		}
	}
	for _, a := range m.Accounts {
		if a.Status == "failed" {
			rs.FailedAccounts = append(rs.FailedAccounts, a)
		}
	}
	rs.Failures = append(rs.Failures, m.Failures...)
	return rs
}

func lockStatus(ctx context.Context, b bucket.Bucket, name string, now time.Time) (LockStatus, error) {
	data, _, err := b.Get(ctx, name)
	if err != nil {
		return LockStatus{}, fmt.Errorf("read lock %s in %s: %w", name, b, err)
	}
	ls := LockStatus{Object: name, State: "expired"}
	var doc lockDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		// acquireLock takes an unreadable lock over, as an expired one.
		return ls, nil
	}
	ls.RunID, ls.Host, ls.PID = doc.RunID, doc.Host, doc.PID
	ls.AcquiredAt, ls.ExpiresAt = doc.Acquired.UTC(), doc.ExpiresAt.UTC()
	if !now.After(doc.ExpiresAt) {
		ls.State = "held"
	}
	return ls, nil
}

// total adds up a manifest's counts by status; manifests written before they were
// kept list every user and account, so then it is the length of that list.
func total(counts map[string]int, listed int) int {
	if counts == nil {
		return listed
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }
