package pipeline

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file holds the dataset layout: object names, _dataset.json, local days and
// months, partition keys, buckets and run ids.

// LayoutVersion is the version of the dataset layout written to _dataset.json by new
// datasets. Version 2 buckets transactions by user (all of a user's accounts in one
// bucket, so one shard reads a user whole: one discovery, one walk over all its
// accounts); version 1, still read and written, buckets them by account.
const LayoutVersion = 2

// Bucketing of each layout version.
const (
	bucketByAccount = "account" // layout 1
	bucketByUser    = "user"    // layout 2
)

// Object names of the dataset, relative to the bucket root.
const (
	datasetObject  = "_dataset.json"
	manifestPrefix = "_manifests/"
	inflightPrefix = "_inflight/"
	lockPrefix     = "_locks/"
	txPrefix       = "transactions/"
	deletionPrefix = "deletions/"
	pendingPrefix  = "pending/"
	accountsPrefix = "accounts/"
)

// Dataset is the content of _dataset.json: the settings every run of a dataset must share.
type Dataset struct {
	LayoutVersion int       `json:"layout_version"`
	SchemaVersion int       `json:"schema_version"`
	TimeZone      string    `json:"time_zone"`
	Grain         string    `json:"grain"`
	Buckets       int       `json:"buckets"`
	CreatedAt     time.Time `json:"created_at"`
	// Shards is the shard count every run must use (--shards); absent in datasets
	// written before it was recorded, where the first run under a lock sets it.
	Shards int `json:"shards,omitempty"`
	// BucketBy is what a bucket is a hash of: "user" (layout 2) or "account"
	// (layout 1, where the field is absent).
	BucketBy string `json:"bucket_by,omitempty"`
}

// bucketFor returns the bucket of an account of a user under the dataset's layout.
func (ds Dataset) bucketFor(userID, accountID string) int {
	if ds.BucketBy == bucketByUser {
		return bucketOf(userID, ds.Buckets)
	}
	return bucketOf(accountID, ds.Buckets)
}

// day is a local calendar date, as days since 1970-01-01 (the Arrow date32 encoding).
type day int32

func dayOf(y int, m time.Month, d int) day {
	return day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func dayOfTime(t time.Time, loc *time.Location) day {
	t = t.In(loc)
	return dayOf(t.Year(), t.Month(), t.Day())
}

func parseDay(s string) (day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a date YYYY-MM-DD", s)
	}
	return dayOf(t.Year(), t.Month(), t.Day()), nil
}

func (d day) civil() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }
func (d day) String() string   { return d.civil().Format(time.DateOnly) }
func (d day) month() month     { t := d.civil(); return month{t.Year(), t.Month()} }

// month is a partition of the transactions dataset.
type month struct {
	year int
	mon  time.Month
}

func parseMonth(s string) (month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return month{}, fmt.Errorf("%q is not a month YYYY-MM", s)
	}
	return month{t.Year(), t.Month()}, nil
}

func (m month) String() string { return fmt.Sprintf("%04d-%02d", m.year, int(m.mon)) }
func (m month) first() day     { return dayOf(m.year, m.mon, 1) }
func (m month) last() day      { return m.next().first() - 1 }
func (m month) next() month    { return m.add(1) }
func (m month) add(n int) month {
	t := time.Date(m.year, m.mon+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	return month{t.Year(), t.Month()}
}
func (m month) before(o month) bool {
	return m.year < o.year || (m.year == o.year && m.mon < o.mon)
}

// partKey names one transactions partition file: a month and a bucket.
type partKey struct {
	month  month
	bucket int
}

func (p partKey) String() string { return txObject(p) }

func txObject(p partKey) string {
	return fmt.Sprintf("%smonth=%s/part-%03d.parquet", txPrefix, p.month, p.bucket)
}

var txObjectRE = regexp.MustCompile(`^transactions/month=(\d{4}-\d{2})/part-(\d{3,})\.parquet$`)

// parseTxObject returns the partition of a transactions object name.
func parseTxObject(name string) (partKey, bool) {
	m := txObjectRE.FindStringSubmatch(name)
	if m == nil {
		return partKey{}, false
	}
	mo, err := parseMonth(m[1])
	if err != nil {
		return partKey{}, false
	}
	b, _ := strconv.Atoi(m[2])
	return partKey{mo, b}, true
}

func pendingObject(bucket int) string {
	return fmt.Sprintf("%spart-%03d.parquet", pendingPrefix, bucket)
}

func accountsObject(d day, bucket int) string {
	return fmt.Sprintf("%ssnapshot_date=%s/part-%03d.parquet", accountsPrefix, d, bucket)
}

func deletionObject(m month, runID string) string {
	return fmt.Sprintf("%smonth=%s/%s.parquet", deletionPrefix, m, runID)
}

var deletionObjectRE = regexp.MustCompile(`^deletions/month=(\d{4}-\d{2})/([^/]+)\.parquet$`)

// parseDeletionObject returns the run id of a tombstone object name.
func parseDeletionObject(name string) (runID string, ok bool) {
	m := deletionObjectRE.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[2], true
}

func manifestObject(runID string) string { return manifestPrefix + runID + ".json" }
func inflightObject(runID string) string { return inflightPrefix + runID + ".json" }
func lockObject(shard, shards int) string {
	return fmt.Sprintf("%sshard-%03d-of-%03d.json", lockPrefix, shard, shards)
}

func runIDOfObject(name, prefix string) (string, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".json") {
		return "", false
	}
	id := strings.TrimSuffix(strings.TrimPrefix(name, prefix), ".json")
	return id, id != "" && !strings.Contains(id, "/")
}

// bucketOf assigns a user (layout 2) or an account (layout 1) to a bucket: FNV-1a of
// its id modulo the bucket count. The assignment never changes for a dataset, so a
// transaction never changes file because of its account.
func bucketOf(id string, buckets int) int {
	if buckets <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(buckets))
}

// newRunID returns a sortable run id: UTC start time, shard and a random suffix.
func newRunID(now time.Time, shard int, rnd string) string {
	return fmt.Sprintf("%s-s%03d-%s", now.UTC().Format(runIDTime), shard, rnd)
}

// runIDTime is the layout of the UTC start time that begins a run id: run ids sort
// by it.
const runIDTime = "20060102T150405.000Z"

// runShard returns the shard encoded in a run id, or -1.
func runShard(runID string) int {
	_, rest, ok := strings.Cut(runID, "-s")
	if !ok {
		return -1
	}
	digits, _, _ := strings.Cut(rest, "-")
	if len(digits) < 3 {
		return -1
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
