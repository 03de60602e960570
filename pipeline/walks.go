package pipeline

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
)

// This file holds how planned windows become cursor walks: the requests of a run
// follow the pages of data, not the number of months.
//
// A window is still the unit of merging: one account over one month partition, whose
// rows the merge replaces. A walk is the unit of extraction: one cursor walk over a
// range of consecutive months, either of one account (GET
// /accounts/{id}/transactions) or of every account of a user at once (GET
// /transactions) when all of them are extracted over the same months. A quiet account
// read over two years costs one request instead of 24; a user's quiet accounts cost
// one request together.

// walk is one cursor walk and the windows it fills.
type walk struct {
	user *userRun
	// acct is the walk's account; nil for a walk over every account of the user.
	acct    *acctRun
	span    span      // the union of the windows' spans: consecutive, no gap
	windows []*window // by account, then month
	// byAcct finds a row's window: account id, then the windows in month order.
	byAcct map[string][]*window
	bucket int  // the bucket of the walk's first window: walks are run bucket by bucket
	sub    bool // a part of a split walk (never split again)
	// asked is zero for a walk whose requests ask for span. A dense walk that went
	// on as its newest sub-walk (keepNewest) asks for its whole original range,
	// asked, and stops once its rows pass below span: its rows outside span belong to
	// the other sub-walks and are dropped.
	asked span
}

// Dense walks: a first page of at least denseMinPage items whose dates say the walk
// has denseSplitPages pages or more is split into sub-walks over runs of whole
// months of about denseTargetPages pages each (by the first page's density), which
// run at once to hide latency. What a sub-walk costs over its pages of data, as
// measured on the fake (two-year backfills of accounts of 80 to 1,000 transactions a
// month): its last page, partly filled, half a page on average, so longer sub-walks
// cost less; but a walk of more than six pages also meets an empty page with a
// cursor (the fake answers one at every seventh page). Five pages cost the least:
// 1.107× the pages of data at 150 transactions a month, against 1.12 for runs of
// at most 5 or 6 pages filled newest first and 1.20 before (a first page thrown
// away, 7-8 pages a sub-walk).
const (
	denseMinPage     = 50
	denseSplitPages  = 10
	denseTargetPages = 5
)

// splitDense estimates the walk's pages from its first page (items newest first) and
// returns sub-walks over runs of whole months, oldest first, when it has
// denseSplitPages or more, else nil. The newest sub-walk is the one the walk itself
// goes on with (keepNewest).
func (r *runner) splitDense(wk *walk, items []json.RawMessage) []*walk {
	var first, last struct {
		Date time.Time `json:"date"`
	}
	if json.Unmarshal(items[0], &first) != nil || json.Unmarshal(items[len(items)-1], &last) != nil || first.Date.IsZero() || last.Date.IsZero() {
		return nil
	}
	// Nothing in the walk is newer than its first item: the walk's rows lie in
	// [span.from, top], and the first page covers [oldest, top].
	top, oldest := min(dayOfTime(first.Date, r.loc), wk.span.to), dayOfTime(last.Date, r.loc)
	if top < wk.span.from || oldest > top {
		return nil
	}
	pagesPerDay := 1 / float64(top-oldest+1)
	if pagesPerDay*float64(top-wk.span.from+1) < denseSplitPages {
		return nil
	}
	// Runs of months, newest first, of about equal pages: as many runs as the target
	// needs, each month in the run its middle falls in.
	var runs []struct{ from, to month }
	total := pagesPerDay * float64(top-wk.span.from+1)
	per := total / math.Ceil(total/denseTargetPages)
	est, run := 0.0, -1
	for m := wk.span.to.month(); !m.before(wk.span.from.month()); m = m.add(-1) {
		days := max(0, float64(min(m.last(), top)-max(m.first(), wk.span.from))+1)
		pages := days * pagesPerDay
		if i := int((est + pages/2) / per); len(runs) == 0 || i > run {
			runs = append(runs, struct{ from, to month }{m, m})
			run = i
		}
		runs[len(runs)-1].from = m
		est += pages
	}
	var subs []*walk
	for i := len(runs) - 1; i >= 0; i-- {
		lo, hi := runs[i].from, runs[i].to
		sub := &walk{user: wk.user, acct: wk.acct, byAcct: map[string][]*window{}, sub: true, bucket: wk.bucket}
		in := func(w *window) bool { return !w.part.month.before(lo) && !hi.before(w.part.month) }
		for acct, ws := range wk.byAcct {
			for _, w := range ws {
				if in(w) {
					sub.byAcct[acct] = append(sub.byAcct[acct], w)
				}
			}
		}
		for _, w := range wk.windows {
			if in(w) {
				sub.windows = append(sub.windows, w)
			}
		}
		if len(sub.windows) == 0 {
			continue
		}
		sub.span = span{sub.windows[0].span.from, sub.windows[0].span.to}
		for _, w := range sub.windows {
			sub.span.from, sub.span.to = min(sub.span.from, w.span.from), max(sub.span.to, w.span.to)
		}
		subs = append(subs, sub)
	}
	return subs
}

// keepNewest makes the walk its newest sub-walk: it keeps its cursor (and the pages
// it has read) and the windows of newest, and asks for its whole range still.
func (wk *walk) keepNewest(newest *walk) {
	wk.asked = wk.span
	wk.windows, wk.byAcct, wk.span, wk.sub = newest.windows, newest.byAcct, newest.span, true
}

// cut reports whether the walk reads past its windows: it went on as its newest
// sub-walk, and its rows older than span are another sub-walk's.
func (wk *walk) cut() bool { return wk.asked != (span{}) && wk.asked != wk.span }

