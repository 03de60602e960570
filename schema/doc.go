// Package schema owns the warehouse's column contract: the versioned Arrow
// schemas of the transactions, pending, accounts and deletions datasets, and
// the builders that turn Akahu JSON objects (one settled transaction, one
// pending transaction or one account, as served by the API) into Arrow record
// batches.
//
// What the package guarantees:
//
//   - Timestamps are stored as UTC microseconds (timestamp[us, UTC]); any
//     RFC 3339 offset is accepted on input. Sub-microsecond digits are
//     truncated toward the past (Akahu sends milliseconds).
//   - The local posting date (date_local, snapshot_date) is the calendar date
//     in Options.Location, default Pacific/Auckland (time/tzdata is embedded),
//     so a posting at NZ local midnight lands on the right day in both NZST and
//     NZDT.
//   - Money is exact: decimal128(18,4) (Money) and decimal128(18,10) (Rate)
//     parsed from the JSON number's text, never through float64. A value with
//     more fractional digits than the scale is rejected unless the extra digits
//     are zeros; a value beyond 18 digits of precision is ErrOverflow.
//   - Nothing is lost: every field the schema does not name, at any nesting
//     level, is kept in the extra column as JSON text with sorted keys and
//     each value's original text preserved byte-for-byte.
//   - A row is all-or-nothing: an item is decoded into a reusable intermediate
//     first and appended only when it decoded without error.
//
// Tolerances (documented deviations from Akahu's published types): a money
// field sent as a JSON string holding a JSON number ("-11.50") is parsed
// exactly like the number; pending amounts are known to arrive this way. A
// missing description or type becomes "" (the columns are non-null).
//
// Items are read by internal/jsonscan, a strict in-place JSON scanner (valid
// UTF-8 and unique member names required, as with jsontext's defaults); the
// package imports nothing else of this module.
package schema
