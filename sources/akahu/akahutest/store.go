package akahutest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// window is an Akahu range in UTC ms: start exclusive, end inclusive.
type window struct{ start, end int64 }

func windowOf(start, end time.Time) window {
	w := window{start: math.MinInt64, end: math.MaxInt64}
	if !start.IsZero() {
		w.start = start.UnixMilli()
	}
	if !end.IsZero() {
		w.end = end.UnixMilli()
	}
	return w
}

func (w window) contains(ms int64) bool { return ms > w.start && ms <= w.end }

// item is one settled transaction in served order, not yet rendered.
type item struct {
	dateMs int64
	id     string
	acc    *account
	day, k int
	ext    *txn
}

func compareItems(a, b item) int {
	if a.dateMs != b.dateMs {
		if a.dateMs > b.dateMs {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, b.id)
}

// dayCount is the number of transactions of accs on local day d. Caller holds f.mu.
func (f *Fake) dayCount(accs []*account, d int) int {
	c := 0
	for _, acc := range accs {
		if acc.hasTx {
			c += acc.baseCount(d) - acc.removedDay[d]
		}
		c += len(acc.extrasByDay[d])
	}
	return c
}

// dayItems lists the transactions of accs on local day d inside w, in served
// order. Caller holds f.mu.
func (f *Fake) dayItems(accs []*account, d int, w window, buf []item) []item {
	buf = buf[:0]
	mid := f.midnight(d)
	for _, acc := range accs {
		if acc.hasTx && w.contains(mid) {
			n := acc.baseCount(d)
			check := acc.removedDay[d] > 0
			for k := 0; k < n; k++ {
				id := f.baseID(position{acct: acc.idx, day: d, k: k})
				if check {
					if _, gone := f.removed[id]; gone {
						continue
					}
				}
				buf = append(buf, item{dateMs: mid, id: id, acc: acc, day: d, k: k})
			}
		}
		for _, t := range acc.extrasByDay[d] {
			if w.contains(t.dateMs) {
				buf = append(buf, item{dateMs: t.dateMs, id: t.id, acc: acc, day: d, ext: t})
			}
		}
	}
	slices.SortFunc(buf, compareItems)
	return buf
}

// scan walks the transactions of accs inside w in served order, calls fn for
// those at positions [offset, offset+limit) and returns the total in w.
// Caller holds f.mu (read).
func (f *Fake) scan(accs []*account, w window, offset, limit int, fn func(item)) int {
	if len(accs) == 0 || w.end <= w.start {
		return 0
	}
	lo, hi := accs[0].lo, accs[0].hi
	for _, a := range accs[1:] {
		lo, hi = min(lo, a.lo), max(hi, a.hi)
	}
	if w.start >= f.midnight(lo) {
		lo = max(lo, dayOf(w.start+1))
	}
	if w.end < f.midnight(hi+1) {
		hi = min(hi, dayOf(w.end))
	}
	var buf []item
	total := 0
	for d := hi; d >= lo; d-- {
		full := f.midnight(d) > w.start && f.midnight(d+1)-1 <= w.end
		var items []item
		c := 0
		if full {
			c = f.dayCount(accs, d)
		} else {
			buf = f.dayItems(accs, d, w, buf)
			items, c = buf, len(buf)
		}
		if c > 0 && total+c > offset && total < offset+limit {
			if items == nil {
				buf = f.dayItems(accs, d, w, buf)
				items = buf
			}
			from := max(0, offset-total)
			to := min(c, offset+limit-total)
			for _, it := range items[from:to] {
				fn(it)
			}
		}
		total += c
	}
	return total
}

// materialise returns the transaction an item stands for. Caller holds f.mu.
func (f *Fake) materialise(it item) txn {
	if it.ext != nil {
		return *it.ext
	}
	return f.generate(it.acc, it.day, it.k)
}

// Txn is a settled transaction as the fake serves it.
type Txn struct {
	ID, UserID, AccountID string
	Date                  time.Time // UTC, millisecond precision
	UpdatedAt             time.Time
	Description           string
	Amount                string // decimal text exactly as in JSON
	JSON                  []byte // the item exactly as served
}

func (f *Fake) toTxn(t *txn) Txn {
	return Txn{
		ID:          t.id,
		UserID:      t.acc.user.id,
		AccountID:   t.acc.id,
		Date:        time.UnixMilli(t.dateMs).UTC(),
		UpdatedAt:   time.UnixMilli(t.updatedMs).UTC(),
		Description: t.desc,
		Amount:      centsText(t.cents),
		JSON:        f.appendTxn(nil, t),
	}
}

func (f *Fake) collect(accs []*account, w window) []Txn {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Txn
	f.scan(accs, w, 0, math.MaxInt, func(it item) {
		t := f.materialise(it)
		out = append(out, f.toTxn(&t))
	})
	return out
}

// Settled returns the settled transactions of an account with start < date <=
// end, in served order (newest date first, ties by ascending id). A zero start
// or end leaves that side unbounded. Unknown accounts give nil.
func (f *Fake) Settled(accountID string, start, end time.Time) []Txn {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return nil
	}
	return f.collect([]*account{acc}, windowOf(start, end))
}

