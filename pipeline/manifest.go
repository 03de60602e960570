package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the manifest document and the in-flight marker, and reading them:
// the latest committed manifest of a shard and the markers of crashed runs.

// ManifestVersion is the version of the manifest document.
const ManifestVersion = 1

// Manifest records one committed run (of one shard). It is written last; a run without
// a manifest never happened as far as readers and later runs are concerned.
type Manifest struct {
	ManifestVersion int             `json:"manifest_version"`
	Kind            string          `json:"kind"` // run or purge
	RunID           string          `json:"run_id"`
	Shard           int             `json:"shard"`
	Shards          int             `json:"shards"`
	StartedAt       time.Time       `json:"started_at"`
	FinishedAt      time.Time       `json:"finished_at"`
	ToolVersion     string          `json:"tool_version"`
	SchemaVersion   int             `json:"schema_version"`
	Config          EffectiveConfig `json:"config"`
	ConfigHash      string          `json:"config_hash"`
	Range           DateRange       `json:"range"`
	// Users lists the users whose status is not ok (failed, revoked, forbidden), and
	// UserCounts counts every user by status: the manifest grows with what went wrong,
	// not with the number of users. (Manifests written before 2026-12 list every user.)
	Users      []UserStatus   `json:"users"`
	UserCounts map[string]int `json:"user_counts,omitempty"`
	// Accounts lists the accounts that need an operator's eye (failed, revoked,
	// forbidden, ok with a warning note, or whose pending list was kept after a
	// failed request), and
	// AccountCounts counts every account by status (ok, inactive, skipped, …).
	Accounts      []AccountStatus `json:"accounts"`
	AccountCounts map[string]int  `json:"account_counts,omitempty"`
	// Ranges is the coverage in compact form: each distinct run of local dates
	// extracted completely, with the number of accounts extracted over it. Coverage
	// is the older per-window form, read in older manifests only.
	Ranges   []CoverageRange `json:"coverage_ranges,omitempty"`
	Coverage []Coverage      `json:"coverage,omitempty"`
	Objects  []ObjectWrite   `json:"objects"`
	Counts   Counts          `json:"counts"`
	API      APIStats        `json:"api"`
	Uploads  UploadStats     `json:"uploads"`
	Reads    ReadStats       `json:"reads"`
	Spill    SpillStats      `json:"spill"`
	Deleted  []Tombstone     `json:"deleted"`
	// CoveredThrough is where manifests before 2026-12 kept each account's
	// covered_through; it now lives in the per-bucket state objects (state.go), and
	// a dataset without them starts from this map of its newest manifest.
	CoveredThrough map[string]string `json:"covered_through,omitempty"`
	// Recovered lists crashed runs whose leftovers this run resolved, and those an
	// earlier run resolved whose clean-up is not finished (their markers remain).
	Recovered []string `json:"recovered,omitempty"`
	Failures  []string `json:"failures,omitempty"`
	// Purge is set on a purge's manifest; Purges lists purges a run did (revoked users).
	Purge  *PurgeRecord  `json:"purge,omitempty"`
	Purges []PurgeRecord `json:"purges,omitempty"`
	// Redacted lists purges that removed entries from this manifest afterwards.
	Redacted []string `json:"redacted_by,omitempty"`
}

// EffectiveConfig is the run's configuration with every secret removed.
type EffectiveConfig struct {
	Out      string   `json:"out"`
	Start    string   `json:"start,omitempty"`
	End      string   `json:"end,omitempty"`
	Lookback string   `json:"lookback"`
	History  string   `json:"history"`
	Accounts []string `json:"accounts,omitempty"`
	Workers  int      `json:"workers"`
	Users    int      `json:"users"`
	TimeZone string   `json:"time_zone"`
	Buckets  int      `json:"buckets"`
	Shard    int      `json:"shard"`
	Shards   int      `json:"shards"`
}

func (c EffectiveConfig) hash() string {
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// DateRange is the inclusive local date range a run covered.
type DateRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// UserStatus is the outcome for one user (identified by Akahu's user id, never a token).
type UserStatus struct {
	UserID string `json:"user_id,omitempty"`
	Index  int    `json:"index"` // position of the token in the configuration
	// TokenFP is 128 bits of a SHA-256 of the token, in hex: it matches a token across
	// runs (to find a revoked user's id) without revealing it. Older manifests hold 48.
	TokenFP string `json:"token_fingerprint"`
	// Status is ok; failed (not identified or listed, e.g. 5xx); revoked (401: the user
	// withdrew access); or forbidden (403 for this user while others were served).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Note says, for a revoked user of a run with PurgeRevoked, whether its data was
	// purged or why not.
	Note string `json:"note,omitempty"`
}

// AccountStatus is the outcome for one account.
type AccountStatus struct {
	UserID    string `json:"user_id"`
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Status    string `json:"status"` // ok, inactive, skipped, revoked, forbidden, failed
	Note      string `json:"note,omitempty"`
	Error     string `json:"error,omitempty"`
	Rows      int64  `json:"rows"`
	// Pending says what became of the account's pending rows: "fetched" (replaced by
	// what Akahu listed, possibly nothing), "kept (request failed)" or "kept (not
	// requested)" (the previous snapshot's rows stay).
	Pending string `json:"pending,omitempty"`
}

// CoverageRange is a run of local dates (inclusive) over which Accounts accounts
// were extracted completely.
type CoverageRange struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Accounts int    `json:"accounts"`
}

