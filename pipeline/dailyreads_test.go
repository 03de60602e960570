package pipeline_test

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// readLog records, per object, the whole reads (Get) and the bytes read by range.
type readLog struct {
	bucket.Bucket
	mu     sync.Mutex
	whole  map[string]int
	ranged map[string]int64
}

func newReadLog(b bucket.Bucket) *readLog {
	return &readLog{Bucket: b, whole: map[string]int{}, ranged: map[string]int64{}}
}

func (l *readLog) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	data, a, err := l.Bucket.Get(ctx, name)
	if err == nil {
		l.mu.Lock()
		l.whole[name]++
		l.mu.Unlock()
	}
	return data, a, err
}

func (l *readLog) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	data, err := l.Bucket.GetRange(ctx, name, gen, off, n)
	l.mu.Lock()
	l.ranged[name] += int64(len(data))
	l.mu.Unlock()
	return data, err
}

// take returns the reads of transactions partitions since the last take.
func (l *readLog) take() (whole map[string]int, ranged map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	whole, ranged = map[string]int{}, map[string]int64{}
	for k, v := range l.whole {
		if strings.HasPrefix(k, "transactions/") {
			whole[k] = v
		}
	}
	for k, v := range l.ranged {
		if strings.HasPrefix(k, "transactions/") {
			ranged[k] = v
		}
	}
	l.whole, l.ranged = map[string]int{}, map[string]int64{}
	return whole, ranged
}

// dailyScenario runs a backfill, applies change to the fake a day later, then a daily
// run (the default lookback) and the same daily run again. The backfill runs ten days
// after the fake's last posting, so every transaction Akahu generated (enrichment
// included) is older than it, and the scripted changes are made after it.
type dailyScenario struct {
	h          *harness
	log        *readLog
	daily, re  *pipeline.Manifest
	dailyReads struct {
		whole  map[string]int
		ranged map[string]int64
	}
	reReads struct {
		whole  map[string]int
		ranged map[string]int64
	}
}

func runDailyScenario(t *testing.T, compareValues bool, change func(h *harness)) *dailyScenario {
	t.Helper()
	s := &dailyScenario{log: newReadLog(newLocal(t))}
	s.h = newHarness(t, s.log, smallPopulation())
	s.h.shift.Store(int64(10 * 24 * time.Hour))
	run := func(start, end time.Time) *pipeline.Manifest {
		t.Helper()
		cfg := s.h.config(start, end)
		cfg.Buckets, cfg.CompareValues = 4, compareValues
		m, err := pipeline.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("run %s..%s: %v", cfg.Start, cfg.End, err)
		}
		return m
	}
	run(s.h.opts.From, s.h.opts.To)
	s.h.shift.Add(int64(24 * time.Hour))
	s.h.srv.SetClock(s.h.now())
	change(s.h)
	s.log.take()
	s.daily = run(time.Time{}, time.Time{})
	s.dailyReads.whole, s.dailyReads.ranged = s.log.take()
	s.re = run(time.Time{}, time.Time{})
	s.reReads.whole, s.reReads.ranged = s.log.take()
	return s
}

// written returns the transactions objects a run wrote or deleted.
func written(m *pipeline.Manifest) map[string]bool {
	out := map[string]bool{}
	for _, o := range m.Objects {
		if o.Kind == "transactions" {
			out[o.Path] = true
		}
	}
	return out
}

