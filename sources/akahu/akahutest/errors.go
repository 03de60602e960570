package akahutest

import "errors"

// ErrUnknownTransaction is returned by the scripted changes when no settled
// transaction with the given id is currently served.
var ErrUnknownTransaction = errors.New("akahutest: unknown transaction id")

// ErrUnknownAccount is returned by the scripted changes when the account id is
// not part of the population.
var ErrUnknownAccount = errors.New("akahutest: unknown account id")

// ErrNoPending is returned by SettlePending when the account has no pending
// transaction left to settle.
var ErrNoPending = errors.New("akahutest: no pending transaction to settle")
