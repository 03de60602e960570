package parquet

import (
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	parquetgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// A parquet-go writer's page and column buffers, dictionaries and page compressors
// are most of what writing a small file costs (BenchmarkWriteSmall: a 150-row file
// took 0.64 ms and allocated 529 kB with a new writer, 0.33 ms and 19 kB with a
// reused one), and a fleet's run writes thousands of such files (a month per
// bucket). Write therefore keeps closed writers for reuse, one pool per kind of
// file: the same columns (schema fingerprint and field metadata), codec, page and
// row-group sizes, bloom filter columns, and metadata keys. A reused writer is Reset
// onto the new output and given this file's metadata values under the same keys
// (SetKeyValueMetadata replaces each in place, keeping parquet-go's key order), so
// it writes the bytes a new writer would (TestReusedWriterSameBytes). A writer goes
// back only after it closed its file; one that failed is dropped. Pooled writers go
// with the garbage collector like anything in a sync.Pool.

// reusableWriter is a writer with the encoder that feeds it.
type reusableWriter struct {
	//lint:ignore SA1019 the untyped Writer is what NewWriter returns and Write drives column by column (as before the pool)
	pw  *parquetgo.Writer
	enc encoder
}

// newReusableWriter returns a new writer of files of columns cols written with cfg
// and metadata kv, onto out.
func newReusableWriter(out io.Writer, cols []column, cfg writeConfig, kv map[string]string) *reusableWriter {
	return &reusableWriter{pw: parquetgo.NewWriter(out, writerOptions(cols, cfg, kv)...), enc: encoder{buf: make([]parquetgo.Value, writeChunk)}}
}

// writerKey names a kind of file (see above).
type writerKey struct {
	schema, fieldMeta string
	codec             compress.Codec
	pageBytes         int
	rowGroupRows      int
	bloom, metaKeys   string
}

var writerPools sync.Map // writerKey → *sync.Pool of *reusableWriter

// writerKeyOf returns the pool key of a file of sch written with cfg and metadata
// kv; reusable is false when its writer must not be pooled: a schema without a
// fingerprint, or a codec that cannot be compared (a map key).
func writerKeyOf(sch *arrow.Schema, cfg writeConfig, kv map[string]string) (writerKey, bool) {
	fp := sch.Fingerprint()
	if fp == "" || (cfg.codec != nil && !reflect.TypeOf(cfg.codec).Comparable()) {
		return writerKey{}, false
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return writerKey{schema: fp, fieldMeta: kv[MetadataKeyFieldMetadata], codec: cfg.codec, pageBytes: cfg.pageBytes,
		rowGroupRows: cfg.rowGroupRows, bloom: strings.Join(cfg.bloom, "\x00"), metaKeys: strings.Join(keys, "\x00")}, true
}

// getWriter returns a pooled writer of kind key, or nil.
func getWriter(key writerKey, reusable bool) *reusableWriter {
	if !reusable {
		return nil
	}
	if p, ok := writerPools.Load(key); ok {
		if w, _ := p.(*sync.Pool).Get().(*reusableWriter); w != nil {
			return w
		}
	}
	return nil
}

// putWriter returns w, whose file is closed, to the pool of kind key. It lets go of
// the output w wrote to first, so that the pool holds no caller's buffer.
func putWriter(key writerKey, reusable bool, w *reusableWriter) {
	if !reusable {
		return
	}
	// parquet-go v0.32's Reset clears the path of every column chunk of the last
	// file in place (format.ColumnMetaData.Reset), and those paths share their
	// strings with the writer's columns: the next file would name no column. The
	// chunks are let go of the shared paths first.
	if f := w.pw.File(); f != nil {
		for i := range f.Metadata().RowGroups {
			cols := f.Metadata().RowGroups[i].Columns
			for j := range cols {
				cols[j].MetaData.PathInSchema = nil
			}
		}
	}
	w.pw.Reset(io.Discard)
	p, _ := writerPools.LoadOrStore(key, &sync.Pool{})
	p.(*sync.Pool).Put(w)
}

// fileMetadata is the key-value metadata of a file of sch written with cfg: the
// schema's metadata, the field metadata as JSON under MetadataKeyFieldMetadata, then
// the WithKeyValue pairs, a later one overriding an earlier of the same key.
func fileMetadata(sch *arrow.Schema, cfg writeConfig) map[string]string {
	kv := map[string]string{}
	md := sch.Metadata()
	for i, k := range md.Keys() {
		kv[k] = md.Values()[i]
	}
	if fm := fieldMetadataJSON(sch); fm != "" {
		kv[MetadataKeyFieldMetadata] = fm
	}
	for k, v := range cfg.keyValues {
		kv[k] = v
	}
	return kv
}
