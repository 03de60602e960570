package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the plan stage: resolving users to their accounts, choosing this
// shard's accounts, the date range and the windows, and printing a dry run's plan.

// userRun is one user token's part of a run.
type userRun struct {
	index int
	token akahu.Token
	fp    string // tokenFingerprint(token)
	claim string // the user id the operator gave for the token (Config.UserIDs), or ""
	me    akahu.Me
	// accounts are the user's accounts as discovery listed them, until the plan has
	// chosen the shard's (selectAccounts); then nil, and the run keeps only what later
	// stages need: the ids of the accounts with transactions (a walk over all of a
	// user's accounts needs them all) and the bucket whose state names the user.
	accounts []akahu.Account
	// pending is the user's whole pending list when discovery asked it (identify),
	// until selectAccounts hands it to the accounts; pendingAsked says it was asked
	// and answered (an empty list is an answer too).
	pending      []json.RawMessage
	pendingAsked bool
	txAccts      []string
	home         int    // -1: no bucket of this shard
	status       string // ok or failed (set by discover); revoked (401) or forbidden (403)
	err          error
	refused      bool // Akahu refused the token (401 or 403): the user's remaining work is skipped
	mu           sync.Mutex
}

// refuse records that Akahu refused the user's token: a 401 (ErrAccessRevoked) makes
// the user "revoked", a 403 (akahu.ErrForbidden) "forbidden". The first refusal wins.
func (u *userRun) refuse(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.refused {
		return
	}
	u.refused, u.status, u.err = true, "revoked", err
	if errors.Is(err, akahu.ErrForbidden) {
		u.status = "forbidden"
	}
}

func (u *userRun) isRefused() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.refused
}

// isRevoked reports whether the user's token got a 401: the only refusal that may
// lead to a purge.
func (u *userRun) isRevoked() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.refused && u.status == "revoked"
}

// refusal reports whether err is Akahu refusing a token: 401 or 403.
func refusal(err error) bool {
	return errors.Is(err, akahu.ErrAccessRevoked) || errors.Is(err, akahu.ErrForbidden)
}

// acctRun is one account's part of a run.
type acctRun struct {
	user   *userRun
	acct   acctInfo
	bucket int
	status string // ok, inactive, skipped (set at plan time); failed, revoked (set on error)
	note   string
	mu     sync.Mutex
	err    error
	// snapErr says why the account's JSON could not become an accounts-snapshot row
	// (built at plan time); the account fails when the snapshot is written.
	snapErr error
	rows    int64
	done    []span // windows extracted completely, joined (joinSpans)
	// months are the months the run extracts of the account, as runs of consecutive
	// months: the plan's windows (planWindows, then reconcile's re-reads), kept
	// compact. Windows are made from them as walks are planned, user by user.
	// Written only on the run's goroutine between extraction pools.
	months []monthRun
	// pending is what became of the account's pending rows: "fetched" (replaced,
	// possibly by none), "kept (request failed)"; empty when not requested.
	pending string
}

// acctInfo is what a run keeps of an account as Akahu listed it: what the walks, the
// refresh and the manifest use. The rest (the JSON, connection, balance) becomes the
// accounts-snapshot row at plan time and is not kept, so a shard's memory does not
// carry every account's listing through the run.
type acctInfo struct {
	ID, Name, Type, Currency string
	// TransactionsRefreshed is refreshed.transactions (akahu.Account).
	TransactionsRefreshed time.Time
}

func newAcctInfo(a akahu.Account) acctInfo {
	return acctInfo{ID: a.ID, Name: a.Name, Type: a.Type, Currency: a.Currency, TransactionsRefreshed: a.TransactionsRefreshed}
}

func (a *acctRun) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
	}
}

func (a *acctRun) setPending(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = s
}

func (a *acctRun) failed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err != nil
}

// window is one account over one month partition: the unit of merging.
type window struct {
	acct *acctRun
	part partKey
	span span
}

func newWindow(a *acctRun, m month) *window {
	return &window{acct: a, part: partKey{m, a.bucket}, span: span{m.first(), m.last()}}
}

