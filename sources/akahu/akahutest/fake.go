package akahutest

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fake is a deterministic fake of the Akahu API. It is an http.Handler
// serving /v1/...; every method is safe for concurrent use with serving.
type Fake struct {
	opts     Options
	key      uint64 // id scramble key, from the seed
	appToken string

	fromDay, toDay int     // local dates of the generated history
	midLo          int     // first day of mid
	mid            []int64 // cached local midnights in UTC ms
	lambda         float64 // mean transactions per account and day
	denseLambda    float64 // the same for dense accounts (Options.DenseEvery)
	scratchDays    []int32 // generateCounts' buffers, during New only
	scratchN       []uint16

	users    []*user
	byToken  map[string]*user
	byUserID map[string]*user
	accounts []*account // by global index
	byAcctID map[string]*account

	mu       sync.RWMutex // guards the mutable state below and in user/account
	removed  map[string]struct{}
	extras   map[string]*txn
	extraSeq uint64
	clock    int64 // mutation clock, UTC ms

	refreshDelay time.Duration          // see SetRefreshDelay
	refreshHook  func(accountID string) // see OnRefreshed
	refreshAsked atomic.Bool            // a POST /refresh was answered

	faults faultState
}

type user struct {
	idx           int
	id, email     string
	token         string
	accessGranted int64
	accounts      []*account
	revoked       bool // guarded by Fake.mu
	forbidden     bool // guarded by Fake.mu
	refreshFail   int  // status answered to POST /refresh, 0: acknowledged (guarded by Fake.mu)
}

type account struct {
	idx        int // global
	id         string
	user       *user
	kind       int
	typ, name  string
	status     string
	currency   string
	hasTx      bool
	hasBalance bool
	conn       bank
	json       []byte // rendered account object
	// The generated history is kept sparse, so that a quiet account costs bytes
	// per transaction and not per day of history: days lists the local days with
	// base transactions in ascending order, dayN their counts, before the running
	// balance sum before each of them (hasBalance only), sumAll the sum of every
	// base amount (hasBalance only).
	days        []int32
	dayN        []uint16
	before      []int64
	sumAll      int64
	opening     int64 // balance before the first transaction, cents
	total       int   // base transaction count
	lo, hi      int   // day range with data, incl. extras (guarded by Fake.mu)
	removedDay  map[int]int
	extrasByDay map[int][]*txn
	pending     []*pendingTxn
	refresh     refreshState // guarded by Fake.mu
}

// New builds the population for opts. Construction is cheap: settled
// transactions are generated on demand from their position, so memory is a few
// bytes per account and day, whatever the number of transactions.
func New(opts Options) *Fake {
	o := opts.withDefaults()
	f := &Fake{
		opts:     o,
		key:      mix(uint64(o.Seed), 0x6b6579),
		byToken:  map[string]*user{},
		byUserID: map[string]*user{},
		byAcctID: map[string]*account{},
		removed:  map[string]struct{}{},
		extras:   map[string]*txn{},
		clock:    o.To.UnixMilli() + 36*3600*1000,
	}
	f.appToken = o.AppToken
	if f.appToken == "" {
		f.appToken = randID("app_token_", 24, mix(uint64(o.Seed), 0xa99))
	}
	f.fromDay = dayOf(o.From.UnixMilli())
	f.toDay = dayOf(o.To.UnixMilli())
	if f.toDay < f.fromDay {
		f.toDay = f.fromDay
	}
	f.midLo = f.fromDay - 1
	f.mid = make([]int64, f.toDay-f.fromDay+4)
	for i := range f.mid {
		f.mid[i] = computeMidnight(f.midLo + i)
	}
	f.lambda = float64(o.TxPerAccountPerMonth) * 12 / 365.2425
	f.denseLambda = float64(o.DenseTxPerAccountPerMonth) * 12 / 365.2425
	f.faults.latency = o.PageLatency
	f.refreshDelay = max(o.RefreshDelay, 0)

	f.users = make([]*user, 0, o.Users)
	f.accounts = make([]*account, 0, o.Users*o.AccountsPerUser)
	for u := 0; u < o.Users; u++ {
		f.newUser(u)
	}
	f.scratchDays, f.scratchN = nil, nil
	return f
}

