package duckdb_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// A fleet is a transactions dataset written straight from the fake's population,
// without HTTP: the fake's ground truth (akahutest.Fake.Settled) goes through the
// same schema builder the pipeline uses, is sorted the way the pipeline sorts a
// partition (account, posting time, id) and is encoded by the sink into
// transactions/month=YYYY-MM/part-NNN.parquet, the user's bucket being FNV-1a of
// the user id modulo the bucket count, as the pipeline assigns it (layout 2: all of
// a user's accounts in one bucket). It is what a backfill of the same population
// writes, at a size (20,000 users) that 1.4M HTTP requests would make slow to reach.

// fleetSpec is a population and a layout.
type fleetSpec struct {
	users, buckets, txPerMonth int
	// months limits the fleet to the first months whole months of the history
	// (the partial first month skipped); 0 writes every month.
	months int
}

// String is the spec as written in a complete fleet's done marker.
func (s fleetSpec) String() string {
	return fmt.Sprintf("users=%d buckets=%d tx_per_month=%d months=%d", s.users, s.buckets, s.txPerMonth, s.months)
}

// fleetComplete reports whether dir holds a complete fleet of spec (or of the same
// population over every month).
func fleetComplete(dir string, spec fleetSpec) bool {
	b, err := os.ReadFile(filepath.Join(dir, fleetDoneMarker))
	if err != nil {
		return false
	}
	all := spec
	all.months = 0
	return string(b) == spec.String() || string(b) == all.String()
}

// fleetOut is one copy of the fleet to write, with the sink options to write it with.
type fleetOut struct {
	dir  string
	opts []parquetsink.Option
}

// fleetDoneMarker is written last in a fleet directory, so an interrupted build is
// never taken for a complete one.
const fleetDoneMarker = "_fleet_complete"

// fleetWorkers is the number of partitions built at once.
var fleetWorkers = 2

// fleetRunID and fleetExtractedAt fill the lineage columns, fixed so that the same
// spec always gives the same bytes.
const fleetRunID = "20261121T090000.000Z-s000-fleet0"

var fleetExtractedAt = time.Date(2026, 11, 20, 20, 0, 0, 0, time.UTC)

func fleetFake(spec fleetSpec) *akahutest.Fake {
	return akahutest.New(akahutest.Options{Users: spec.users, TxPerAccountPerMonth: spec.txPerMonth})
}

// fleetAccount is an account with settled transactions.
type fleetAccount struct {
	id, user, currency string
}

// fleetAccounts lists the accounts with transactions per bucket, each bucket's
// sorted by id (the first key of the partition sort).
func fleetAccounts(f *akahutest.Fake, buckets int) [][]fleetAccount {
	out := make([][]fleetAccount, buckets)
	for _, u := range f.Users() {
		for _, id := range f.AccountIDs(u.ID) {
			info, ok := f.Account(id)
			if !ok || !info.HasTransactions {
				continue
			}
			b := bucketOfUser(u.ID, buckets)
			out[b] = append(out[b], fleetAccount{id: id, user: u.ID, currency: info.Currency})
		}
	}
	for _, accs := range out {
		slices.SortFunc(accs, func(a, b fleetAccount) int { return strings.Compare(a.id, b.id) })
	}
	return out
}

// bucketOfUser is the pipeline's bucket assignment (layout 2: all of a user's
// accounts in one bucket): FNV-1a of the user id modulo the bucket count.
func bucketOfUser(userID string, buckets int) int {
	if buckets <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(userID))
	return int(h.Sum32() % uint32(buckets))
}

// fleetMonths lists the local months of the fake's history with their Akahu
// windows: start exclusive, end inclusive, as the fake's Settled takes them. With
// limit > 0, only the first limit whole months.
func fleetMonths(f *akahutest.Fake, loc *time.Location, limit int) []fleetMonth {
	o := f.Options()
	from, to := o.From.In(loc), o.To.In(loc)
	first := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, loc)
	if limit > 0 && from.Day() != 1 {
		first = first.AddDate(0, 1, 0)
	}
	var out []fleetMonth
	for m := first; !m.After(to) && (limit <= 0 || len(out) < limit); m = m.AddDate(0, 1, 0) {
		next := m.AddDate(0, 1, 0)
		out = append(out, fleetMonth{
			name:  m.Format("2006-01"),
			start: m.Add(-time.Millisecond),
			end:   next.Add(-time.Millisecond),
		})
	}
	return out
}

type fleetMonth struct {
	name       string
	start, end time.Time
}

// writeFleet writes spec's transactions into every out directory (same records,
// each out's options), two partitions at a time, and marks each directory
// complete. Directories already marked complete are left as they are.
func writeFleet(ctx context.Context, spec fleetSpec, outs []fleetOut) error {
	var todo []fleetOut
	for _, o := range outs {
		if !fleetComplete(o.dir, spec) {
			todo = append(todo, o)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	loc, err := time.LoadLocation(datasetTimeZone)
	if err != nil {
		return err
	}
	f := fleetFake(spec)
	accs := fleetAccounts(f, spec.buckets)
	months := fleetMonths(f, loc, spec.months)
	type job struct {
		month  fleetMonth
		bucket int
	}
	jobs := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range fleetWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := writeFleetPartition(f, loc, j.month, j.bucket, accs[j.bucket], todo); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
feed:
	for _, m := range months {
		for b := range spec.buckets {
			select {
			case jobs <- job{m, b}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, o := range todo {
		if err := os.WriteFile(filepath.Join(o.dir, fleetDoneMarker), []byte(spec.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeFleetPartition builds one month of one bucket and writes it to every out.
func writeFleetPartition(f *akahutest.Fake, loc *time.Location, m fleetMonth, bucket int, accs []fleetAccount, outs []fleetOut) error {
	b := schema.NewTransactionBuilder(memory.DefaultAllocator, schema.Options{Location: loc, RunID: fleetRunID, ExtractedAt: fleetExtractedAt})
	defer b.Release()
	for _, a := range accs {
		txs := f.Settled(a.id, m.start, m.end)
		slices.SortFunc(txs, func(x, y akahutest.Txn) int {
			if c := x.Date.Compare(y.Date); c != 0 {
				return c
			}
			return strings.Compare(x.ID, y.ID)
		})
		for _, t := range txs {
			if err := b.Append(t.JSON, a.currency); err != nil {
				return fmt.Errorf("month %s: account %s: %w", m.name, a.id, err)
			}
		}
	}
	if b.Len() == 0 {
		return nil
	}
	rec := b.NewRecord()
	defer rec.Release()
	for _, o := range outs {
		var buf bytes.Buffer
		if _, err := parquetsink.Write(&buf, rec.Schema(), []arrow.Record{rec}, o.opts...); err != nil {
			return fmt.Errorf("month %s bucket %d: %w", m.name, bucket, err)
		}
		dir := filepath.Join(o.dir, "transactions", "month="+m.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		name := filepath.Join(dir, fmt.Sprintf("part-%03d.parquet", bucket))
		if err := os.WriteFile(name+".tmp", buf.Bytes(), 0o644); err != nil {
			return err
		}
		if err := os.Rename(name+".tmp", name); err != nil {
			return err
		}
	}
	return nil
}
