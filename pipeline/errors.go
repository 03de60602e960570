package pipeline

import "errors"

// This file holds the package's sentinel errors.

var (
	// ErrConfig reports an invalid run configuration (flags, dates, tokens file).
	ErrConfig = errors.New("invalid configuration")
	// ErrLocked reports that another live run holds the dataset lock of this shard.
	ErrLocked = errors.New("dataset is locked by another run")
	// ErrLockLost reports a run that stopped writing because it could no longer refresh
	// its lock, or another run took it over; nothing it had not committed is visible.
	ErrLockLost = errors.New("dataset lock lost")
	// ErrDatasetMismatch reports a run whose settings disagree with _dataset.json
	// (time zone, bucket count or layout version).
	ErrDatasetMismatch = errors.New("dataset settings differ")
	// ErrCorrupt reports an object of the dataset that cannot be read back.
	ErrCorrupt = errors.New("dataset object is corrupt")
	// ErrBadResponse reports an Akahu response that breaks the API contract in a way the
	// client cannot see (a transaction of another account, or dated outside the window).
	ErrBadResponse = errors.New("bad response from Akahu")
	// ErrCommitUnknown reports a run whose manifest write failed ambiguously (its
	// answer was lost) and whose manifest could not be read back either: the run may
	// or may not have committed. The next run finds out and completes either way.
	ErrCommitUnknown = errors.New("whether the run committed is unknown")
	// ErrUserMismatch reports a user token whose Akahu user is not the one the
	// operator gave for it (Config.UserIDs): the token is not extracted.
	ErrUserMismatch = errors.New("user token belongs to another user than the one given")
	// ErrPartial reports a run that committed but in which some users or accounts failed
	// in a way a later run may fix (5xx, timeouts, bad responses), in which Akahu refused
	// every user, or (with Config.FailOnRevoked) in which any user was refused. A user
	// refused alone (a revoked or forbidden token) is otherwise routine: reported in the
	// manifest's users, not an error.
	ErrPartial = errors.New("some accounts failed")
	// ErrAppTokenRefused reports a run in which Akahu answered 403 to every user and
	// resolved none: the app token (X-Akahu-Id) is wrong or rotated. Nothing is written
	// and nothing is purged.
	ErrAppTokenRefused = errors.New("the app token was refused by Akahu")
)