func (f *Fake) newUser(u int) {
	seed := uint64(f.opts.Seed)
	usr := &user{
		idx:   u,
		id:    randID("user_", 25, mix(seed, 0x05e7, uint64(u))),
		token: randID("user_token_", 24, mix(seed, 0x70ce, uint64(u))),
	}
	usr.email = "user" + itoa(u) + "@example.co.nz"
	usr.accessGranted = f.opts.From.UnixMilli() - int64(mix(seed, 0xacc, uint64(u))%(90*86400000))
	f.users = append(f.users, usr)
	f.byToken[usr.token] = usr
	f.byUserID[usr.id] = usr
	bk := banks[int(mix(seed, 0xba4c, uint64(u))%uint64(len(banks)))]
	creds := randID("creds_", 25, mix(seed, 0xc4ed, uint64(u)))
	auth := randID("auth_", 25, mix(seed, 0xa07, uint64(u)))
	for a := 0; a < f.opts.AccountsPerUser; a++ {
		kind := a % len(accountKinds)
		if kind == 3 && u%3 == 2 && f.opts.AccountsPerUser <= 5 {
			kind = 5 // a foreign-currency account, sometimes
		}
		k := accountKinds[kind]
		acc := &account{
			idx:        len(f.accounts),
			id:         randID("acc_", 25, mix(seed, 0xacc7, uint64(u), uint64(a))),
			user:       usr,
			kind:       kind,
			typ:        k.typ,
			name:       k.name,
			status:     "ACTIVE",
			currency:   "NZD",
			hasTx:      k.hasTx,
			hasBalance: k.hasBalance,
			conn:       bk,
			lo:         f.fromDay,
			hi:         f.toDay,
		}
		if acc.idx >= maxAccount {
			panic("akahutest: too many accounts")
		}
		if a == 1 || f.opts.AccountsPerUser == 1 {
			acc.status = "INACTIVE"
		}
		if a >= len(accountKinds) {
			acc.name += " " + itoa(a/len(accountKinds)+1)
		}
		if kind == 2 {
			acc.conn = kiwisaverProvider
		}
		if kind == 5 {
			acc.currency = foreignCurrencies[(u+a)%len(foreignCurrencies)]
			acc.name = acc.currency + " Call Account"
		}
		f.accounts = append(f.accounts, acc)
		f.byAcctID[acc.id] = acc
		usr.accounts = append(usr.accounts, acc)
		f.generateCounts(acc)
		// Exact size: the renderer's buffer has room to spare.
		acc.json = slices.Clone(f.renderAccount(acc, creds, auth))
		f.generatePending(acc)
	}
}

// generateCounts draws the number of transactions per day and, for accounts
// with a running balance, the balance before each day with transactions.
func (f *Fake) generateCounts(acc *account) {
	if !acc.hasTx {
		return
	}
	lambda := f.lambda
	if f.dense(acc) {
		lambda = f.denseLambda
	}
	days, counts := f.scratchDays[:0], f.scratchN[:0]
	expL := math.Exp(-lambda)
	for d := f.fromDay; d <= f.toDay; d++ {
		r := rng{s: mix(f.key, 0xc0, uint64(acc.idx), uint64(d))}
		c := poisson(&r, lambda, expL)
		if c >= maxPerDay {
			c = maxPerDay - 1
		}
		if c == 0 {
			continue
		}
		days = append(days, int32(d))
		counts = append(counts, uint16(c))
		acc.total += c
	}
	f.scratchDays, f.scratchN = days, counts
	// Exact-size copies: a population of sparse accounts holds no slack.
	acc.days = slices.Clone(days)
	acc.dayN = slices.Clone(counts)
	if len(days) > 0 {
		acc.lo, acc.hi = int(days[0]), int(days[len(days)-1])
	}
	r := rng{s: mix(f.key, 0x0be, uint64(acc.idx))}
	acc.opening = int64(r.intn(500000000)) - 10000000
	if !acc.hasBalance {
		return
	}
	acc.before = make([]int64, len(days))
	sum := int64(0)
	for i, d := range days {
		acc.before[i] = sum
		for k := 0; k < int(acc.dayN[i]); k++ {
			sum += f.baseCents(acc, int(d), k)
		}
	}
	acc.sumAll = sum
}

