package pipeline_test

import (
	"context"
	"errors"
	"flag"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var soakUsers = flag.Int("soak.users", 50, "users in the fault soak (4 accounts each)")

// TestFaultSoak: a backfill of ≥200 accounts against a fake that fails ~10% of
// requests at random (429 with and without Retry-After, 500/502/503, resets,
// truncated and malformed bodies, answers slower than the client's timeout) ends with
// a dataset identical to a fault-free run. A fault that outlasts the retry budget
// fails that account alone, clearly.
func TestFaultSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak skipped in -short mode")
	}
	opts := akahutest.Options{Seed: 11, Users: *soakUsers, AccountsPerUser: 4, TxPerAccountPerMonth: 8,
		From: date(2026, 1, 1), To: date(2026, 2, 28), PageSize: 10, PendingPerAccount: 1}
	clean := newHarness(t, newLocal(t), opts)
	from, to := clean.opts.From, clean.opts.To
	ref := clean.run(from, to)

	faulty := newHarness(t, newLocal(t), opts)
	faulty.accountWalks = true // the dead account's faults target its own endpoints
	client, err := akahu.New(akahu.Config{BaseURL: faulty.srv.URL, AppToken: akahu.Token(faulty.srv.AppToken()),
		HTTPClient: faulty.srv.Client(), MaxRetries: 12, BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxRetryAfter: 20 * time.Millisecond, RequestTimeout: 250 * time.Millisecond,
		MinRequestsPerSecond: 1e5}) // the random 429s are not a rate limit: do not slow down for them
	if err != nil {
		t.Fatal(err)
	}
	faulty.client = client
	faulty.srv.SetRandomSlowDelay(time.Second) // past the client's 250 ms timeout
	faulty.srv.SetRandomFaults(0.10, 42)
	faulty.srv.InjectFault(akahutest.Fault{Kind: akahutest.RateLimit, Count: 25}) // a burst up front
	m := faulty.run(from, to)
	st := faulty.srv.Stats()

	accounts, all := 0, 0
	for status, n := range m.AccountCounts {
		all += n
		if status != "skipped" {
			accounts += n
		}
	}
	if all < 200 || m.AccountCounts["failed"] != 0 || m.AccountCounts["revoked"] != 0 {
		t.Fatalf("soak covered %v accounts, want ≥ 200, all ok", m.AccountCounts)
	}
	if st.FaultsInjected() < int64(st.Requests)/20 {
		t.Fatalf("only %d faults in %d requests", st.FaultsInjected(), st.Requests)
	}
	for k := range map[akahutest.FaultKind]bool{akahutest.RateLimit: true, akahutest.ServerError: true, akahutest.Truncate: true,
		akahutest.Malformed: true, akahutest.Reset: true, akahutest.Slow: true} {
		if st.Faults[k] == 0 {
			t.Errorf("no %s fault was injected", k)
		}
	}
	if m.API.Retries == 0 || m.API.RateLimited == 0 {
		t.Errorf("manifest API figures %+v do not count the retries and 429s", m.API)
	}
	want, got := contentOf(t, clean), contentOf(t, faulty)
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("faulty run's dataset differs from the clean one: %d vs %d rows", len(got), len(want))
	}
	if m.Counts != ref.Counts {
		t.Errorf("counts %+v, clean run %+v", m.Counts, ref.Counts)
	}
	t.Logf("soak: %d accounts (%d with transactions), %d requests, %d faults injected %v, %d retries, %d rows identical to the clean run",
		all, accounts, st.Requests, st.FaultsInjected(), st.Faults, m.API.Retries, len(got))

	// A fault that outlasts the retry budget fails that account alone.
	var victim string
	w := akahu.LocalDates(from, to, auckland)
	for _, u := range faulty.srv.Users() {
		for _, id := range faulty.srv.AccountIDs(u.ID) {
			if victim == "" && len(faulty.srv.Settled(id, w.Start, w.End)) > 0 {
				victim = id
			}
		}
	}
	faulty.srv.SetRandomFaults(0, 0)
	faulty.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 1000, PathContains: "/accounts/" + victim + "/transactions?"})
	before := contentOf(t, faulty)
	m2, err := pipeline.Run(context.Background(), faulty.config(from, to))
	faulty.srv.ClearFaults()
	if !errors.Is(err, pipeline.ErrPartial) || m2 == nil {
		t.Fatalf("run with a dead account: err %v", err)
	}
	if len(m2.Failures) != 1 || !strings.Contains(m2.Failures[0], victim) || !strings.Contains(m2.Failures[0], "503") {
		t.Errorf("failures %q, want one naming %s and the 503", m2.Failures, victim)
	}
	for _, a := range m2.Accounts {
		if a.AccountID != victim && a.Status == "failed" {
			t.Errorf("account %s failed too: %s", a.AccountID, a.Error)
		}
	}
	if after := contentOf(t, faulty); !reflect.DeepEqual(before, after) || m2.Counts.Deleted != 0 {
		t.Errorf("a failed account changed the dataset (deleted %d)", m2.Counts.Deleted)
	}
}

// contentOf returns the dataset's transactions as sorted comparable rows (values,
// not lineage).
func contentOf(t *testing.T, h *harness) []txRow {
	t.Helper()
	rows := readRows(t, h.b, "transactions/")
	for i := range rows {
		rows[i].RunID = ""
		rows[i].Object = rows[i].Object[strings.Index(rows[i].Object, "month="):]
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	byID(t, rows)
	return rows
}
