package akahutest

import (
	"time"
	_ "time/tzdata" // Pacific/Auckland must exist on every machine
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultSeed                 = 1
	DefaultUsers                = 3
	DefaultAccountsPerUser      = 4
	DefaultTxPerAccountPerMonth = 40
	DefaultPendingPerAccount    = 2
	DefaultPageSize             = 100
	DefaultEmptyPageEvery       = 7
)

// DefaultTo is the default end of the generated history: local midnight of
// 20 November 2026 in Pacific/Auckland. DefaultFrom is two years earlier.
var (
	DefaultTo   = time.Date(2026, 11, 20, 0, 0, 0, 0, auckland)
	DefaultFrom = DefaultTo.AddDate(-2, 0, 0)
)

// auckland is the zone banks post in.
var auckland = mustZone("Pacific/Auckland")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("akahutest: " + err.Error())
	}
	return loc
}

// Options configure the synthetic population and the server's paging.
// Zero values take the Default* constants.
type Options struct {
	// Seed makes the population deterministic: equal options, equal bytes.
	Seed int64
	// Users is the number of users (tokens); AccountsPerUser the accounts of each.
	Users, AccountsPerUser int
	// From and To bound the local posting dates (Pacific/Auckland) of the
	// settled history, both inclusive.
	From, To time.Time
	// TxPerAccountPerMonth is the mean number of settled transactions per
	// month on each account with the TRANSACTIONS attribute. At most 65535
	// transactions are generated per account and day.
	TxPerAccountPerMonth int
	// DenseEvery, when positive, makes every DenseEvery-th account (by global
	// index: the accounts with index i%DenseEvery == DenseEvery-1, users in order,
	// each user's accounts in order) draw its history at DenseTxPerAccountPerMonth
	// instead, so that a fleet population mixes quiet and busy accounts. 0 makes
	// every account alike.
	DenseEvery int
	// DenseTxPerAccountPerMonth is the mean monthly density of the dense
	// accounts; 0 takes TxPerAccountPerMonth.
	DenseTxPerAccountPerMonth int
	// PendingPerAccount is the number of pending transactions per account
	// with TRANSACTIONS. A negative value means none.
	PendingPerAccount int
	// PageSize is the number of settled transactions per page.
	PageSize int
	// EmptyPageEvery makes every n-th page empty with a non-null next cursor.
	// 0 takes DefaultEmptyPageEvery, a negative value disables empty pages,
	// 1 is treated as 2.
	EmptyPageEvery int
	// PageLatency is slept before answering every request (see SetLatency).
	PageLatency time.Duration
	// RefreshDelay is how long after POST /refresh the accounts show it (see
	// SetRefreshDelay); 0 completes a refresh by the next request.
	RefreshDelay time.Duration
	// AppToken is the X-Akahu-Id the server accepts; empty derives one from Seed.
	AppToken string
}

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Users <= 0 {
		o.Users = DefaultUsers
	}
	if o.AccountsPerUser <= 0 {
		o.AccountsPerUser = DefaultAccountsPerUser
	}
	if o.To.IsZero() {
		o.To = DefaultTo
	}
	if o.From.IsZero() {
		o.From = o.To.AddDate(-2, 0, 0)
	}
	if o.TxPerAccountPerMonth <= 0 {
		o.TxPerAccountPerMonth = DefaultTxPerAccountPerMonth
	}
	if o.DenseEvery < 0 {
		o.DenseEvery = 0
	}
	if o.DenseTxPerAccountPerMonth <= 0 {
		o.DenseTxPerAccountPerMonth = o.TxPerAccountPerMonth
	}
	if o.PendingPerAccount == 0 {
		o.PendingPerAccount = DefaultPendingPerAccount
	} else if o.PendingPerAccount < 0 {
		o.PendingPerAccount = 0
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	switch {
	case o.EmptyPageEvery == 0:
		o.EmptyPageEvery = DefaultEmptyPageEvery
	case o.EmptyPageEvery < 0:
		o.EmptyPageEvery = 0
	case o.EmptyPageEvery == 1:
		o.EmptyPageEvery = 2
	}
	return o
}