// Coverage is one (user, account, window) an older run extracted completely.
type Coverage struct {
	UserID    string `json:"user_id"`
	AccountID string `json:"account_id"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// ObjectWrite is one object the run wrote or deleted, or adopted: a run recovering a
// crashed one vouches for an object it found with the bytes it would have written
// (perhaps the crashed run's, which no committed manifest records), uploading nothing.
type ObjectWrite struct {
	Path               string `json:"path"`
	Kind               string `json:"kind"` // transactions, deletions, pending, accounts
	Op                 string `json:"op"`   // put, delete, adopt
	Bytes              int64  `json:"bytes"`
	Rows               int64  `json:"rows"`
	CRC32C             uint32 `json:"crc32c"`
	Generation         int64  `json:"generation"`
	PreviousGeneration int64  `json:"previous_generation"`
}

// Counts classifies the transaction ids the run saw.
type Counts struct {
	Inserted  int64 `json:"inserted"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Moved     int64 `json:"moved"`
	Deleted   int64 `json:"deleted"`
	Pending   int64 `json:"pending"`
	Accounts  int64 `json:"accounts"`
	// Duplicates counts ids Akahu returned twice within one window (the first was kept).
	Duplicates int64 `json:"duplicates"`
}

// APIStats are the Akahu client's figures for the run.
type APIStats struct {
	Requests     int64 `json:"requests"`
	Retries      int64 `json:"retries"`
	RateLimited  int64 `json:"rate_limited"`
	ServerErrors int64 `json:"server_errors"`
	// AchievedRPS is Requests over the run's duration; RPSBudget the client's
	// budget (this shard's share of the job's; 0: none given).
	AchievedRPS float64 `json:"achieved_rps"`
	RPSBudget   float64 `json:"rps_budget"`
	// RateLimitSlowdowns counts the client's cuts of its pace for 429s during
	// the run; RateLimitRPS is its pace at the end (0: never limited).
	RateLimitSlowdowns int64   `json:"rate_limit_slowdowns"`
	RateLimitRPS       float64 `json:"rate_limit_rps"`
}

// UploadStats counts data objects uploaded (the manifest itself and control objects
// such as the lock are not counted). An idempotent re-run has zero.
type UploadStats struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	Skipped int64 `json:"skipped_unchanged"`
}

// ReadStats counts what the run read from the bucket until its manifest was made:
// whole objects (Get), ranged reads (GetRange: Parquet footers and the column chunks
// of the presence scan, id, and of the merge's check of a re-read partition, id,
// account_id, date, date_local and updated_at), and the bytes of both.
type ReadStats struct {
	Objects int64 `json:"objects"`
	Ranges  int64 `json:"ranges"`
	Bytes   int64 `json:"bytes"`
}

// SpillStats is what the run put in its local spill file (never part of the
// dataset): the bytes written, of rows waiting beyond Config.HoldBytes, of held
// partitions beyond Config.HeldBytes and of pending rows, and how many held
// partitions were parked there.
type SpillStats struct {
	Bytes      int64 `json:"bytes"`
	HeldParked int64 `json:"held_parked"`
}

// Tombstone is a deleted (or purged) transaction with its last known values.
type Tombstone struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id"`
	AccountID   string `json:"account_id"`
	Date        string `json:"date"`
	DateLocal   string `json:"date_local"`
	Amount      string `json:"amount"`
	Description string `json:"description"`
	Reason      string `json:"reason"`
	Object      string `json:"object"`
}

// marker is the in-flight record of a run that has started writing data.
type marker struct {
	RunID     string    `json:"run_id"`
	Shard     int       `json:"shard"`
	Shards    int       `json:"shards"`
	StartedAt time.Time `json:"started_at"`
	// Ranges are the runs of local dates the run may write, each with the buckets it
	// covers: a recovering run re-reads every account of those buckets over them.
	Ranges []MarkerRange `json:"ranges,omitempty"`
	// Coverage is the older per-window form (markers of older tools).
	Coverage []Coverage `json:"coverage,omitempty"`
}

