package bucket

import (
	"context"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxNameLen is the longest object name, in bytes, that ValidateName accepts
// (the Google Cloud Storage limit).
const MaxNameLen = 1024

// Attrs describes one stored version of an object.
type Attrs struct {
	// Name is the object's name relative to the bucket (and its prefix).
	Name string
	// Size is the length of the object's bytes.
	Size int64
	// Generation identifies this version; it is strictly increasing per name
	// and is what Condition.GenerationMatch compares against.
	Generation int64
	// CRC32C is the Castagnoli CRC-32 of the object's bytes.
	CRC32C uint32
	// Updated is when this version was written.
	Updated time.Time
}

// Condition is a precondition on a write or delete. The zero value is
// unconditional.
type Condition struct {
	// DoesNotExist makes a Put fail with ErrConflict if the object exists.
	DoesNotExist bool
	// GenerationMatch, when non-zero, makes a Put or Delete fail with
	// ErrConflict unless the object's current generation equals it (a missing
	// object has no generation, so it fails too).
	GenerationMatch int64
}

// IsZero reports whether c is unconditional.
func (c Condition) IsZero() bool { return !c.DoesNotExist && c.GenerationMatch == 0 }

// String renders c for error messages.
func (c Condition) String() string {
	switch {
	case c.DoesNotExist && c.GenerationMatch != 0:
		return fmt.Sprintf("if-not-exists and if-generation=%d", c.GenerationMatch)
	case c.DoesNotExist:
		return "if-not-exists"
	case c.GenerationMatch != 0:
		return fmt.Sprintf("if-generation=%d", c.GenerationMatch)
	}
	return "unconditional"
}

// Validate reports ErrInvalidCondition for contradictory or out-of-range
// conditions.
func (c Condition) Validate() error {
	if c.DoesNotExist && c.GenerationMatch != 0 {
		return fmt.Errorf("%w: %s", ErrInvalidCondition, c)
	}
	if c.GenerationMatch < 0 {
		return fmt.Errorf("%w: negative generation %d", ErrInvalidCondition, c.GenerationMatch)
	}
	return nil
}

// Bucket stores whole objects by name. It is small on purpose: the pipeline
// writes each Parquet file and manifest as one object, reads them whole, and
// reads byte ranges of a file (a Parquet footer and column chunks) when it
// needs only some of its columns.
//
// Names are slash-separated relative keys ("transactions/month=2024-01/part-000.parquet")
// checked by ValidateName; an invalid name fails with ErrInvalidName before
// any I/O. Every error names the object (and where the bucket is) and never
// contains credentials; its class is asked with IsNotFound, IsConflict,
// IsPermission and IsTransient.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Bucket interface {
	// Get returns the object's bytes and the attributes of exactly the
	// version those bytes belong to. A missing object fails with
	// ErrNotFound. The returned slice belongs to the caller.
	Get(ctx context.Context, name string) ([]byte, Attrs, error)

	// GetRange returns up to length bytes of the object starting at byte
	// offset: fewer when the object ends sooner (a range that starts at or
	// past the end returns no bytes, not an error). With generation 0 it reads
	// the current version; with a non-zero generation it reads that version
	// only while it is still the current one, and fails with ErrConflict
	// (errors.Is, IsConflict) once another version replaced it, so that
	// several ranged reads of one version never mix two versions' bytes. A
	// missing object fails with ErrNotFound. A negative offset or length is an
	// error of no class. The bytes are not checked against the object's
	// CRC32C (it covers the whole object); the returned slice belongs to the
	// caller.
	GetRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error)

	// Attrs returns the current version's attributes without its bytes. A
	// missing object fails with ErrNotFound.
	Attrs(ctx context.Context, name string) (Attrs, error)

	// Put stores data as the new version of the object and returns its
	// attributes: a Generation strictly greater than any earlier one of that
	// name, the Size and the CRC32C (Castagnoli) of data.
	//
	// Put is atomic: a concurrent or later reader sees the old bytes or the
	// new bytes, never a mixture or a prefix. A failed Put leaves the old
	// version in place, except that one failing with ErrTransient, or
	// interrupted (its context ended, its process killed) after it sent the
	// bytes, may have stored the new version whole. An unconditional Put is
	// idempotent: repeating it with the same bytes leaves the same content
	// and is not an error.
	//
	// cond makes it a compare-and-swap: with DoesNotExist it fails with
	// ErrConflict if the object exists; with GenerationMatch g it fails with
	// ErrConflict unless the current generation is g. Of several writers
	// racing with the same condition, exactly one succeeds, even if they
	// write the same bytes. An implementation that sends a write again after
	// its answer was lost recognises its own earlier write (not merely equal
	// bytes) and reports success. Put does not keep data after it returns.
	Put(ctx context.Context, name string, data []byte, cond Condition) (Attrs, error)

	// Delete removes the object. A missing object fails with ErrNotFound
	// (but a delete sent again after its answer was lost, that finds the
	// object gone, has succeeded).
	// With cond.GenerationMatch g it fails with ErrConflict, removing
	// nothing, unless the current generation is g. cond.DoesNotExist is
	// meaningless here and fails with ErrInvalidCondition.
	Delete(ctx context.Context, name string, cond Condition) error

	// List returns the attributes of every object whose name starts with
	// prefix (a plain string prefix, not only a directory: "" lists all),
	// recursively, sorted by name. It never shows an implementation's
	// temporary or lock files. An empty result is not an error.
	List(ctx context.Context, prefix string) ([]Attrs, error)

	// ListFrom is List restricted to the names at or after start in byte order
	// (GCS's startOffset): the newest end of a series whose names sort by time,
	// without reading the rest. start "" lists like List; a start that sorts
	// after every name under prefix lists nothing. start need not be an object's
	// name nor begin with prefix.
	ListFrom(ctx context.Context, prefix, start string) ([]Attrs, error)

	// String says where the bucket is ("file:///data/out", "gs://b/p"), for
	// messages. It never contains credentials.
	String() string
}