// monthRun is an inclusive run of consecutive months.
type monthRun struct{ from, to month }

// planMonth adds m to the account's planned months.
func (a *acctRun) planMonth(m month) {
	i := 0
	for i < len(a.months) && a.months[i].to.next().before(m) {
		i++ // runs that end before the month before m
	}
	switch {
	case i == len(a.months) || m.next().before(a.months[i].from):
		a.months = slices.Insert(a.months, i, monthRun{m, m}) // apart from every run
	case m.before(a.months[i].from):
		a.months[i].from = m // just before run i
	case a.months[i].to.before(m):
		a.months[i].to = m // just after run i: it may now touch run i+1
		if i+1 < len(a.months) && a.months[i+1].from == m.next() {
			a.months[i].to = a.months[i+1].to
			a.months = slices.Delete(a.months, i+1, i+2)
		}
	}
}

// hasMonth reports whether m is among the account's planned months.
func (a *acctRun) hasMonth(m month) bool {
	for _, run := range a.months {
		if !m.before(run.from) && !run.to.before(m) {
			return true
		}
	}
	return false
}

// windows returns the account's planned windows, oldest first.
func (a *acctRun) windows() []*window {
	var out []*window
	for _, run := range a.months {
		for m := run.from; !run.to.before(m); m = m.next() {
			out = append(out, newWindow(a, m))
		}
	}
	return out
}

// planned calls fn for each planned window (account, month), without making them.
func (r *runner) planned(fn func(a *acctRun, m month)) {
	for _, a := range r.accounts {
		for _, run := range a.months {
			for m := run.from; !run.to.before(m); m = m.next() {
				fn(a, m)
			}
		}
	}
}

// plan adds windows (re-reads) to the plan.
func (r *runner) plan(windows []*window) {
	for _, w := range windows {
		w.acct.planMonth(w.part.month)
	}
}

// plannedParts counts the planned windows of each partition.
func (r *runner) plannedParts() map[partKey]int {
	counts := map[partKey]int{}
	r.planned(func(a *acctRun, m month) { counts[partKey{m, a.bucket}]++ })
	return counts
}

// userBatches yields the planned windows user by user (the unit walks are planned
// in: a walk over all of a user's accounts needs them all), in the order of each
// user's first account's bucket, then its id, so that the partitions of one bucket
// complete together. Only the windows of the users being walked are in memory.
func (r *runner) userBatches() iter.Seq[[]*window] {
	return func(yield func([]*window) bool) {
		var users []*userRun
		accts := map[*userRun][]*acctRun{}
		for _, a := range r.accounts { // in id order
			if len(a.months) == 0 {
				continue
			}
			if accts[a.user] == nil {
				users = append(users, a.user)
			}
			accts[a.user] = append(accts[a.user], a)
		}
		slices.SortStableFunc(users, func(x, y *userRun) int {
			a, b := accts[x][0], accts[y][0]
			if a.bucket != b.bucket {
				return a.bucket - b.bucket
			}
			return strings.Compare(a.acct.ID, b.acct.ID)
		})
		for _, u := range users {
			var ws []*window
			for _, a := range accts[u] {
				ws = append(ws, a.windows()...)
			}
			delete(accts, u)
			if !yield(ws) {
				return
			}
		}
	}
}