// MarkerRange is a run of local dates and the buckets covered over it.
type MarkerRange struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Buckets []int  `json:"buckets"`
}

// latestManifest returns the newest committed run manifest of the shard for the
// shard count (any count with shards 0), or nil.
func latestManifest(ctx context.Context, b bucket.Bucket, now time.Time, shard, shards int) (*Manifest, error) {
	return newestManifest(ctx, b, now, func(id string) bool { return runShard(id) == shard },
		func(m *Manifest) bool { return m.Kind != "purge" && (m.Shards == shards || shards == 0) })
}

// manifestWindows are how far before the run's clock newestManifest lists the
// manifests, one window after the other until one holds a match; 0 is all of them.
// A shard that ran in the last two days (a daily job) reads two days of the fleet's
// manifests, however many runs the dataset has had; one that has not run for a
// long while, or never, pays a wider listing once.
var manifestWindows = []time.Duration{2 * 24 * time.Hour, 16 * 24 * time.Hour, 128 * 24 * time.Hour, 0}

// newestManifest returns the manifest with the greatest run id among those whose id
// passes want and whose content passes keep, or nil: the one a listing of every
// manifest would pick. Run ids begin with their run's UTC start time, so it lists
// only the names from a point in time on (Bucket.ListFrom), widening through
// manifestWindows while none matches. Whatever the clocks, the newest is found: a
// window lists every name from its start, also those of runs whose clock was ahead,
// and the last lists all.
func newestManifest(ctx context.Context, b bucket.Bucket, now time.Time, want func(runID string) bool, keep func(*Manifest) bool) (*Manifest, error) {
	read := map[string]bool{}
	for _, back := range manifestWindows {
		start := ""
		if back > 0 {
			start = manifestPrefix + now.Add(-back).UTC().Format(runIDTime)
		}
		list, err := b.ListFrom(ctx, manifestPrefix, start)
		if err != nil {
			return nil, fmt.Errorf("list manifests: %w", err)
		}
		var ids []string
		for _, a := range list {
			if id, ok := runIDOfObject(a.Name, manifestPrefix); ok && !read[id] && want(id) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for i := len(ids) - 1; i >= 0; i-- {
			read[ids[i]] = true // an id read in one window is no newer in the next
			m, err := readManifest(ctx, b, ids[i])
			if err != nil {
				return nil, err
			}
			if keep(m) {
				return m, nil
			}
		}
		if start == "" {
			break
		}
	}
	return nil, nil
}

func readManifest(ctx context.Context, b bucket.Bucket, runID string) (*Manifest, error) {
	data, _, err := b.Get(ctx, manifestObject(runID))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", runID, err)
	}
	return decodeManifest(data, manifestObject(runID))
}

// decodeManifest parses a manifest strictly: unknown fields are tolerated (newer
// tools add fields), a missing run id or version is corruption.
func decodeManifest(data []byte, name string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if m.ManifestVersion < 1 || m.ManifestVersion > ManifestVersion {
		return nil, fmt.Errorf("%w: %s: manifest_version %d not understood", ErrCorrupt, name, m.ManifestVersion)
	}
	if m.Kind == "" {
		m.Kind = "run"
	}
	if m.RunID == "" || strings.ContainsAny(m.RunID, "/\\") {
		return nil, fmt.Errorf("%w: %s: bad run_id %q", ErrCorrupt, name, m.RunID)
	}
	if _, err := time.Parse(time.DateOnly, m.Range.End); m.Range.End != "" && err != nil {
		return nil, fmt.Errorf("%w: %s: bad range end %q", ErrCorrupt, name, m.Range.End)
	}
	return &m, nil
}

// crashedRuns returns the in-flight markers of this shard left by runs that died.
func crashedRuns(ctx context.Context, b bucket.Bucket, shard int, self string) ([]marker, error) {
	list, err := b.List(ctx, inflightPrefix)
	if err != nil {
		return nil, fmt.Errorf("list in-flight markers: %w", err)
	}
	var out []marker
	for _, a := range list {
		id, ok := runIDOfObject(a.Name, inflightPrefix)
		if !ok || id == self || runShard(id) != shard {
			continue
		}
		data, _, err := b.Get(ctx, a.Name)
		if errors.Is(err, bucket.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read in-flight marker %s: %w", a.Name, err)
		}
		var m marker
		if err := json.Unmarshal(data, &m); err != nil || m.RunID != id {
			// A marker is written whole (atomic put), so this is not a torn write; keep
			// its run id so its leftovers are still cleaned up.
			m = marker{RunID: id, Shard: shard}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RunID < out[j].RunID })
	return out, nil
}