// TempCleaner is implemented by a Bucket whose writers leave temporary files
// behind when they crash (Local: a Put writes a temp file, then renames it).
// CleanTemp removes those last modified more than olderThan ago and returns
// their names. It never removes the temp file of a Put in flight, in this
// process or another, and never touches an object; when it cannot tell that
// no write is in flight it removes nothing and returns no error, leaving the
// files for a later call. A bucket without temporary files (GCS, Memory) does
// not implement it.
type TempCleaner interface {
	CleanTemp(ctx context.Context, olderThan time.Duration) (removed []string, err error)
}

var _ TempCleaner = (*Local)(nil)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the Castagnoli CRC-32 of data, the checksum Attrs carry and
// Google Cloud Storage computes.
func CRC32C(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// CRC32CTable is the Castagnoli table, for callers that hash incrementally
// with crc32.Update.
func CRC32CTable() *crc32.Table { return castagnoli }

// CheckRange reports an error (of no class) for a negative offset, length or
// generation passed to GetRange. Exported so that every implementation
// rejects the same ranges with the same words.
func CheckRange(generation, offset, length int64) error {
	switch {
	case offset < 0:
		return fmt.Errorf("negative offset %d", offset)
	case length < 0:
		return fmt.Errorf("negative length %d", length)
	case generation < 0:
		return fmt.Errorf("negative generation %d", generation)
	}
	return nil
}

// StaleGeneration returns the ErrConflict-wrapping error GetRange reports
// when the generation asked for is no longer the current one (current).
func StaleGeneration(want, current int64) error {
	return fmt.Errorf("%w: generation %d is no longer current (current is %d)", ErrConflict, want, current)
}

// ValidateName reports ErrInvalidName (wrapped, quoting name) unless name is
// a slash-separated relative key: non-empty, at most MaxNameLen bytes, valid
// UTF-8 without control characters or backslashes, no leading or trailing
// "/", and no empty, "." or ".." segments.
func ValidateName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, reason)
	}
	return nil
}

// ValidatePrefix reports ErrInvalidName unless prefix is "" or a valid name
// optionally followed by one "/" (a List prefix may end inside a segment,
// as in "transactions/month=2024-").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if reason := nameProblem(p); reason != "" {
		return fmt.Errorf("%w: prefix %q: %s", ErrInvalidName, prefix, reason)
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case strings.HasPrefix(name, "/"):
		return "leading slash"
	case strings.ContainsRune(name, '\\'):
		return "backslash"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "control character"
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return "empty segment"
		case ".", "..":
			return "dot segment"
		}
	}
	return ""
}
