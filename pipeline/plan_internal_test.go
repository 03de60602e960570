package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// TestPlanKeepsNoAccountJSON: once the plan has chosen the shard's accounts, the run
// keeps no account's JSON as served (with the HTTP client, each user's whole
// /accounts body): its accounts-snapshot rows are built then, per bucket. The
// snapshot written at the end still has every account of a user that stayed
// served, none of a user refused during the run, and an account whose JSON cannot
// become a snapshot row fails at the end, as before, after its transactions were
// extracted.
func TestPlanKeepsNoAccountJSON(t *testing.T) {
	loc := mustZone(t)
	r := &runner{cfg: Config{Workers: 1, Shards: 1}, loc: loc, b: bucket.NewMemory(), mem: memory.DefaultAllocator,
		txSch: schema.Transactions(), lease: &lease{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		started: time.Date(2026, 3, 1, 9, 0, 0, 0, loc), ds: Dataset{Buckets: 4, BucketBy: bucketByUser}}
	defer r.releaseAccountRows()
	account := func(id string, attrs ...string) akahu.Account {
		raw := fmt.Sprintf(`{"_id":%q,"_authorisation":"auth_1","connection":{"_id":"conn_1","name":"Bank"},"name":"Acct %s",`+
			`"status":"ACTIVE","type":"CHECKING","attributes":%s,"balance":{"currency":"NZD","current":1.5}}`,
			id, id, mustJSON(t, attrs))
		return akahu.Account{ID: id, Status: "ACTIVE", Currency: "NZD", Attributes: attrs, Raw: json.RawMessage(raw)}
	}
	bad := akahu.Account{ID: "acc_bad", Currency: "NZD", Attributes: []string{"TRANSACTIONS"}, Raw: json.RawMessage(`{"_id":5}`)}
	served := &userRun{index: 0, me: akahu.Me{ID: "user_a"}, status: "ok",
		accounts: []akahu.Account{account("acc_a1", "TRANSACTIONS"), account("acc_a2"), bad}}
	refused := &userRun{index: 1, me: akahu.Me{ID: "user_b"}, status: "ok",
		accounts: []akahu.Account{account("acc_b1", "TRANSACTIONS")}}
	r.users = []*userRun{served, refused}
	if err := r.selectAccounts(); err != nil {
		t.Fatal(err)
	}
	for _, u := range r.users {
		for _, a := range u.accounts {
			if a.Raw != nil {
				t.Errorf("user %s: account %s keeps its JSON after the plan", u.me.ID, a.ID)
			}
		}
	}
	for _, a := range r.accounts {
		if a.acct.Raw != nil {
			t.Errorf("account %s keeps its JSON after the plan", a.acct.ID)
		}
		if a.failed() {
			t.Errorf("account %s failed at plan time: %v (its transactions are extracted first)", a.acct.ID, a.err)
		}
	}
	refused.refuse(fmt.Errorf("user 2: %w", akahu.ErrAccessRevoked))
	if err := r.writeAccounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, bk := range []int{bucketOf("user_a", 4), bucketOf("user_b", 4)} {
		recs, _, err := r.readObject(context.Background(), accountsObject(dayOfTime(r.started, loc), bk), []string{"account_id"})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			col := rec.Column(0).(*array.String)
			for i := range col.Len() {
				got = append(got, col.Value(i))
			}
			rec.Release()
		}
	}
	slices.Sort(got)
	if want := []string{"acc_a1", "acc_a2"}; !slices.Equal(got, want) {
		t.Errorf("accounts snapshot rows %v, want %v", got, want)
	}
	for _, a := range r.accounts {
		if want := a.acct.ID == "acc_bad"; a.failed() != want {
			t.Errorf("account %s failed %v (%v), want %v", a.acct.ID, a.failed(), a.err, want)
		} else if want && !strings.Contains(a.err.Error(), "acc_bad") {
			t.Errorf("account acc_bad failed with %v: want it named", a.err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.([]string); ok && s == nil {
		v = []string{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