// request is the range the walk's requests ask for.
func (wk *walk) request() span {
	if wk.asked != (span{}) {
		return wk.asked
	}
	return wk.span
}

// windowFor returns the window of the walk that holds a row of account acct dated d.
func (wk *walk) windowFor(acct string, d day) *window {
	for _, w := range wk.byAcct[acct] {
		if w.span.contains(d) {
			return w
		}
	}
	return nil
}

// accounts returns the accounts of the walk.
func (wk *walk) accounts() []*acctRun {
	if wk.acct != nil {
		return []*acctRun{wk.acct}
	}
	var out []*acctRun
	for _, w := range wk.windows {
		if len(out) == 0 || out[len(out)-1] != w.acct {
			out = append(out, w.acct)
		}
	}
	return out
}

// planWalks groups windows into walks. Each account's windows are cut into runs of
// consecutive spans; with perUser, a user whose accounts with transactions are all
// in the run with identical runs gets one walk per run over all of them. Walks are
// ordered by bucket, so the partitions of one bucket complete together, then by
// user and account.
func (r *runner) planWalks(windows []*window, perUser bool) []*walk {
	byAcct := map[*acctRun][]*window{}
	var accts []*acctRun
	for _, w := range windows {
		if byAcct[w.acct] == nil {
			accts = append(accts, w.acct)
		}
		byAcct[w.acct] = append(byAcct[w.acct], w)
	}
	runsOf := map[*acctRun][][]*window{}
	for _, a := range accts {
		ws := byAcct[a]
		slices.SortFunc(ws, func(x, y *window) int { return int(x.span.from - y.span.from) })
		var runs [][]*window
		for i, w := range ws {
			if i == 0 || ws[i-1].span.to+1 != w.span.from {
				runs = append(runs, nil)
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], w)
		}
		runsOf[a] = runs
	}

	var walks []*walk
	done := map[*acctRun]bool{}
	if perUser {
		for _, u := range r.userAccounts(accts) {
			if len(u) < 2 || !sameRuns(runsOf, u) {
				continue
			}
			for i := range runsOf[u[0]] {
				wk := &walk{user: u[0].user, byAcct: map[string][]*window{}}
				for _, a := range u {
					run := runsOf[a][i]
					wk.windows = append(wk.windows, run...)
					wk.byAcct[a.acct.ID] = run
				}
				first := runsOf[u[0]][i]
				wk.span = span{first[0].span.from, first[len(first)-1].span.to}
				wk.bucket = first[0].part.bucket
				walks = append(walks, wk)
			}
			for _, a := range u {
				done[a] = true
			}
		}
	}
	for _, a := range accts {
		if done[a] {
			continue
		}
		for _, run := range runsOf[a] {
			walks = append(walks, &walk{user: a.user, acct: a, windows: run,
				byAcct: map[string][]*window{a.acct.ID: run},
				span:   span{run[0].span.from, run[len(run)-1].span.to}, bucket: a.bucket})
		}
	}
	slices.SortStableFunc(walks, func(x, y *walk) int {
		if x.bucket != y.bucket {
			return x.bucket - y.bucket
		}
		if c := strings.Compare(x.windows[0].acct.acct.ID, y.windows[0].acct.acct.ID); c != 0 {
			return c
		}
		return int(x.span.from - y.span.from)
	})
	return walks
}

// userAccounts returns, per user whose every account with transactions is among
// accts (a user walk reads them all, so none may belong to another shard, be left
// out by --accounts, or have failed), those accounts in id order.
func (r *runner) userAccounts(accts []*acctRun) [][]*acctRun {
	in := map[string]*acctRun{}
	for _, a := range accts {
		in[a.acct.ID] = a
	}
	var out [][]*acctRun
	seen := map[*userRun]bool{}
	for _, a := range accts {
		u := a.user
		if seen[u] {
			continue
		}
		seen[u] = true
		var group []*acctRun
		whole := true
		for _, id := range u.txAccts {
			ar, ok := in[id]
			if !ok || ar.user != u {
				whole = false
				break
			}
			group = append(group, ar)
		}
		if whole && len(group) > 0 {
			slices.SortFunc(group, func(x, y *acctRun) int { return strings.Compare(x.acct.ID, y.acct.ID) })
			out = append(out, group)
		}
	}
	return out
}

// sameRuns reports whether the accounts have identical runs of window spans.
func sameRuns(runsOf map[*acctRun][][]*window, accts []*acctRun) bool {
	first := runsOf[accts[0]]
	for _, a := range accts[1:] {
		runs := runsOf[a]
		if len(runs) != len(first) {
			return false
		}
		for i := range runs {
			if len(runs[i]) != len(first[i]) {
				return false
			}
			for j := range runs[i] {
				if runs[i][j].span != first[i][j].span {
					return false
				}
			}
		}
	}
	return true
}

// pendingPlan says how the pending lists are asked for: per user (one request for
// all its accounts) where all the user's accounts with transactions are extracted,
// per account otherwise.
func (r *runner) pendingPlan(perUser bool) (users [][]*acctRun, single []*acctRun) {
	var accts []*acctRun
	for _, a := range r.accounts {
		if a.status != "skipped" && a.pending == "" { // not yet asked (see identify)
			accts = append(accts, a)
		}
	}
	grouped := map[*acctRun]bool{}
	for _, g := range r.userAccounts(accts) {
		if len(g) < 2 || !perUser {
			continue
		}
		users = append(users, g)
		for _, a := range g {
			grouped[a] = true
		}
	}
	for _, a := range accts {
		if !grouped[a] {
			single = append(single, a)
		}
	}
	return users, single
}
