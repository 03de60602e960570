package parquet

import (
	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress"
)

const (
	// DefaultRowGroupRows is the number of rows per row group when
	// WithRowGroupRows is not given.
	//
	// 128Ki rows of a ~30-column transactions table is roughly 30-60 MB
	// uncompressed and a few MB compressed per row group: large enough that
	// column chunks compress well and readers do few seeks, small enough that
	// the writer's buffered row group stays well inside the pipeline's memory
	// budget, and close to DuckDB's own 122,880-row groups, its unit of scan
	// parallelism. Spark and BigQuery split files on row-group boundaries too,
	// so files of a few hundred thousand rows still give them several splits.
	DefaultRowGroupRows = 128 * 1024

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
	// filter when present in the schema and WithBloomFilters is not given:
	// none. A filter on "id" (WithBloomFilters("id")) speeds up point
	// lookups in DuckDB/Spark but costs about 15-25% of encoding time for
	// the transactions table, and Arrow's writer, the speed reference,
	// writes none.
	DefaultBloomFilterColumns []string
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
	columns []string
}

// Columns projects Read onto the named columns, returned in the order given
// (duplicates are ignored); only their pages are decoded. A name the file
// does not have makes Read fail with ErrUnknownColumn.
func Columns(names ...string) ReadOption {
	return func(c *readConfig) { c.columns = append(c.columns, names...) }
}