// SettledUser is Settled over every account of a user, as GET /transactions
// serves them.
func (f *Fake) SettledUser(userID string, start, end time.Time) []Txn {
	u := f.byUserID[userID]
	if u == nil {
		return nil
	}
	return f.collect(u.accounts, windowOf(start, end))
}

// TotalSettled is the number of settled transactions an account currently
// serves over its whole history.
func (f *Fake) TotalSettled(accountID string) int {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.scan([]*account{acc}, windowOf(time.Time{}, time.Time{}), 0, 0, nil)
}

// CountSettled is the number of settled transactions an account currently
// serves with start < date <= end (len(Settled(accountID, start, end)) without
// generating them): the ground truth a benchmark computes its minimum number of
// pages from. A zero start or end leaves that side unbounded; unknown accounts
// give 0.
func (f *Fake) CountSettled(accountID string, start, end time.Time) int {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.scan([]*account{acc}, windowOf(start, end), 0, 0, nil)
}

// TotalSettledAll is the number of settled transactions over all users.
func (f *Fake) TotalSettledAll() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, u := range f.users {
		n += f.scan(u.accounts, windowOf(time.Time{}, time.Time{}), 0, 0, nil)
	}
	return n
}

// SumSettled is the exact decimal sum of the amounts of Settled(accountID,
// start, end), rendered like the amounts themselves.
func (f *Fake) SumSettled(accountID string, start, end time.Time) string {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return "0"
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var sum int64
	f.scan([]*account{acc}, windowOf(start, end), 0, math.MaxInt, func(it item) {
		if it.ext != nil {
			sum += it.ext.cents
		} else {
			sum += f.baseCents(it.acc, it.day, it.k)
		}
	})
	return centsText(sum)
}

// Pending returns the pending transactions of an account exactly as served.
func (f *Fake) Pending(accountID string) [][]byte {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([][]byte, 0, len(acc.pending))
	for _, p := range acc.pending {
		out = append(out, f.appendPending(nil, acc, p))
	}
	return out
}

// User is one synthetic user; Token is its user access token.
type User struct{ ID, Email, Token string }

// AppToken is the X-Akahu-Id the fake accepts.
func (f *Fake) AppToken() string { return f.appToken }

// Options returns the effective options, defaults applied.
func (f *Fake) Options() Options { return f.opts }

// Users lists the users in a stable order.
func (f *Fake) Users() []User {
	out := make([]User, len(f.users))
	for i, u := range f.users {
		out[i] = User{ID: u.id, Email: u.email, Token: u.token}
	}
	return out
}

// AccountIDs lists every account of a user in served order, including
// INACTIVE ones and ones without the TRANSACTIONS attribute.
func (f *Fake) AccountIDs(userID string) []string {
	u := f.byUserID[userID]
	if u == nil {
		return nil
	}
	out := make([]string, len(u.accounts))
	for i, a := range u.accounts {
		out[i] = a.id
	}
	return out
}