// dense reports whether acc draws its history at Options.DenseTxPerAccountPerMonth:
// every DenseEvery-th account by global index (the last of each run of DenseEvery).
func (f *Fake) dense(acc *account) bool {
	n := f.opts.DenseEvery
	return n > 0 && acc.idx%n == n-1
}

// baseCount is the number of generated transactions of acc on local day d.
func (acc *account) baseCount(d int) int {
	i, ok := slices.BinarySearch(acc.days, int32(d))
	if !ok {
		return 0
	}
	return int(acc.dayN[i])
}

// balanceBefore is the running balance sum of the generated transactions of acc
// before local day d (hasBalance only).
func (acc *account) balanceBefore(d int) int64 {
	i, _ := slices.BinarySearch(acc.days, int32(d))
	if i < len(acc.before) {
		return acc.before[i]
	}
	return acc.sumAll
}

// poisson draws from a Poisson distribution of mean lambda; expL is
// math.Exp(-lambda), computed once by the caller.
func poisson(r *rng, lambda, expL float64) int {
	if lambda > 30 {
		// normal approximation: sum of 4 uniforms has variance 1/3
		z := (r.float() + r.float() + r.float() + r.float() - 2) * math.Sqrt(3)
		v := int(math.Round(lambda + z*math.Sqrt(lambda)))
		if v < 0 {
			v = 0
		}
		return v
	}
	k, p := 0, 1.0
	for {
		p *= r.float()
		if p <= expL {
			return k
		}
		k++
	}
}

func itoa(i int) string {
	return string(appendInt(nil, int64(i)))
}

func (f *Fake) txRNG(acc *account, day, k int) rng {
	return rng{s: mix(f.key, 0x7a, uint64(acc.idx), uint64(day), uint64(k))}
}

// baseCents is the amount of a generated transaction: the first draws of its
// RNG stream, so that running balances need no full generation.
func (f *Fake) baseCents(acc *account, day, k int) int64 {
	r := f.txRNG(acc, day, k)
	return drawCents(&r)
}

func drawCents(r *rng) int64 {
	u := r.float()
	v := r.next()
	switch {
	case u < 0.04:
		return specialCents[v%uint64(len(specialCents))]
	case u < 0.72: // everyday spending, some whole dollars
		c := int64(v%20000) + 1
		if v>>40%5 == 0 {
			c = c / 100 * 100
		}
		return -c
	case u < 0.80: // larger debits
		return -(int64(v%5000000) + 1)
	case u < 0.97: // credits
		return int64(v%400000) + 1
	default:
		return int64(v%150000000) + 1 // very large credits
	}
}

// txn is one settled transaction, generated or scripted.
type txn struct {
	id                 string
	acc                *account
	dateMs             int64
	createdMs          int64
	updatedMs          int64
	desc               string
	cents              int64
	hasBalance         bool
	balance            int64
	typ                string
	merchant, category int // -1: none
	metaKind           int // 0 absent, 1 {}, 2 populated
	particulars        string
	code, reference    string
	otherAccount       string
	cardSuffix         string
	logo               string
	conv               *conversion
	hash               string
	migrated           string
	xNew               bool
}

type conversion struct {
	cents    int64 // foreign amount
	currency string
	rate     int64 // scaled by 1e6
	feeCents int64 // -1: absent
}

