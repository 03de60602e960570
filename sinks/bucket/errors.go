package bucket

import "errors"

// ErrNotFound reports that the named object does not exist (Get, Attrs,
// Delete of a missing object).
var ErrNotFound = errors.New("object not found")

// ErrConflict reports that a write or delete precondition failed: the object
// exists although Condition.DoesNotExist was asked for, or its current
// generation differs from Condition.GenerationMatch. Another writer got there
// first; the caller must re-read and decide again, never blindly retry.
var ErrConflict = errors.New("precondition failed")

// ErrPermission reports that the store refused the operation for lack of
// rights (HTTP 401/403, EACCES, EPERM, a read-only file system). Retrying
// does not help.
var ErrPermission = errors.New("permission denied")

// ErrTransient reports a failure that may succeed if retried later (HTTP 429,
// 5xx, timeouts). Implementations have already retried where that is safe.
var ErrTransient = errors.New("transient storage error")

// ErrInvalidName reports an object name or list prefix that is not a
// slash-separated relative key: empty, leading "/", empty, "." or ".."
// segments, backslashes, control characters, invalid UTF-8, or longer than
// MaxNameLen bytes. Implementations may reserve further names (Local reserves
// its lock file and temp-file names).
var ErrInvalidName = errors.New("invalid object name")

// ErrInvalidCondition reports a Condition that cannot be honoured: both
// DoesNotExist and GenerationMatch set, a negative generation, or
// DoesNotExist on Delete.
var ErrInvalidCondition = errors.New("invalid condition")

// ErrChecksum reports that bytes read or written do not match the CRC32C or
// size the store recorded for them: corruption in transit or at rest.
var ErrChecksum = errors.New("checksum mismatch")

// IsNotFound reports whether err is, or wraps, ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is, or wraps, ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsPermission reports whether err is, or wraps, ErrPermission.
func IsPermission(err error) bool { return errors.Is(err, ErrPermission) }

// IsTransient reports whether err is, or wraps, ErrTransient.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// IsInvalidName reports whether err is, or wraps, ErrInvalidName.
func IsInvalidName(err error) bool { return errors.Is(err, ErrInvalidName) }
