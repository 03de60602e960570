package parquet

import "errors"

var (
	// ErrUnsupportedType is returned when a column's type has no mapping
	// between Arrow and Parquet in this package: an Arrow type Write cannot
	// encode (including timestamps that are not microseconds in UTC and
	// decimals with a precision above 18), or a Parquet column Read cannot
	// decode (nested, repeated, or an unknown logical type). The error text
	// names the column.
	ErrUnsupportedType = errors.New("unsupported column type")

	// ErrSchemaMismatch is returned by Write when a record's columns do not
	// match the schema given to Write (names, types or nullability).
	ErrSchemaMismatch = errors.New("record does not match schema")

	// ErrInvalidValue is returned by Write for a value that cannot be stored
	// faithfully: a null in a non-nullable column, or a decimal that does not
	// fit its declared precision. Nothing is ever rounded or truncated.
	ErrInvalidValue = errors.New("invalid value")

	// ErrUnknownColumn is returned by Read when a Columns projection names a
	// column the file does not have.
	ErrUnknownColumn = errors.New("unknown column")

	// ErrInvalidFile is returned by Read and ReadMetadata when the bytes are
	// not a readable Parquet file (bad magic, truncated or corrupt footer,
	// undecodable pages).
	ErrInvalidFile = errors.New("invalid parquet file")
)
