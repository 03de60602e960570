// Package sdk_test runs Akahu's official JavaScript SDK (npm "akahu", pinned
// to 2.5.1 in package.json) against the fake Akahu API in
// sources/akahu/akahutest, as an independent second client: if the fake
// drifted from what the real SDK sends or expects (paths, headers, query
// encoding of the opaque cursor, response envelopes, error statuses), this
// test fails even when our own client in sources/akahu has drifted the same
// way.
//
// It needs node on PATH and `npm ci` run in this directory (see run.sh);
// without them it skips, or fails if AKAHU_SDK_CHECK=require.
package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// The window the SDK walks. start is exclusive and end inclusive; both are
// local midnights in Pacific/Auckland written with their offset, as an
// Akahu user would, so the '+' of the offset must survive the SDK's query
// encoding (a raw '+' would decode as a space and answer 400). start is the
// instant at which transactions posted on 1 September are dated, so those
// must be excluded; end is the instant of 1 November's postings, which must
// be included.
const (
	windowStart = "2026-09-01T00:00:00+12:00" // NZST
	windowEnd   = "2026-11-01T00:00:00+13:00" // NZDT
)

type expectAccount struct {
	ID              string            `json:"id"`
	Type            string            `json:"type"`
	Status          string            `json:"status"`
	HasTransactions bool              `json:"has_transactions"`
	Settled         []string          `json:"settled"`          // ids in served order, start < date <= end
	SettledSum      string            `json:"settled_sum"`      // exact decimal sum of their amounts
	SettledItems    []json.RawMessage `json:"settled_items"`    // the items exactly as served; only for the first account with transactions
	Pending         []json.RawMessage `json:"pending"`          // exactly as served
	TotalSettled    int               `json:"total_settled"`    // whole history
	BoundaryStartN  int               `json:"boundary_start_n"` // transactions dated exactly at start (must be excluded)
	BoundaryEndN    int               `json:"boundary_end_n"`   // transactions dated exactly at end (must be included)
}

type expectUser struct {
	ID       string          `json:"id"`
	Email    string          `json:"email"`
	Accounts []expectAccount `json:"accounts"`
	Settled  []string        `json:"settled"` // GET /transactions order over every account
}

type expectation struct {
	Start          string       `json:"start"`
	End            string       `json:"end"`
	PageSize       int          `json:"page_size"`
	EmptyPageEvery int          `json:"empty_page_every"`
	Users          []expectUser `json:"users"` // same order as FAKE_AKAHU_USER_TOKENS
}

// skip skips, or fails when AKAHU_SDK_CHECK=require (set by run.sh and CI),
// so that a missing install cannot silently turn the check off where it must run.
func skip(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("AKAHU_SDK_CHECK") == "require" {
		t.Fatal(msg + " (AKAHU_SDK_CHECK=require)")
	}
	t.Skip(msg)
}