// generate builds the transaction at a base position.
func (f *Fake) generate(acc *account, day, k int) txn {
	r := f.txRNG(acc, day, k)
	t := txn{acc: acc, merchant: -1, category: -1}
	t.cents = drawCents(&r)
	t.id = f.baseID(position{acct: acc.idx, day: day, k: k})
	t.dateMs = f.midnight(day)
	t.createdMs = t.dateMs + 6*3600000 + int64(r.intn(36*3600000))
	t.updatedMs = t.createdMs
	if r.chance(0.2) {
		t.updatedMs += int64(r.intn(7 * 86400000))
	}
	// The generated history is what Akahu knew by the end of its last day: no
	// stamp lies in the future of a run made after it.
	known := f.midnight(f.toDay+1) - 1
	t.createdMs, t.updatedMs = min(t.createdMs, known), min(t.updatedMs, known)
	t.desc = descriptions[r.intn(len(descriptions))]
	switch {
	case r.chance(0.01):
		t.typ = unknownTypes[r.intn(len(unknownTypes))]
	case t.cents < 0:
		t.typ = debitTypes[r.intn(len(debitTypes))]
	default:
		t.typ = creditTypes[r.intn(len(creditTypes))]
	}
	if acc.hasBalance {
		t.hasBalance = true
		bal := acc.opening + acc.balanceBefore(day)
		for j := 0; j <= k; j++ {
			if j == k {
				bal += t.cents
			} else {
				bal += f.baseCents(acc, day, j)
			}
		}
		t.balance = bal
	}
	if t.cents < 0 && r.chance(0.55) {
		t.merchant = r.intn(len(merchants))
		t.category = t.merchant % len(categories)
	} else if r.chance(0.1) {
		t.category = r.intn(len(categories))
	}
	switch m := r.float(); {
	case m < 0.3: // absent
	case m < 0.45:
		t.metaKind = 1
	default:
		t.metaKind = 2
		if r.chance(0.6) {
			t.particulars = "PART" + itoa(r.intn(1000))
		}
		if r.chance(0.5) {
			t.code = "CODE-" + itoa(r.intn(100))
		}
		if r.chance(0.6) {
			t.reference = `Inv "` + itoa(r.intn(99999)) + `"`
		}
		if r.chance(0.4) {
			t.otherAccount = acc.conn.prefix + "-" + pad(r.intn(10000), 4) + "-" + pad(r.intn(10000000), 7) + "-" + pad(r.intn(100), 2)
		}
		if t.typ == "EFTPOS" || t.typ == "CREDIT CARD" || r.chance(0.1) {
			t.cardSuffix = pad(r.intn(10000), 4)
		}
		if t.merchant >= 0 && r.chance(0.7) {
			t.logo = "https://cdn.akahu.nz/merchants/" + merchants[t.merchant].id + ".png"
		}
		if r.chance(0.08) || acc.currency != "NZD" && r.chance(0.5) {
			c := &conversion{currency: foreignCurrencies[r.intn(len(foreignCurrencies))], feeCents: -1}
			c.rate = int64(r.intn(1500000)) + 400000 // 0.4 .. 1.9
			c.cents = t.cents * c.rate / 1000000
			if r.chance(0.5) {
				c.feeCents = int64(r.intn(500))
			}
			t.conv = c
		}
	}
	if r.chance(0.3) {
		t.hash = randID("", 32, r.next())
	}
	if r.chance(0.02) {
		t.migrated = randID(idPrefix, 25, r.next())
	}
	t.xNew = r.chance(0.05)
	return t
}

func pad(v, width int) string {
	b := appendInt(nil, int64(v))
	for len(b) < width {
		b = append([]byte{'0'}, b...)
	}
	return string(b)
}

// pendingTxn is one pending transaction; it has no id.
type pendingTxn struct {
	dateMs, updatedMs int64
	desc, typ         string
	cents             int64
	amountString      bool
	meta              bool
}

func (f *Fake) generatePending(acc *account) {
	if !acc.hasTx {
		return
	}
	for i := 0; i < f.opts.PendingPerAccount; i++ {
		r := rng{s: mix(f.key, 0x9e4d, uint64(acc.idx), uint64(i))}
		p := &pendingTxn{
			dateMs: f.midnight(f.toDay - r.intn(3)),
			desc:   descriptions[r.intn(len(descriptions))],
			typ:    debitTypes[r.intn(len(debitTypes))],
			cents:  -(int64(r.intn(30000)) + 1),
		}
		if i == 0 {
			p.cents = -1150 // the documented "-11.50" case
		}
		p.updatedMs = f.opts.To.UnixMilli() + int64(r.intn(24*3600000))
		p.amountString = i%2 == 0 || r.chance(0.3)
		p.meta = r.chance(0.5)
		acc.pending = append(acc.pending, p)
	}
}