// AccountInfo summarises an account of the population.
type AccountInfo struct {
	ID, UserID, Type, Status, Currency string
	HasTransactions, RunningBalance    bool
	JSON                               []byte // as served by GET /accounts
}

// Account describes an account; ok is false for unknown ids.
func (f *Fake) Account(accountID string) (AccountInfo, bool) {
	a := f.byAcctID[accountID]
	if a == nil {
		return AccountInfo{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return AccountInfo{
		ID: a.id, UserID: a.user.id, Type: a.typ, Status: a.status, Currency: a.currency,
		HasTransactions: a.hasTx, RunningBalance: a.hasBalance,
		JSON: slices.Clone(f.accountJSON(a)),
	}, true
}

// lookup finds a served transaction by id. Caller holds f.mu.
func (f *Fake) lookup(id string) (txn, error) {
	if t, ok := f.extras[id]; ok {
		return *t, nil
	}
	p, ok := f.decodeBaseID(id)
	if !ok || p.acct >= len(f.accounts) || p.day < f.fromDay || p.day > f.toDay {
		return txn{}, fmt.Errorf("%w: %s", ErrUnknownTransaction, id)
	}
	acc := f.accounts[p.acct]
	if p.k >= acc.baseCount(p.day) {
		return txn{}, fmt.Errorf("%w: %s", ErrUnknownTransaction, id)
	}
	if _, gone := f.removed[id]; gone {
		return txn{}, fmt.Errorf("%w: %s", ErrUnknownTransaction, id)
	}
	return f.generate(acc, p.day, p.k), nil
}

// remove stops serving t. Caller holds f.mu (write).
func (f *Fake) remove(t *txn) {
	if e, ok := f.extras[t.id]; ok {
		delete(f.extras, t.id)
		d := dayOf(e.dateMs)
		list := e.acc.extrasByDay[d]
		if i := slices.Index(list, e); i >= 0 {
			e.acc.extrasByDay[d] = slices.Delete(list, i, i+1)
		}
		return
	}
	f.removed[t.id] = struct{}{}
	if t.acc.removedDay == nil {
		t.acc.removedDay = map[int]int{}
	}
	t.acc.removedDay[dayOf(t.dateMs)]++
}

// add serves t as a scripted transaction. Caller holds f.mu (write).
func (f *Fake) add(t txn) {
	p := &t
	f.extras[t.id] = p
	d := dayOf(t.dateMs)
	if t.acc.extrasByDay == nil {
		t.acc.extrasByDay = map[int][]*txn{}
	}
	t.acc.extrasByDay[d] = append(t.acc.extrasByDay[d], p)
	t.acc.lo, t.acc.hi = min(t.acc.lo, d), max(t.acc.hi, d)
}

// tick advances the mutation clock: every change gets a later updated_at.
func (f *Fake) tick() int64 {
	f.clock += 60000
	return f.clock
}

// SetClock moves the mutation clock to at if it is behind: later changes (and
// transactions added, replaced or settled later) get an updated_at and created_at
// after at, as if made then. It starts 36 hours after Options.To; a test that runs
// the pipeline at a later time calls it to make the changes it scripts newer than
// the runs before them. The clock never goes back.
func (f *Fake) SetClock(at time.Time) {
	f.mu.Lock()
	f.clock = max(f.clock, at.UnixMilli())
	f.mu.Unlock()
}

func (f *Fake) newID() string {
	for {
		f.extraSeq++
		id := randID(idPrefix, 25, mix(f.key, 0xe47a, f.extraSeq))
		if _, taken := f.extras[id]; taken {
			continue
		}
		if _, base := f.decodeBaseID(id); base {
			continue
		}
		return id
	}
}

func parseCents(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 15 || (dot && (len(frac) == 0 || len(frac) > 2)) {
		return 0, false
	}
	var v int64
	for _, c := range whole + (frac + "00")[:2] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// AddTransaction makes the account serve a new settled transaction and
// returns its id. date is used as given, truncated to milliseconds (pass a
// local midnight for realism); amount is decimal text with at most two
// decimals. Scripted transactions carry no balance and no enrichment. It
// panics on an unknown account or malformed amount, like a test helper.
func (f *Fake) AddTransaction(accountID string, date time.Time, amount, description string) string {
	acc := f.byAcctID[accountID]
	if acc == nil {
		panic(fmt.Sprintf("akahutest: AddTransaction: %v: %s", ErrUnknownAccount, accountID))
	}
	cents, ok := parseCents(amount)
	if !ok {
		panic(fmt.Sprintf("akahutest: AddTransaction: malformed amount %q", amount))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := txn{acc: acc, id: f.newID(), dateMs: date.UnixMilli(), desc: description, cents: cents, merchant: -1, category: -1, typ: "CREDIT"}
	if cents < 0 {
		t.typ = "DEBIT"
	}
	t.createdMs = f.tick()
	t.updatedMs = t.createdMs
	f.add(t)
	return t.id
}

// DeleteTransaction removes a settled transaction, as when the bank drops it.
func (f *Fake) DeleteTransaction(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.lookup(id)
	if err != nil {
		return err
	}
	f.remove(&t)
	return nil
}

// ReplaceID makes a transaction vanish and reappear under a new id with the
// same content (Akahu's ~0.1% re-identification); created_at and updated_at
// of the new one are new. It returns the new id.
func (f *Fake) ReplaceID(id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.lookup(id)
	if err != nil {
		return "", err
	}
	f.remove(&t)
	t.id = f.newID()
	t.createdMs = f.tick()
	t.updatedMs = t.createdMs
	f.add(t)
	return t.id, nil
}

// MoveDate changes a transaction's date (any instant, truncated to ms, also
// across a day or month boundary) keeping its id; updated_at advances.
func (f *Fake) MoveDate(id string, date time.Time) error {
	return f.modify(id, func(t *txn) { t.dateMs = date.UnixMilli() })
}

// SetDescription changes a transaction's description keeping its id;
// updated_at advances.
func (f *Fake) SetDescription(id, description string) error {
	return f.modify(id, func(t *txn) { t.desc = description })
}

func (f *Fake) modify(id string, change func(*txn)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.lookup(id)
	if err != nil {
		return err
	}
	f.remove(&t)
	change(&t)
	// A generated transaction may carry an updated_at (enrichment up to a week after
	// posting) later than the clock: the change still comes after it.
	f.clock = max(f.clock, t.updatedMs)
	t.updatedMs = f.tick()
	f.add(t)
	return nil
}

// SettlePending settles the account's oldest-listed pending transaction: it
// leaves the pending list and a settled transaction with the same date,
// description, amount and type appears. It returns the new id.
func (f *Fake) SettlePending(accountID string) (string, error) {
	acc := f.byAcctID[accountID]
	if acc == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownAccount, accountID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(acc.pending) == 0 {
		return "", fmt.Errorf("%w: %s", ErrNoPending, accountID)
	}
	p := acc.pending[0]
	acc.pending = acc.pending[1:]
	t := txn{acc: acc, id: f.newID(), dateMs: p.dateMs, desc: p.desc, cents: p.cents, typ: p.typ, merchant: -1, category: -1}
	t.createdMs = f.tick()
	t.updatedMs = t.createdMs
	f.add(t)
	return t.id, nil
}

// RevokeUser revokes a user's token: every later request with it answers 401.
func (f *Fake) RevokeUser(userID string) {
	u := f.byUserID[userID]
	if u == nil {
		return
	}
	f.mu.Lock()
	u.revoked = true
	f.mu.Unlock()
}

// ForbidUser makes every later request with the user's token answer 403 while
// the app token is accepted: a user-level authorisation problem (a permission
// the user did not grant), as opposed to a revocation (RevokeUser, 401) or a
// wrong app token (403 for every user). RevokeUser takes precedence.
func (f *Fake) ForbidUser(userID string) {
	u := f.byUserID[userID]
	if u == nil {
		return
	}
	f.mu.Lock()
	u.forbidden = true
	f.mu.Unlock()
}