func TestOfficialSDKAgainstFake(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skip(t, "node is not on PATH: skipping the official Akahu SDK check (install node and run tests/sdk/run.sh)")
	}
	// go test runs in the package directory, i.e. the directory of this file.
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "akahu", "package.json")); err != nil {
		skip(t, "tests/sdk/node_modules/akahu is missing: run `cd tests/sdk && npm ci` (or tests/sdk/run.sh) to enable the official Akahu SDK check")
	}

	opts := akahutest.Options{
		Seed:            7,
		Users:           3, // two live users, the third is revoked below
		AccountsPerUser: 3, // CHECKING, SAVINGS (INACTIVE), KIWISAVER (no TRANSACTIONS)
		From:            akahutest.DefaultTo.AddDate(0, -4, 0),
		To:              akahutest.DefaultTo,
		PageSize:        25, // many pages per walk
		EmptyPageEvery:  3,  // and several empty ones with a non-null next
	}
	s := akahutest.NewServer(opts)
	defer s.Close()

	start, ok1 := akahutest.ParseTime(windowStart)
	end, ok2 := akahutest.ParseTime(windowEnd)
	if !ok1 || !ok2 {
		t.Fatal("window does not parse")
	}
	users := s.Users()
	live, revoked := users[:2], users[2]
	s.RevokeUser(revoked.ID)

	exp := expectation{Start: windowStart, End: windowEnd, PageSize: s.Options().PageSize, EmptyPageEvery: s.Options().EmptyPageEvery}
	var tokens []string
	boundaryStart, boundaryEnd, withItems := 0, 0, false
	for _, u := range live {
		tokens = append(tokens, u.Token)
		eu := expectUser{ID: u.ID, Email: u.Email}
		for _, tx := range s.SettledUser(u.ID, start, end) {
			eu.Settled = append(eu.Settled, tx.ID)
		}
		for _, id := range s.AccountIDs(u.ID) {
			info, ok := s.Account(id)
			if !ok {
				t.Fatalf("AccountIDs lists %s but Account does not know it", id)
			}
			ea := expectAccount{ID: id, Type: info.Type, Status: info.Status, HasTransactions: info.HasTransactions,
				Settled: []string{}, Pending: []json.RawMessage{}, TotalSettled: s.TotalSettled(id),
				SettledSum: s.SumSettled(id, start, end)}
			txs := s.Settled(id, start, end)
			for _, tx := range txs {
				ea.Settled = append(ea.Settled, tx.ID)
			}
			if info.HasTransactions && !withItems && len(txs) > 0 {
				withItems = true
				for _, tx := range txs {
					ea.SettledItems = append(ea.SettledItems, json.RawMessage(tx.JSON))
				}
			}
			// The ground truth over the whole history, to count the
			// transactions dated exactly at the window's edges.
			for _, tx := range s.Settled(id, time.Time{}, time.Time{}) {
				if tx.Date.Equal(start) {
					ea.BoundaryStartN++
				}
				if tx.Date.Equal(end) {
					ea.BoundaryEndN++
				}
			}
			boundaryStart += ea.BoundaryStartN
			boundaryEnd += ea.BoundaryEndN
			for _, p := range s.Pending(id) {
				ea.Pending = append(ea.Pending, json.RawMessage(p))
			}
			eu.Accounts = append(eu.Accounts, ea)
		}
		exp.Users = append(exp.Users, eu)
	}
	// The window's edges only prove exclusive-start / inclusive-end if some
	// transaction sits exactly on them.
	if boundaryStart == 0 || boundaryEnd == 0 {
		t.Fatalf("population has %d transactions at start and %d at end: pick another seed or window so both edges are exercised", boundaryStart, boundaryEnd)
	}
	if !withItems {
		t.Fatal("no account with transactions in the window")
	}

	expPath := filepath.Join(t.TempDir(), "expect.json")
	b, err := json.Marshal(exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(expPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", filepath.Join(dir, "check.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"FAKE_AKAHU_URL="+s.URL,
		"FAKE_AKAHU_APP_TOKEN="+s.AppToken(),
		"FAKE_AKAHU_USER_TOKENS="+strings.Join(tokens, ","),
		"FAKE_AKAHU_REVOKED_TOKENS="+revoked.Token,
		"FAKE_AKAHU_EXPECT="+expPath,
		"NO_COLOR=1",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err = cmd.Run()
	t.Logf("node --test check.mjs took %v", time.Since(began).Round(time.Millisecond))
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("official Akahu SDK check failed (%v):\n%s", err, out.String())
		}
		t.Fatalf("running node: %v\n%s", err, out.String())
	}
	if testing.Verbose() {
		t.Logf("node output:\n%s", out.String())
	}
	st := s.Stats()
	t.Logf("fake served %d requests, %d pages (%d empty), %d settled items; by status %v",
		st.Requests, st.Pages, st.EmptyPages, st.Items, st.ByStatus)
	if st.EmptyPages == 0 {
		t.Error("the SDK never walked through an empty page with a non-null next")
	}
}