// TestDailyRunReadsWhatChanged: a daily run reads by range (footer and a few columns)
// the partitions it re-reads and reads whole only those it then rewrites; changes in
// the previous month (a modified transaction, a deletion, moves out of and into the
// lookback, a late addition) still come out exactly, with the counts of a run that
// reads every partition whole (Config.CompareValues, which does); the same daily run
// again reads nothing whole and uploads nothing.
func TestDailyRunReadsWhatChanged(t *testing.T) {
	tests := dailyChanges(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := runDailyScenario(t, false, tc.change)
			whole := runDailyScenario(t, true, tc.change)
			s.h.expectFaithful(s.h.opts.From, s.h.opts.To)
			if s.daily.Counts != whole.daily.Counts {
				t.Errorf("daily run counts %+v, reading whole %+v", s.daily.Counts, whole.daily.Counts)
			}
			if s.re.Counts != whole.re.Counts {
				t.Errorf("repeated daily run counts %+v, reading whole %+v", s.re.Counts, whole.re.Counts)
			}
			wrote := written(s.daily)
			for name := range s.dailyReads.whole {
				if !wrote[name] {
					t.Errorf("daily run read %s whole but left it as it was", name)
				}
			}
			var jan int
			for name, n := range s.dailyReads.ranged {
				if strings.Contains(name, "month=2026-01") && !wrote[name] && n > 0 {
					jan++
				}
			}
			if tc.name == "unchanged" && (jan == 0 || len(s.dailyReads.whole) > 0 || len(wrote) > 0) {
				t.Errorf("unchanged data: %d January partitions read by range, %v read whole, %d written", jan, s.dailyReads.whole, len(wrote))
			}
			if s.re.Uploads.Objects != 0 || len(s.reReads.whole) != 0 {
				t.Errorf("repeated daily run: uploads %+v, read whole %v", s.re.Uploads, s.reReads.whole)
			}
			// The escape hatch reads the lookback's partitions whole, changed or not.
			var wholeJan int
			for name := range whole.dailyReads.whole {
				if strings.Contains(name, "month=2026-01") && !written(whole.daily)[name] {
					wholeJan++
				}
			}
			if wholeJan == 0 || len(whole.reReads.whole) == 0 {
				t.Errorf("with CompareValues the daily runs read no unchanged partition whole: %v, then %v", whole.dailyReads.whole, whole.reReads.whole)
			}
			t.Logf("daily run: read %d B (%d whole objects, %d ranges), wrote %d B; reading whole: read %d B, wrote %d B",
				s.daily.Reads.Bytes, s.daily.Reads.Objects, s.daily.Reads.Ranges, s.daily.Uploads.Bytes,
				whole.daily.Reads.Bytes, whole.daily.Uploads.Bytes)
		})
	}
}

// TestDailyRunReadRatio: after a backfill and a daily run with a few changes (new
// transactions this month, for each user), the run reads at most twice what it writes
// plus the footers of the partitions it checks by range (the figures of a run reading
// them whole, CompareValues, are logged for comparison).
func TestDailyRunReadRatio(t *testing.T) {
	for _, compareValues := range []bool{false, true} {
		s := runDailyScenario(t, compareValues, func(h *harness) {
			for _, u := range h.srv.Users() {
				acct := h.srv.AccountIDs(u.ID)[0]
				h.srv.AddTransaction(acct, date(2026, 3, 4), "-12.00", "Groceries")
				h.srv.AddTransaction(acct, date(2026, 3, 9), "-3.20", "Coffee")
			}
		})
		s.h.expectFaithful(s.h.opts.From, s.h.opts.To)
		m := s.daily
		footers := int64(len(s.dailyReads.ranged)) * parquetsink.TailBytes
		t.Logf("compare values %v: daily run read %d B (%d whole objects, %d ranged reads over %d partitions), wrote %d B",
			compareValues, m.Reads.Bytes, m.Reads.Objects, m.Reads.Ranges, len(s.dailyReads.ranged), m.Uploads.Bytes)
		if !compareValues && (m.Uploads.Bytes == 0 || m.Reads.Bytes > 2*m.Uploads.Bytes+footers) {
			t.Errorf("compare values %v: daily run read %d B for %d B written (plus %d B of footers)", compareValues, m.Reads.Bytes, m.Uploads.Bytes, footers)
		}
	}
}