// discover resolves every user token to a user and its accounts, concurrently.
// A token the state objects name costs one request (/accounts) and none at all when
// another shard owns its user (layout 2); a new token costs /me too, once per fleet
// when the shards run one after another (the first shard to meet it records it in
// its resolved object), in every shard that meets it before any run has recorded it
// when they run at once. A refused or failing token marks that user alone;
// a token /me did not resolve is named by the earlier run that recorded its
// fingerprint, if any. Users other shards own leave the run.
//
// The tokens are read from Config.Tokens as they go, and only those of the users the
// run keeps are held; a token that is empty, claims a malformed user id, or comes
// twice among the kept ones, or a source that fails, ends the discovery with an
// ErrConfig error (after the requests under way have answered).
func (r *runner) discover(ctx context.Context, found func(*userRun)) error {
	p := pool.New().WithMaxGoroutines(min(r.cfg.Workers, 8))
	// Users are handed to found in their order as soon as they are discovered, at
	// most discoverAhead behind the requests: a shard holds the listings of the
	// users in flight, not of all its users. A user /me places on another shard
	// leaves the run there, noted for the shard's resolved object: a fleet's first
	// run holds no record per fleet token either.
	var queue []discovering
	next := func() {
		d := queue[0]
		queue[0] = discovering{}
		queue = queue[1:]
		if d.done != nil {
			<-d.done
		}
		if d.u.status == statusElsewhere {
			r.resolvedElsewhere(d.u)
			return
		}
		r.users = append(r.users, d.u)
		found(d.u)
	}
	kept := map[string]int{} // fingerprints of the tokens kept: by index
	var bad error
	i := -1
	err := r.cfg.Tokens(func(tok akahu.Token, claim string) bool {
		i++
		if tok == "" {
			bad = fmt.Errorf("%w: user token %d is empty", ErrConfig, i+1)
			return false
		}
		if err := CheckUserID(claim); err != nil {
			bad = fmt.Errorf("%w: user id of token %d: %v", ErrConfig, i+1, err)
			return false
		}
		fp := tokenFingerprint(tok)
		entry, known := r.directory.lookup(fp)
		id := entry.userID
		if (known && !entry.mine()) || (!known && claim != "" && !r.ownsUser(claim)) {
			// Another shard's user (or claimed by one: that shard asks /me and checks
			// the claim): no request, and no record, as most of a fleet's tokens are.
			return true
		}
		if prev, dup := kept[fp]; dup {
			bad = fmt.Errorf("%w: user token %d is the same as token %d", ErrConfig, i+1, prev+1)
			return false
		}
		kept[fp] = i
		for len(queue) >= discoverAhead {
			next()
		}
		u := &userRun{index: i, token: tok, fp: fp, claim: claim}
		queue = append(queue, discovering{u: u})
		switch {
		case known && u.claim != "" && u.claim != id:
			u.me.ID = id
			u.status, u.err = "failed", fmt.Errorf("user %d (%s): %w: the tokens file says user %s; an earlier run found %s",
				u.index+1, id, ErrUserMismatch, u.claim, id)
			return true
		}
		done := make(chan struct{})
		queue[len(queue)-1].done = done
		p.Go(func() {
			defer close(done)
			var err error
			if known {
				u.me = akahu.Me{ID: id} // a token's user never changes: no /me
			} else if u.me, err = r.identify(ctx, u); err == nil && u.claim != "" && u.me.ID != u.claim {
				// Not extracted: the token's real owner skipped it on the claim's word.
				said := "GET /me"
				if u.pending != nil {
					said = "its pending list (_user)"
				}
				err = fmt.Errorf("%w: the tokens file says user %s; %s says %s", ErrUserMismatch, u.claim, said, u.me.ID)
			} else if err == nil && !r.ownsUser(u.me.ID) {
				u.status = statusElsewhere
				return
			}
			if err == nil {
				u.accounts, err = r.cfg.Source.Accounts(ctx, u.token)
			}
			if err == nil {
				u.status = "ok"
				return
			}
			if u.me.ID == "" || entry.hearsay {
				// Only the owning bucket's users object, or this run's /me, names
				// a failing token's user (whom a revocation may purge): not
				// another shard's resolved object.
				u.me.ID = r.knownUser(u)
			}
			err = fmt.Errorf("user %d (%s): %w", u.index+1, orUnknown(u.me.ID), err)
			if refusal(err) {
				u.refuse(err)
			} else {
				u.status, u.err = "failed", err
			}
		})
		return true
	})
	for len(queue) > 0 {
		next()
	}
	p.Wait()
	r.users = slices.Clip(r.users)
	r.tokens = i + 1
	switch {
	case bad != nil:
		return bad
	case err != nil:
		return fmt.Errorf("%w: %w", ErrConfig, err)
	case r.tokens == 0:
		return fmt.Errorf("%w: no user token (set AKAHU_USER_TOKEN or --user-tokens-file)", ErrConfig)
	}
	return nil
}

