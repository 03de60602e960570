package parquet

import (
	"github.com/apache/arrow/go/v17/arrow"
	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress"
)

const (
	// DefaultRowGroupRows is the number of rows per row group when
	// WithRowGroupRows is not given.
	//
	// A row group is the unit readers skip: DuckDB, Spark and BigQuery test
	// each row group's min/max statistics (and bloom filters) against a
	// filter and read only the row groups that may match. Partitions are
	// sorted by account, posting time and id, so 16Ki rows hold a few hundred
	// accounts' month and a query on one account, user or id reads a few
	// row groups per file instead of whole files (a month partition of
	// 20,000 users in 16 buckets is ~150k rows: 10 row groups). Smaller
	// groups buy little more: every reader opens every footer, which grows
	// by one column chunk's metadata per column and row group. Column
	// chunks of 16Ki rows still compress within 1% of 128Ki ones, and the
	// writer buffers less.
	DefaultRowGroupRows = 16 * 1024

	// DefaultPageBytes is the target uncompressed size of a data page. Pages
	// are the unit of the page index (min/max per page) that lets engines
	// skip data inside a row group.
	DefaultPageBytes = 256 * 1024

	// CreatedBy is the fixed created_by string written in every file footer.
	// It contains no build or clock information so output is reproducible.
	CreatedBy = "akahu-parquet version 1.0.0"

	// MetadataKeyFieldMetadata is the Parquet key-value metadata key under
	// which Write stores Arrow field-level metadata (as JSON: column name to
	// key/value map) so Read can restore it. Read strips it from the returned
	// schema-level metadata.
	MetadataKeyFieldMetadata = "akahu_parquet.field_metadata"

	// FieldMetadataDictionary is the Arrow field metadata key that asks for
	// dictionary encoding of a column when its value is "true".
	FieldMetadataDictionary = "parquet.dictionary"
)

var (
	// DefaultCompression is the codec used when WithCompression is not
	// given: zstd at its default level.
	DefaultCompression compress.Codec = newPageZstd(kzstd.SpeedDefault)

	// ZstdFastest is zstd at its fastest level: about twice the encoding
	// speed of DefaultCompression for slightly larger files.
	ZstdFastest compress.Codec = newPageZstd(kzstd.SpeedFastest)

	// DefaultBloomFilterColumns are the columns that get a split-block bloom
	// filter in every row group when present in the schema and
	// WithBloomFilters is not given: the keys analysts look rows up by.
	// Statistics cannot skip a row group for an id (ids are random, so every
	// group's min/max spans nearly all of them), nor for a user (rows are
	// sorted by account); a bloom filter rejects a row group without the
	// value at the cost of reading ~1.25 bytes per row of filter instead of
	// the column. user_id and account_id are dictionary encoded, so their
	// filters hold one entry per distinct value and are built from the
	// dictionary. The filters cost a few percent of encoding time.
	DefaultBloomFilterColumns = []string{"id", "user_id", "account_id"}
)

// DefaultBloomFilterBitsPerValue sizes bloom filters: 10 bits per distinct
// value gives about a 1% false-positive rate.
const DefaultBloomFilterBitsPerValue = 10

// Option configures Write.
type Option func(*writeConfig)

type writeConfig struct {
	codec        compress.Codec
	rowGroupRows int
	pageBytes    int
	keyValues    map[string]string
	bloom        []string
}

func newWriteConfig(opts []Option) writeConfig {
	c := writeConfig{
		codec:        DefaultCompression,
		rowGroupRows: DefaultRowGroupRows,
		pageBytes:    DefaultPageBytes,
		bloom:        DefaultBloomFilterColumns,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithCompression sets the codec of every column chunk, for example
// DefaultCompression, ZstdFastest, or &snappy.Codec{} from parquet-go's
// compress packages. A nil codec writes uncompressed pages.
func WithCompression(codec compress.Codec) Option {
	return func(c *writeConfig) { c.codec = codec }
}

// WithRowGroupRows sets the maximum number of rows per row group; values
// below 1 select DefaultRowGroupRows.
func WithRowGroupRows(n int) Option {
	return func(c *writeConfig) {
		if n < 1 {
			n = DefaultRowGroupRows
		}
		c.rowGroupRows = n
	}
}

// WithPageBytes sets the target uncompressed data page size; values below 1
// select DefaultPageBytes.
func WithPageBytes(n int) Option {
	return func(c *writeConfig) {
		if n < 1 {
			n = DefaultPageBytes
		}
		c.pageBytes = n
	}
}

// WithKeyValue adds a key-value pair to the file's metadata. It overrides a
// pair of the same key taken from the Arrow schema's metadata.
func WithKeyValue(key, value string) Option {
	return func(c *writeConfig) {
		m := make(map[string]string, len(c.keyValues)+1)
		for k, v := range c.keyValues {
			m[k] = v
		}
		m[key] = value
		c.keyValues = m
	}
}

// WithBloomFilters replaces DefaultBloomFilterColumns: a split-block bloom
// filter is written for each named column present in the schema. With no
// names, no bloom filter is written.
func WithBloomFilters(columns ...string) Option {
	return func(c *writeConfig) { c.bloom = append([]string(nil), columns...) }
}

// ReadOption configures Read.
type ReadOption func(*readConfig)

type readConfig struct {
	columns    []string
	fileSchema **arrow.Schema
}

// FileSchema makes Read and ReadRanged store in *dst the schema of all the file's
// columns, in file order, whatever Columns selects: to check which columns a file has
// while decoding only some (a ranged read still reads only the selected chunks). A
// column of a type Read does not support fails the read with ErrUnsupportedType, as
// reading it would.
func FileSchema(dst **arrow.Schema) ReadOption {
	return func(c *readConfig) { c.fileSchema = dst }
}

// Columns projects Read onto the named columns, returned in the order given
// (duplicates are ignored); only their pages are decoded. A name the file
// does not have makes Read fail with ErrUnknownColumn.
func Columns(names ...string) ReadOption {
	return func(c *readConfig) { c.columns = append(c.columns, names...) }
}
