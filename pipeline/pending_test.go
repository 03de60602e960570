package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// pendingRows counts the rows of each account in the pending snapshots.
func pendingRows(t *testing.T, b bucket.Bucket) map[string]int {
	t.Helper()
	ctx := context.Background()
	list, err := b.List(ctx, "pending/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range list {
		data, _, err := b.Get(ctx, a.Name)
		if err != nil {
			t.Fatal(err)
		}
		_, recs, err := parquetsink.Read(bytes.NewReader(data), int64(len(data)), memory.DefaultAllocator, parquetsink.Columns("account_id"))
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		for _, rec := range recs {
			ids := rec.Column(0).(*array.String)
			for i := 0; i < ids.Len(); i++ {
				out[ids.Value(i)]++
			}
			rec.Release()
		}
	}
	return out
}

// accountsWithPending returns accounts of the fake that have pending transactions.
func accountsWithPending(h *harness) []string {
	var out []string
	for _, u := range h.srv.Users() {
		for _, id := range h.srv.AccountIDs(u.ID) {
			if len(h.srv.Pending(id)) > 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

func accountStatus(m *pipeline.Manifest, id string) pipeline.AccountStatus {
	for _, as := range m.Accounts {
		if as.AccountID == id {
			return as
		}
	}
	return pipeline.AccountStatus{}
}

// TestPendingListEmpties: an account whose pending request succeeds with no items
// loses its pending rows (they settled: they are in transactions/ now, and must not
// show twice); an account whose pending request fails keeps its rows, and the manifest
// says so.
func TestPendingListEmpties(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	h.accountWalks = true // the faults target one account's endpoints
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	accts := accountsWithPending(h)
	if len(accts) < 2 {
		t.Fatalf("the fake has %d accounts with pending transactions, the test needs 2", len(accts))
	}
	emptied, failing := accts[0], accts[1]
	before := pendingRows(t, b)
	if before[emptied] == 0 || before[failing] == 0 {
		t.Fatalf("pending snapshot %v lacks the accounts' rows", before)
	}

	// Every pending transaction of one account settles; the other account's pending
	// list changes too, but its request fails.
	for {
		if _, err := h.srv.SettlePending(emptied); errors.Is(err, akahutest.ErrNoPending) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.srv.SettlePending(failing); err != nil {
		t.Fatal(err)
	}
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100000,
		PathContains: "/accounts/" + failing + "/transactions/pending"})
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if !errors.Is(err, pipeline.ErrPartial) || m == nil {
		t.Fatalf("run with a failing pending request: err %v, manifest %v", err, m != nil)
	}
	after := pendingRows(t, b)
	if n := after[emptied]; n != 0 {
		t.Errorf("account %s has no pending transactions at Akahu, but %d pending rows stay in the snapshot", emptied, n)
	}
	if after[failing] != before[failing] {
		t.Errorf("account %s: pending request failed, %d rows before, %d after; want them kept", failing, before[failing], after[failing])
	}
	// The manifest lists the accounts that are not plainly ok: one whose pending list
	// was fetched (even empty) is not among them.
	if got := accountStatus(m, emptied); got.AccountID != "" {
		t.Errorf("account %s listed in the manifest as %+v, want it counted ok with its pending list fetched", emptied, got)
	}
	if got := accountStatus(m, failing).Pending; got != "kept (request failed)" {
		t.Errorf("account %s pending status %q, want kept (request failed)", failing, got)
	}
	var named bool
	for _, f := range m.Failures {
		named = named || (strings.Contains(f, failing) && strings.Contains(f, "pending"))
	}
	if !named {
		t.Errorf("failures %q do not name the pending request of %s", m.Failures, failing)
	}

	// Once the request works again, the account's pending rows are replaced.
	h.srv.ClearFaults()
	h.run(from, to)
	after = pendingRows(t, b)
	if want := len(h.srv.Pending(failing)); after[failing] != want {
		t.Errorf("account %s: %d pending rows, Akahu has %d", failing, after[failing], want)
	}
	if after[emptied] != 0 {
		t.Errorf("account %s: %d pending rows came back", emptied, after[emptied])
	}
}