// identify resolves a new token's user. Where this shard extracts the user whoever
// it is and would ask the user's whole pending list anyway (pendingFirst), it asks
// that list first: its items name their user (_user), and the one request serves
// both; the list is kept for selectAccounts. Otherwise, or when the list names no
// user (it is empty), or not one user on every item, or the request fails, GET /me
// says who the user is, and decides a refusal, as it would without the list.
func (r *runner) identify(ctx context.Context, u *userRun) (akahu.Me, error) {
	if r.pendingFirst(u.claim) {
		if items, err := r.cfg.Source.AllPending(ctx, u.token); err == nil {
			if id := pendingUser(items); id != "" {
				u.pending, u.pendingAsked = items, true
				return akahu.Me{ID: id}, nil
			}
			u.pendingAsked = len(items) == 0 // none is an answer too
		}
	}
	return r.cfg.Source.Me(ctx, u.token)
}

// pendingFirst reports whether discovery asks a new token's pending list before
// GET /me (identify): when the shard extracts the user whoever it is (layout 1, one
// shard, or the operator's claim names a user of its buckets: a claim GET /me would
// contradict is caught by the list's _user as well), and the run asks every one of
// the user's accounts' pending lists at once (no --accounts, no account-by-account
// walks), not after a refresh (the list is asked before it) and not in a dry run
// (which asks no pending list).
func (r *runner) pendingFirst(claim string) bool {
	mine := r.ds.BucketBy != bucketByUser || r.cfg.Shards == 1 || (claim != "" && r.ownsUser(claim))
	return mine && !r.cfg.Refresh && !r.cfg.AccountWalks && len(r.cfg.Accounts) == 0 && !r.cfg.DryRun
}

// pendingUser returns the user every item of a pending list names (_user), each
// naming its account (_account) too; "" when the list is empty or any item does
// not.
func pendingUser(items []json.RawMessage) string {
	var s jsonscan.Scanner
	id := ""
	for _, it := range items {
		acct, user, ok := akahu.PendingOwner(&s, it)
		if !ok || acct == "" || user == "" || (id != "" && user != id) {
			return ""
		}
		id = user
	}
	return id
}

// discovering is a user whose discovery may still be under way (done, if not nil,
// is closed when it is over).
type discovering struct {
	u    *userRun
	done chan struct{}
}

// discoverAhead is how many users discovery may resolve ahead of the one the plan
// takes next (discover's found): the listings held at once.
const discoverAhead = 256

// statusElsewhere marks a user another shard owns (layout 2); it leaves the run.
const statusElsewhere = "elsewhere"

// ownsUser reports whether this shard extracts the user: always with layout 1 (a
// user's accounts spread over buckets), for the users of its buckets with layout 2.
func (r *runner) ownsUser(id string) bool {
	return r.ds.BucketBy != bucketByUser || bucketOf(id, r.ds.Buckets)%r.cfg.Shards == r.cfg.Shard
}

// checkAppToken fails the run when Akahu refused every user with 403 and resolved or
// revoked none: that is the app token (X-Akahu-Id) being refused, not the users.
func (r *runner) checkAppToken() error {
	var ok, revoked, forbidden []*userRun
	for _, u := range r.users {
		switch u.status {
		case "ok":
			ok = append(ok, u)
		case "revoked":
			revoked = append(revoked, u)
		case "forbidden":
			forbidden = append(forbidden, u)
		}
	}
	if len(ok) > 0 || len(revoked) > 0 || len(forbidden) == 0 {
		return nil
	}
	return fmt.Errorf("%w: 403 Forbidden for %d of %d users, none served (%v); check the app token (X-Akahu-Id); nothing was written or purged",
		ErrAppTokenRefused, len(forbidden), len(r.users), forbidden[0].err)
}

func orUnknown(s string) string {
	if s == "" {
		return "user id unknown"
	}
	return s
}

// accountChoice is what the plan chooses accounts by: the --accounts ids, each
// marked when a user's listing has it. Empty: every account of the shard.
type accountChoice map[string]bool

func (r *runner) accountChoice() accountChoice {
	want := accountChoice{}
	for _, id := range r.cfg.Accounts {
		want[id] = false
	}
	return want
}

