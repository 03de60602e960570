package akahutest

import (
	"net/http"
	"slices"
	"time"
)

// This file holds POST /refresh and /refresh/{id}: Akahu fetching a user's data from
// the banks in the background, which shows as a newer "refreshed" timestamp on the
// refreshed accounts some time after the request.

// refreshState is an account's refresh, guarded by Fake.mu.
type refreshState struct {
	stamps  []int // offsets in account.json of the quoted refreshed.* timestamps
	txStamp int64 // refreshed.transactions (or balance, without TRANSACTIONS) as served, UTC ms
	due     int64 // when an asked-for refresh completes, wall clock UTC ms; 0: none asked
	served  bool  // a refresh completed: the stamps in json are replaced by txStamp
	stalled bool  // a refresh never completes (StallRefresh)
}

// SetRefreshDelay sets how long after POST /refresh (or /refresh/{id}) the refreshed
// accounts show it: their refreshed.balance, .meta and .transactions become the time
// the refresh completed (wall clock, and later than the value before). The change is
// visible from the first request made after the delay. 0 (the default of
// Options.RefreshDelay) completes a refresh by the next request.
func (f *Fake) SetRefreshDelay(d time.Duration) {
	f.mu.Lock()
	f.refreshDelay = max(d, 0)
	f.mu.Unlock()
}

// StallRefresh makes the refreshes of these accounts never complete: POST /refresh is
// acknowledged but their refreshed timestamps stay, as when a bank does not answer
// Akahu.
func (f *Fake) StallRefresh(accountIDs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range accountIDs {
		if a := f.byAcctID[id]; a != nil {
			a.refresh.stalled = true
		}
	}
}

// FailRefresh makes every POST /refresh and /refresh/{id} of the user answer status
// (a 5xx; below 500 takes 500) with an error body; 0 restores acknowledgements.
func (f *Fake) FailRefresh(userID string, status int) {
	u := f.byUserID[userID]
	if u == nil {
		return
	}
	if status != 0 && status < 500 {
		status = http.StatusInternalServerError
	}
	f.mu.Lock()
	u.refreshFail = status
	f.mu.Unlock()
}

// OnRefreshed sets fn to be called once for each account whose refresh completes,
// with its id, before the account shows the new timestamps: a test adds there the
// transactions the bank had (AddTransaction), so they appear with the refresh. fn
// runs on a request's goroutine and may call the Fake's methods.
func (f *Fake) OnRefreshed(fn func(accountID string)) {
	f.mu.Lock()
	f.refreshHook = fn
	f.mu.Unlock()
}

// askRefresh answers POST /refresh (acc nil: all of u's accounts) or /refresh/{id}.
func (f *Fake) askRefresh(u *user, acc *account) response {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.refreshFail != 0 {
		return errorResponse(u.refreshFail, http.StatusText(u.refreshFail))
	}
	accs := u.accounts
	if acc != nil {
		accs = []*account{acc}
	}
	f.refreshAsked.Store(true)
	due := time.Now().Add(f.refreshDelay).UnixMilli()
	for _, a := range accs {
		if a.refresh.due == 0 { // a refresh under way keeps its time
			a.refresh.due = due
		}
	}
	return response{status: http.StatusOK, body: []byte(`{"success":true}`), page: -1}
}

// settleRefreshes completes u's refreshes that are due: the OnRefreshed hook runs
// first, without the lock, then the accounts show the new timestamps.
func (f *Fake) settleRefreshes(u *user) {
	if !f.refreshAsked.Load() {
		return // no refresh asked yet: no lock for the requests of tests that never do
	}
	now := time.Now().UnixMilli()
	type done struct {
		a  *account
		at int64
	}
	var dues []done
	f.mu.Lock()
	for _, a := range u.accounts {
		if r := &a.refresh; r.due != 0 && r.due <= now && !r.stalled {
			dues = append(dues, done{a, r.due})
			r.due = 0 // claimed: another request neither completes it again nor sees it done yet
		}
	}
	hook := f.refreshHook
	f.mu.Unlock()
	if len(dues) == 0 {
		return
	}
	if hook != nil {
		for _, d := range dues {
			hook(d.a.id)
		}
	}
	f.mu.Lock()
	for _, d := range dues {
		r := &d.a.refresh
		r.txStamp, r.served = max(d.at, r.txStamp+1000), true
	}
	f.mu.Unlock()
}

// accountJSON is the account object as served now. Caller holds f.mu (read).
func (f *Fake) accountJSON(a *account) []byte {
	if !a.refresh.served {
		return a.json
	}
	b := slices.Clone(a.json)
	ts := appendQuotedTime(nil, a.refresh.txStamp)
	for _, off := range a.refresh.stamps {
		if off+len(ts) <= len(b) && b[off] == '"' && b[off+len(ts)-1] == '"' {
			copy(b[off:], ts)
		}
	}
	return b
}
