package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the refresh stage (Config.Refresh): between planning and
// extraction, asking Akahu to fetch every user's data from the banks now and waiting,
// up to RefreshWait, until each account shows it did.

// Refresher is a Source that can ask Akahu to refresh a user's data (POST /refresh);
// *akahu.Client is one. Config.Refresh needs it.
type Refresher interface {
	Refresh(ctx context.Context, user akahu.Token) error
}

// userRefresh is one user's refresh while the run waits for it.
type userRefresh struct {
	u     *userRun
	asked time.Time           // wall clock just before the request, to the millisecond
	wait  map[string]*acctRun // accounts not yet refreshed, by id
	err   error               // the last failed listing, for the notes
}

// refresh asks Akahu to refresh the data of every user with an account to extract
// (active, with transactions) and waits until each such account's
// refreshed.transactions is at or after the request and newer than what discovery
// saw, polling GET /accounts per user with a growing pause (RefreshPoll doubling up
// to 4 times itself) until RefreshWait has passed. A refreshed account's listing
// replaces the one discovery saw (its snapshot shows the refreshed balance). A user
// whose request or listing Akahu refuses (401/403) is refused as in discovery; an
// account that did not refresh in time, or whose user's request failed otherwise, is
// extracted anyway, with a warning and a note in the manifest. Akahu's timestamps are
// compared with the wall clock (time.Now), not Config.Now, which tests may simulate.
// A dry run asks for nothing.
func (r *runner) refresh(ctx context.Context) {
	if !r.cfg.Refresh || r.cfg.DryRun {
		return
	}
	src := r.cfg.Source.(Refresher) // setDefaults checked it
	byUser := map[*userRun]*userRefresh{}
	var users []*userRefresh
	for _, a := range r.accounts {
		if a.status != "ok" || a.user.isRefused() {
			continue
		}
		ur := byUser[a.user]
		if ur == nil {
			ur = &userRefresh{u: a.user, wait: map[string]*acctRun{}}
			byUser[a.user] = ur
			users = append(users, ur)
		}
		ur.wait[a.acct.ID] = a
	}
	if len(users) == 0 {
		return
	}
	sort.Slice(users, func(i, j int) bool { return users[i].u.index < users[j].u.index })
	begin := time.Now()
	deadline := begin.Add(r.cfg.RefreshWait)
	total := 0
	for _, ur := range users {
		total += len(ur.wait)
	}

	// Ask.
	failed := make([]error, len(users))
	p := pool.New().WithMaxGoroutines(min(r.cfg.Workers, 8))
	for i, ur := range users {
		p.Go(func() {
			ur.asked = time.Now().Truncate(time.Millisecond)
			if err := src.Refresh(ctx, ur.u.token); err != nil {
				failed[i] = r.userError(ur.u, err)
			}
		})
	}
	p.Wait()
	if ctx.Err() != nil {
		return
	}
	var polling []*userRefresh
	late := 0 // accounts not refreshed
	for i, ur := range users {
		switch err := failed[i]; {
		case err == nil:
			polling = append(polling, ur)
		case refusal(err):
			ur.u.refuse(err)
		default:
			ids := sortedKeys(ur.wait)
			late += len(ids)
			r.log.Warn("refresh: request failed; extracting what Akahu has", "user", orUnknown(ur.u.me.ID),
				"accounts", strings.Join(ids, ","), "err", err)
			for _, id := range ids {
				addNote(ur.wait[id], fmt.Sprintf("refresh request failed (%v); extracted what Akahu had", err))
			}
		}
	}

	// Wait: poll every user with accounts still waiting, each round a longer pause,
	// and always once more at the deadline.
	pause := r.cfg.RefreshPoll
	for len(polling) > 0 {
		next := time.Now().Add(pause)
		if next.After(deadline) {
			next = deadline
		}
		if !sleepUntil(ctx, next) {
			return
		}
		p := pool.New().WithMaxGoroutines(min(r.cfg.Workers, 8))
		for _, ur := range polling {
			p.Go(func() { r.pollRefresh(ctx, ur) })
		}
		p.Wait()
		if ctx.Err() != nil {
			return
		}
		polling = slices.DeleteFunc(polling, func(ur *userRefresh) bool { return len(ur.wait) == 0 || ur.u.isRefused() })
		if !time.Now().Before(deadline) {
			break
		}
		pause = min(2*pause, 4*r.cfg.RefreshPoll)
	}

	for _, ur := range polling {
		ids := sortedKeys(ur.wait)
		late += len(ids)
		r.log.Warn("refresh: accounts not refreshed in time; extracting what Akahu has", "user", orUnknown(ur.u.me.ID),
			"accounts", strings.Join(ids, ","), "wait", r.cfg.RefreshWait.String(), "last_err", errText(ur.err))
		for _, id := range ids {
			a := ur.wait[id]
			seen := "none"
			if ts := a.acct.TransactionsRefreshed; !ts.IsZero() {
				seen = ts.UTC().Format(akahu.TimeFormat)
			}
			note := fmt.Sprintf("not refreshed within %s (refreshed.transactions %s", r.cfg.RefreshWait, seen)
			if ur.err != nil {
				note += fmt.Sprintf("; last listing failed: %v", ur.err)
			}
			addNote(a, note+"); extracted what Akahu had")
		}
	}
	r.log.Info("refresh", "accounts", total, "not_refreshed", late, "took", time.Since(begin).Round(time.Millisecond).String())
}

// pollRefresh lists the user's accounts once and settles those that refreshed.
func (r *runner) pollRefresh(ctx context.Context, ur *userRefresh) {
	accs, err := r.cfg.Source.Accounts(ctx, ur.u.token)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		err = r.userError(ur.u, err)
		if refusal(err) {
			ur.u.refuse(err)
			return
		}
		ur.err = err
		return
	}
	ur.err = nil
	for _, acc := range accs {
		a := ur.wait[acc.ID]
		if a == nil {
			continue
		}
		ts := acc.TransactionsRefreshed
		if !ts.Before(ur.asked) && ts.After(a.acct.TransactionsRefreshed) {
			a.acct = newAcctInfo(acc)
			delete(ur.wait, acc.ID)
		}
	}
}

// userError names the user in an error of one of its requests, as discovery does.
func (r *runner) userError(u *userRun, err error) error {
	return fmt.Errorf("user %d (%s): %w", u.index+1, orUnknown(u.me.ID), err)
}

// addNote appends to an account's manifest note.
func addNote(a *acctRun, note string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.note != "" {
		a.note += "; "
	}
	a.note += note
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sleepUntil waits until t or ctx is done; it reports whether ctx is still live.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