// selectAccounts picks, from the user's listing, the accounts this shard extracts
// (discovery hands it each user in order, as soon as the user is discovered), builds
// their accounts-snapshot rows and drops the listing.
func (r *runner) selectAccounts(u *userRun, want accountChoice) {
	u.home = -1
	if r.ds.BucketBy == bucketByUser && u.me.ID != "" {
		u.home = bucketOf(u.me.ID, r.ds.Buckets)
	}
	var pend []*acctRun
	for _, a := range u.accounts {
		if a.HasTransactions() {
			u.txAccts = append(u.txAccts, a.ID)
		}
		b := r.ds.bucketFor(u.me.ID, a.ID)
		if r.ds.BucketBy != bucketByUser && u.home < 0 && b%r.cfg.Shards == r.cfg.Shard {
			u.home = b // layout 1: the first of its accounts' buckets the shard owns
		}
		if len(want) > 0 {
			if _, ok := want[a.ID]; !ok {
				continue
			}
			want[a.ID] = true
		}
		if b%r.cfg.Shards != r.cfg.Shard {
			continue
		}
		ar := &acctRun{user: u, acct: newAcctInfo(a), bucket: b, status: "ok"}
		switch {
		case !a.HasTransactions():
			ar.status, ar.note = "skipped", "account has no TRANSACTIONS attribute"
		case strings.EqualFold(a.Status, "INACTIVE"):
			ar.status, ar.note = "inactive", "INACTIVE at Akahu; its cached data is still extracted"
		}
		r.addAccountRow(ar, a.Raw)
		r.accounts = append(r.accounts, ar)
		if ar.status != "skipped" {
			pend = append(pend, ar)
		}
	}
	if u.pendingAsked {
		// Discovery asked the user's pending list (identify): the accounts have it.
		r.handPending(pend, u.pending, nil)
	}
	u.pending = nil
	// The snapshot rows are built: the run keeps no account's listing (with the
	// HTTP client, each one aliases its user's whole /accounts body).
	u.accounts = nil
	r.spillAccountRows(false)
}