// TestDailyRunReadsFootersOfUnchanged: the partitions a daily run re-reads and leaves
// as they are are read by their footer alone (their day digests say the fresh rows are
// the stored ones), whatever else changed in the lookback; the partitions that change
// (a modified transaction, a deletion, a move in) fall through to the column check and
// the whole read, and the dataset comes out exactly. (Only the lookback's partitions,
// January's and February's, count: older ones are scanned by their id column for a
// deletion or move candidate, and with a move in all are.)
func TestDailyRunReadsFootersOfUnchanged(t *testing.T) {
	tests := dailyChanges(t, "unchanged", "modified", "deleted", "moved into the lookback")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := runDailyScenario(t, false, tc.change)
			s.h.expectFaithful(s.h.opts.From, s.h.opts.To)
			wrote := written(s.daily)
			var footerOnly int
			for name, n := range s.dailyReads.ranged {
				if wrote[name] {
					if s.dailyReads.whole[name] == 0 {
						t.Errorf("%s was rewritten without being read whole", name)
					}
					continue
				}
				if tc.name == "moved into the lookback" || !strings.Contains(name, "month=2026-0") {
					continue // scanned by id (a move or deletion candidate may be there)
				}
				data, _, err := s.log.Bucket.Get(context.Background(), name)
				if err != nil {
					t.Fatal(err)
				}
				footer := int64(binary.LittleEndian.Uint32(data[len(data)-8:])) + 8
				if limit := max(footer, min(parquetsink.TailBytes, int64(len(data)))); n > limit {
					t.Errorf("%s, left as it was, read %d B by range: more than its footer (%d B of %d)", name, n, limit, len(data))
				} else {
					footerOnly++
				}
			}
			if len(wrote) > 0 == (tc.name == "unchanged") || (footerOnly == 0 && tc.name != "moved into the lookback") {
				t.Errorf("%d partitions written, %d read by their footer alone", len(wrote), footerOnly)
			}
			t.Logf("daily run: read %d B (%d whole objects, %d ranges), wrote %d B; %d partitions read by their footer alone",
				s.daily.Reads.Bytes, s.daily.Reads.Objects, s.daily.Reads.Ranges, s.daily.Uploads.Bytes, footerOnly)
		})
	}
}

// dailyChange is an upstream change made between a backfill and a daily run, in
// the daily run's lookback (January 2026) or next to it (December 2025).
type dailyChange struct {
	name   string
	change func(h *harness)
}

// dailyChanges returns the named changes of the daily-read tests (all of them
// without names): nothing, a modified transaction, a deletion, a move out of the
// lookback, a move into it, a late addition.
func dailyChanges(t *testing.T, names ...string) []dailyChange {
	dec, jan := date(2025, 12, 1), date(2026, 1, 1)
	all := []dailyChange{
		{"unchanged", func(*harness) {}},
		{"modified", func(h *harness) {
			_, _, janTx := h.pickAccount(dec, jan)
			must(t, h.srv.SetDescription(janTx[2].ID, "corrected"))
		}},
		{"deleted", func(h *harness) {
			_, _, janTx := h.pickAccount(dec, jan)
			must(t, h.srv.DeleteTransaction(janTx[1].ID))
		}},
		{"moved out of the lookback", func(h *harness) {
			_, _, janTx := h.pickAccount(dec, jan)
			must(t, h.srv.MoveDate(janTx[3].ID, date(2025, 12, 10)))
		}},
		{"moved into the lookback", func(h *harness) {
			_, decTx, _ := h.pickAccount(dec, jan)
			must(t, h.srv.MoveDate(decTx[0].ID, date(2026, 1, 20)))
		}},
		{"added late", func(h *harness) {
			acct, _, _ := h.pickAccount(dec, jan)
			h.srv.AddTransaction(acct, date(2026, 1, 17), "-4.50", "Late")
		}},
	}
	if len(names) == 0 {
		return all
	}
	var out []dailyChange
	for _, n := range names {
		for _, c := range all {
			if c.name == n {
				out = append(out, c)
			}
		}
	}
	if len(out) != len(names) {
		t.Fatalf("dailyChanges: unknown change among %q", names)
	}
	return out
}
