package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// syncBuffer is a log destination safe for the run's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// refusingRefresh answers POST /refresh of one token with err, without a request.
type refusingRefresh struct {
	*akahu.Client
	token akahu.Token
	err   error
}

func (s refusingRefresh) Refresh(ctx context.Context, t akahu.Token) error {
	if t == s.token {
		return s.err
	}
	return s.Client.Refresh(ctx, t)
}

// TestRefresh runs with Config.Refresh against the fake: accounts that refresh are
// waited for and their new data extracted; an account that never refreshes is given
// up on at RefreshWait and a user whose refresh fails (5xx) is extracted anyway, both
// with a warning and a manifest note; a user Akahu refuses at the refresh is handled
// as a refusal at discovery; a dry run asks for nothing.
func TestRefresh(t *testing.T) {
	t.Parallel()
	const wait = 400 * time.Millisecond
	tests := []struct {
		name string
		// stall and fail name, by index into the active accounts with transactions
		// (stall) and into the users (fail), what the fake does not refresh.
		stall, fail []int
		refuse      bool // Akahu refuses user 0's refresh with 401
		dryRun      bool
	}{
		{name: "refreshed"},
		{name: "slow", stall: []int{0}},
		{name: "failed", fail: []int{0}},
		{name: "refused", refuse: true},
		{name: "dry run", dryRun: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newLocal(t), smallPopulation())
			h.srv.SetRefreshDelay(100 * time.Millisecond)
			users := h.srv.Users()
			var active []string // active accounts with transactions, users' order
			owner := map[string]string{}
			for _, u := range users {
				for _, id := range h.srv.AccountIDs(u.ID) {
					if info, _ := h.srv.Account(id); info.HasTransactions && info.Status == "ACTIVE" {
						active = append(active, id)
						owner[id] = u.ID
					}
				}
			}
			stalled, failed := map[string]bool{}, map[string]bool{}
			for _, i := range tt.stall {
				h.srv.StallRefresh(active[i])
				stalled[active[i]] = true
			}
			for _, i := range tt.fail {
				h.srv.FailRefresh(users[i].ID, http.StatusServiceUnavailable)
				failed[users[i].ID] = true
			}
			// What the banks had: a transaction per account that appears with its refresh.
			var mu sync.Mutex
			added := map[string]string{} // account -> new transaction id
			h.srv.OnRefreshed(func(acct string) {
				if info, _ := h.srv.Account(acct); !info.HasTransactions {
					return
				}
				id := h.srv.AddTransaction(acct, h.opts.To, "-12.34", "fetched by the refresh")
				mu.Lock()
				added[acct] = id
				mu.Unlock()
			})

			var logs syncBuffer
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Refresh, cfg.RefreshWait, cfg.RefreshPoll, cfg.DryRun = true, wait, 10*time.Millisecond, tt.dryRun
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if tt.refuse {
				cfg.Source = refusingRefresh{Client: h.client, token: h.tokens[0],
					err: fmt.Errorf("scripted: %w", akahu.ErrAccessRevoked)}
			}
			began := time.Now()
			m, err := pipeline.Run(context.Background(), cfg)
			took := time.Since(began)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, logs.String())
			}
			refreshes := h.srv.Stats().ByKind["refresh"]
			if tt.dryRun {
				if refreshes != 0 {
					t.Errorf("a dry run sent %d POST /refresh", refreshes)
				}
				return
			}
			if want := int64(len(users)); tt.refuse && refreshes != want-1 || !tt.refuse && refreshes < want {
				t.Errorf("%d POST /refresh for %d users", refreshes, want)
			}
			if len(stalled) > 0 && took < wait {
				t.Errorf("run took %s: gave up before the refresh wait of %s", took, wait)
			}
			// Each account with transactions: refreshed and its new row extracted, or
			// a note and a warning saying why not, and its data extracted all the same.
			rows := byID(t, readRows(t, h.b, "transactions/"))
			perAccount := map[string]int{}
			for _, r := range rows {
				perAccount[r.Account]++
			}
			// The manifest lists the accounts that are not ok or carry a note.
			status := map[string]pipeline.AccountStatus{}
			for _, a := range m.Accounts {
				status[a.AccountID] = a
			}
			for _, acct := range active {
				st, listed := status[acct]
				if !listed {
					st.Status = "ok"
				}
				refused := tt.refuse && owner[acct] == users[0].ID
				var wantNote string
				switch {
				case refused:
					if st.Status != "revoked" {
						t.Errorf("%s of the refused user: status %q, want revoked", acct, st.Status)
					}
					continue
				case stalled[acct]:
					wantNote = "not refreshed within " + wait.String()
				case failed[owner[acct]]:
					wantNote = "refresh request failed"
				}
				if st.Status != "ok" || perAccount[acct] == 0 {
					t.Errorf("%s: status %q, %d rows: want ok and extracted", acct, st.Status, perAccount[acct])
				}
				mu.Lock()
				newID, refreshed := added[acct]
				mu.Unlock()
				if wantNote == "" {
					if st.Note != "" {
						t.Errorf("%s refreshed, but noted %q", acct, st.Note)
					}
					if !refreshed {
						t.Errorf("%s: the fake never completed its refresh", acct)
					} else if _, ok := rows[newID]; !ok {
						t.Errorf("%s: the transaction its refresh fetched (%s) was not extracted: the run did not wait", acct, newID)
					}
					continue
				}
				if !strings.Contains(st.Note, wantNote) {
					t.Errorf("%s: note %q, want %q", acct, st.Note, wantNote)
				}
				if refreshed {
					t.Errorf("%s: refreshed although the fake was told not to", acct)
				}
				if !strings.Contains(logs.String(), acct) || !strings.Contains(logs.String(), "level=WARN msg=\"refresh:") {
					t.Errorf("%s: no warning logged:\n%s", acct, logs.String())
				}
			}
			if tt.refuse {
				var us pipeline.UserStatus
				for _, u := range m.Users {
					if u.UserID == users[0].ID {
						us = u
					}
				}
				if us.Status != "revoked" || !strings.Contains(us.Error, "scripted") {
					t.Errorf("refused user: %+v, want revoked with the refresh's error", us)
				}
				if n := rowsPerUser(t, h.b)[users[0].ID]; n != 0 {
					t.Errorf("refused user: %d rows extracted", n)
				}
			}
			// Polls are RefreshPoll apart or more: at most one per pause and one at the end.
			if polls, limit := h.srv.Stats().ByKind["accounts"]-int64(len(users)), int64(len(users))*int64(took/(10*time.Millisecond)+2); polls > limit {
				t.Errorf("%d listings while waiting, more than one per user and poll interval (%d)", polls, limit)
			}
		})
	}
}

// TestRefreshNeedsRefresher checks that a Source that cannot refresh is a
// configuration error, not a run that silently skips the refresh.
func TestRefreshNeedsRefresher(t *testing.T) {
	t.Parallel()
	// Embedding the interface hides the client's Refresh.
	plain := struct{ pipeline.Source }{newHarness(t, newLocal(t), smallPopulation()).client}
	_, err := pipeline.Run(context.Background(), pipeline.Config{Out: newLocal(t), Source: plain,
		Users: []akahu.Token{"user_token_x"}, Refresh: true})
	if !errors.Is(err, pipeline.ErrConfig) {
		t.Fatalf("Run: %v, want ErrConfig", err)
	}
}