// accountsSelected ends the plan's choice of accounts, once every user is
// discovered: it fails on an --accounts id no listing had, spills the last
// accounts-snapshot rows and puts the accounts in a stable order.
func (r *runner) accountsSelected(want accountChoice) error {
	var unknown []string
	for id, seen := range want {
		if !seen {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		// A user whose discovery failed may own the account; say so rather than guess.
		sort.Strings(unknown)
		for _, u := range r.users {
			if u.err != nil {
				return fmt.Errorf("%w: --accounts %s not found (and user %d could not be listed: %v)",
					ErrConfig, strings.Join(unknown, ","), u.index+1, u.err)
			}
		}
		return fmt.Errorf("%w: --accounts %s: no such account among the users' accounts",
			ErrConfig, strings.Join(unknown, ","))
	}
	r.spillAccountRows(true)
	// Sorted by id: accountByID searches this order.
	sort.SliceStable(r.accounts, func(i, j int) bool { return r.accounts[i].acct.ID < r.accounts[j].acct.ID })
	return nil
}

// planRange decides the inclusive local date range of the run.
func (r *runner) planRange() error {
	today := dayOfTime(r.cfg.Now(), r.loc)
	end := today
	if r.cfg.End != "" {
		d, err := parseDay(r.cfg.End)
		if err != nil {
			return fmt.Errorf("%w: --end: %v", ErrConfig, err)
		}
		end = d
	}
	var start day
	switch {
	case r.cfg.Start != "":
		d, err := parseDay(r.cfg.Start)
		if err != nil {
			return fmt.Errorf("%w: --start: %v", ErrConfig, err)
		}
		start = d
	case r.latest != nil && r.latest.Range.End != "":
		last, err := parseDay(r.latest.Range.End)
		if err != nil {
			return fmt.Errorf("%w: manifest %s: range end: %v", ErrCorrupt, r.latest.RunID, err)
		}
		start = min(last, end) - day(r.cfg.Lookback)
	default:
		start = end - day(r.cfg.History)
	}
	if end < start {
		return fmt.Errorf("%w: --end %s is before --start %s", ErrConfig, end, start)
	}
	if start < dayOf(1990, 1, 1) {
		return fmt.Errorf("%w: start %s is before 1990-01-01", ErrConfig, start)
	}
	r.start, r.end = start, end
	return nil
}

// planWindows plans one window per (account, month) over the run's range, widened to
// whole months, plus the windows of crashed runs being recovered: as each account's
// runs of months (acctRun.months), not as windows, which would grow with accounts ×
// months for the whole run.
func (r *runner) planWindows() {
	for _, a := range r.accounts {
		if a.status == "skipped" {
			continue
		}
		for m := r.accountStart(a.acct.ID).month(); !r.end.month().before(m); m = m.next() {
			a.planMonth(m)
		}
	}
	for _, c := range r.crashed {
		for _, rg := range c.Ranges {
			from, err1 := parseDay(rg.From)
			to, err2 := parseDay(rg.To)
			if err1 != nil || err2 != nil {
				continue
			}
			for _, a := range r.accounts {
				if a.status == "skipped" || !slices.Contains(rg.Buckets, a.bucket) {
					continue
				}
				for m := from.month(); !to.month().before(m); m = m.next() {
					a.planMonth(m)
				}
			}
		}
		for _, cov := range c.Coverage {
			from, err1 := parseDay(cov.From)
			to, err2 := parseDay(cov.To)
			if err1 != nil || err2 != nil {
				continue
			}
			for _, a := range r.accountsByID(cov.AccountID) {
				if len(a.months) == 0 {
					continue // an account no longer extracted by this run keeps its old rows
				}
				for m := from.month(); !to.month().before(m); m = m.next() {
					a.planMonth(m)
				}
			}
		}
	}
}

// accountsByID returns the run's accounts with that id (r.accounts is in id order).
func (r *runner) accountsByID(id string) []*acctRun {
	i, _ := slices.BinarySearchFunc(r.accounts, id, func(a *acctRun, id string) int { return strings.Compare(a.acct.ID, id) })
	j := i
	for j < len(r.accounts) && r.accounts[j].acct.ID == id {
		j++
	}
	return r.accounts[i:j]
}

// windowCount is the number of planned windows.
func (r *runner) windowCount() int {
	n := 0
	r.planned(func(*acctRun, month) { n++ })
	return n
}

// printPlan writes a dry run's plan.
func (r *runner) printPlan(w io.Writer) {
	fmt.Fprintf(w, "plan for run %s, shard %d of %d (dry run: nothing is written)\n", r.runID, r.cfg.Shard, r.cfg.Shards)
	fmt.Fprintf(w, "range %s..%s (%s), %d window(s)\n", r.start, r.end, r.loc, r.windowCount())
	for _, u := range r.users {
		if u.err != nil {
			fmt.Fprintf(w, "user %d: %s: %v\n", u.index+1, u.status, u.err)
		}
	}
	perAcct := map[*acctRun][]string{}
	parts := map[partKey]bool{}
	r.planned(func(a *acctRun, m month) {
		perAcct[a] = append(perAcct[a], m.String())
		parts[partKey{m, a.bucket}] = true
	})
	for _, a := range r.accounts {
		ms := perAcct[a]
		sort.Strings(ms)
		fmt.Fprintf(w, "account %s (%s, %s, user %s): %s", a.acct.ID, a.acct.Type, a.status, a.user.me.ID, a.note)
		if len(ms) > 0 {
			fmt.Fprintf(w, " months %s..%s (%d windows)", ms[0], ms[len(ms)-1], len(ms))
		}
		fmt.Fprintln(w)
	}
	var keys []string
	for p := range parts {
		keys = append(keys, txObject(p))
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%d partition(s) would be read and rewritten if changed:\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\n", k)
	}
	for _, c := range r.crashed {
		fmt.Fprintf(w, "would recover crashed run %s\n", c.RunID)
	}
}

// knownUser returns the user id the latest committed run recorded for u's token,
// matched by fingerprint (never by the token itself), or "" when none is recorded or
// the match is ambiguous: entries naming different users, or an entry that another
// token of this run matches too (only conceivable with the 48-bit fingerprints of
// older manifests). An ambiguous fingerprint never names a user, so it can never
// lead to a purge of the wrong one.
func (r *runner) knownUser(u *userRun) string {
	r.recorded.once.Do(func() { r.indexRecorded(r.fingerprints) })
	if r.recorded.incomplete {
		return ""
	}
	id := ""
	for _, key := range []string{u.fp, u.fp[:min(len(u.fp), legacyFingerprintLen)]} {
		e := r.recorded.byFP[key]
		switch {
		case e == nil:
		case e.shared || e.conflict:
			return ""
		case e.userID == "":
		case id == "":
			id = e.userID
		case id != e.userID:
			return ""
		}
	}
	return id
}

// recordedUsers indexes, for knownUser, the users the state and the latest committed
// run recorded, by recorded fingerprint (full or legacy), with what the run's tokens
// make of each. It is built once, when a user first needs it, in one pass over the
// records and one over the run's tokens: knownUser costs O(1) a failing user, not a
// scan of the fleet's tokens.
type recordedUsers struct {
	once       sync.Once
	byFP       map[string]*recordedUser
	incomplete bool // the run's tokens could not be read again: no match is trusted
}

// recordedUser is what the records say of one recorded fingerprint.
type recordedUser struct {
	userID   string      // the user id recorded with it ("" if none)
	conflict bool        // records name different users
	token    akahu.Token // the first token of the run it matches
	shared   bool        // a second, different token of the run matches it too
}

// fingerprints yields every token of the run, other shards' too, with its
// fingerprint, reading Config.Tokens again; if that fails, the index is incomplete
// and knownUser names no user.
func (r *runner) fingerprints(yield func(akahu.Token, string) bool) {
	stopped := false
	err := r.cfg.Tokens(func(tok akahu.Token, _ string) bool {
		stopped = !yield(tok, tokenFingerprint(tok))
		return !stopped
	})
	if err != nil && !stopped {
		r.recorded.incomplete = true
		r.log.Warn("user tokens not read again to look up a failing token's recorded user: none is named, none purged", "err", err)
	}
}

// indexRecorded builds knownUser's index from the records and the run's tokens.
func (r *runner) indexRecorded(tokens iter.Seq2[akahu.Token, string]) {
	byFP := map[string]*recordedUser{}
	add := func(fp, userID string) {
		if fp == "" {
			return // names no token
		}
		e := byFP[fp]
		if e == nil {
			e = &recordedUser{}
			byFP[fp] = e
		}
		switch {
		case userID == "":
		case e.userID == "":
			e.userID = userID
		case e.userID != userID:
			e.conflict = true
		}
	}
	for _, e := range r.state.users() {
		add(e.TokenFP, e.UserID)
	}
	if r.latest != nil {
		for _, e := range r.latest.Users {
			add(e.TokenFP, e.UserID)
		}
	}
	for tok, fp := range tokens {
		keys := [2]string{fp, fp[:min(len(fp), legacyFingerprintLen)]}
		for i, key := range keys {
			e := byFP[key]
			if e == nil || (i == 1 && key == keys[0]) {
				continue
			}
			switch {
			case e.token == "":
				e.token = tok
			case e.token != tok:
				e.shared = true
			}
		}
	}
	r.recorded.byFP = byFP
}

// accountStart is where an account's windows begin. An explicit --start applies to
// every account. An incremental run starts each account from the date its data is
// complete through (the latest manifest's covered_through) minus the lookback, and an
// account no run has extracted from the history start.
func (r *runner) accountStart(id string) day {
	if r.cfg.Start != "" {
		return r.start
	}
	through, ok := r.state.coveredThrough(id)
	if !ok && (r.state == nil || r.state.legacy) && r.latest != nil {
		through, ok = r.latest.CoveredThrough[id]
	}
	if !ok {
		return r.end - day(r.cfg.History)
	}
	d, err := parseDay(through)
	if err != nil {
		return r.end - day(r.cfg.History)
	}
	return min(d, r.end) - day(r.cfg.Lookback)
}
