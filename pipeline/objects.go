package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// This file holds raw object I/O: reading partitions and objects (checking this run's
// own writes), encoding and writing Parquet conditionally, deleting, and the in-flight
// marker written before the first of them.

// readPartition reads a transactions object (all columns, or the named ones).
// A missing object is an empty partition.
func (r *runner) readPartition(ctx context.Context, key partKey, cols []string) ([]arrow.Record, *bucket.Attrs, error) {
	return r.readObject(ctx, txObject(key), cols)
}

func (r *runner) readObject(ctx context.Context, name string, cols []string) ([]arrow.Record, *bucket.Attrs, error) {
	data, attrs, err := r.getObject(ctx, name)
	if err != nil || attrs == nil {
		return nil, nil, err
	}
	recs, err := r.decodeObject(name, data, cols)
	if err != nil {
		return nil, nil, err
	}
	return recs, attrs, nil
}

// getObject returns an object's bytes and attributes (nil when there is none), once
// checkOwn has vouched for what it read.
func (r *runner) getObject(ctx context.Context, name string) ([]byte, *bucket.Attrs, error) {
	data, attrs, err := r.b.Get(ctx, name)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, nil, r.checkOwn(name, nil)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := r.checkOwn(name, &attrs); err != nil {
		return nil, nil, err
	}
	return data, &attrs, nil
}

// decodeObject decodes the bytes getObject read of name: its columns cols, or all of
// them checked against the schema.
func (r *runner) decodeObject(name string, data []byte, cols []string) ([]arrow.Record, error) {
	var opts []parquetsink.ReadOption
	if len(cols) > 0 {
		opts = append(opts, parquetsink.Columns(cols...))
	}
	_, recs, err := parquetsink.Read(bytes.NewReader(data), int64(len(data)), r.mem, opts...)
	if err == nil && len(cols) == 0 {
		err = checkSchema(name, recs)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	return recs, nil
}

// readIDs reads the id column of the transactions object a lists, by range: its
// footer and id chunks, of generation a.Generation. It returns that generation, or,
// when the object changed since it was listed, the one it read whole instead.
func (r *runner) readIDs(ctx context.Context, key partKey, a bucket.Attrs) ([]arrow.Record, int64, error) {
	if err := r.checkOwn(a.Name, &a); err != nil {
		return nil, 0, err
	}
	fetch := func(off, n int64) ([]byte, error) { return r.b.GetRange(ctx, a.Name, a.Generation, off, n) }
	_, recs, err := parquetsink.ReadRanged(fetch, a.Size, r.mem, parquetsink.Columns("id"))
	switch {
	case err == nil:
		return recs, a.Generation, nil
	case errors.Is(err, bucket.ErrConflict), errors.Is(err, bucket.ErrNotFound):
		// Replaced or removed since the listing: read what is there now.
		recs, attrs, err := r.readPartition(ctx, key, []string{"id"})
		if err != nil {
			return nil, 0, err
		}
		var gen int64
		if attrs != nil {
			gen = attrs.Generation
		}
		return recs, gen, nil
	case errors.Is(err, parquetsink.ErrInvalidFile), errors.Is(err, parquetsink.ErrUnknownColumn), errors.Is(err, parquetsink.ErrUnsupportedType):
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, a.Name, err)
	}
	return nil, 0, fmt.Errorf("read ids of %s: %w", a.Name, err)
}

// readCounter counts the reads made through it (the run's bucket, under the lease
// guard and the write hook).
type readCounter struct {
	bucket.Bucket
	objects, ranges, bytes atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	data, a, err := c.Bucket.Get(ctx, name)
	c.objects.Add(1)
	c.bytes.Add(int64(len(data)))
	return data, a, err
}

func (c *readCounter) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	data, err := c.Bucket.GetRange(ctx, name, gen, off, n)
	c.ranges.Add(1)
	c.bytes.Add(int64(len(data)))
	return data, err
}

// CleanTemp implements bucket.TempCleaner when the counted bucket does.
func (c *readCounter) CleanTemp(ctx context.Context, olderThan time.Duration) ([]string, error) {
	if tc, ok := c.Bucket.(bucket.TempCleaner); ok {
		return tc.CleanTemp(ctx, olderThan)
	}
	return nil, nil
}

func (c *readCounter) stats() ReadStats {
	return ReadStats{Objects: c.objects.Load(), Ranges: c.ranges.Load(), Bytes: c.bytes.Load()}
}

// checkOwn fails when an object this run wrote earlier is no longer what it left
// (attrs nil: the object is absent): another writer changed it, and merging on top of
// its content would hide that.
func (r *runner) checkOwn(name string, attrs *bucket.Attrs) error {
	r.mu.Lock()
	gen, ok := r.wrote[name]
	r.mu.Unlock()
	var got int64
	if attrs != nil {
		got = attrs.Generation
	}
	if ok && got != gen {
		return fmt.Errorf("read %s: this run left generation %d, found %d (is another run writing this dataset?): %w", name, gen, got, bucket.ErrConflict)
	}
	return nil
}

// recordWrite notes one of this run's writes in the manifest: one entry per object,
// with the generation before the run and the one the run left. r.mu must be held.
func (r *runner) recordWrite(ow ObjectWrite) {
	if r.wrote == nil {
		r.wrote, r.objIndex = map[string]int64{}, map[string]int{}
	}
	r.wrote[ow.Path] = ow.Generation
	if i, ok := r.objIndex[ow.Path]; ok {
		ow.PreviousGeneration = r.m.Objects[i].PreviousGeneration
		r.m.Objects[i] = ow
		return
	}
	r.objIndex[ow.Path] = len(r.m.Objects)
	r.m.Objects = append(r.m.Objects, ow)
}

// writeTx encodes rows as a transactions partition, with their day digests in the
// footer (digests.go), and writes it.
func (r *runner) writeTx(ctx context.Context, key partKey, t *table, rows []rowRef, prev *bucket.Attrs) error {
	write, _, err := r.encodeTx(key, t, rows, prev)
	if err != nil {
		return err
	}
	return write(ctx)
}

// encodeTx encodes rows as a transactions partition, with their day digests in the
// footer (digests.go), and returns the write of the object (its delete when rows are
// none), which no longer needs t, and the bytes it holds.
func (r *runner) encodeTx(key partKey, t *table, rows []rowRef, prev *bucket.Attrs) (write func(context.Context) error, size int64, err error) {
	name := txObject(key)
	if len(rows) == 0 {
		return func(ctx context.Context) error { return r.deleteObject(ctx, "transactions", name, prev) }, 0, nil
	}
	rec, err := take(r.mem, r.txSch, t, rows)
	if err != nil {
		return nil, 0, fmt.Errorf("build %s: %w", name, err)
	}
	defer rec.Release()
	var opts []parquetsink.Option
	if d, ok := digestRows(r.cols, t, rows, key.month); ok {
		opts = append(opts, parquetsink.WithKeyValue(digestsKey, d.String()))
	}
	data, n, err := encodeParquet(r.txSch, []arrow.Record{rec}, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s: %w", name, err)
	}
	return func(ctx context.Context) error { return r.putObject(ctx, "transactions", name, data, n, prev) }, int64(len(data)), nil
}

// writeRecords encodes records as Parquet and writes the object unless its bytes are
// already there.
func (r *runner) writeRecords(ctx context.Context, kind, name string, sch *arrow.Schema, recs []arrow.Record, prev *bucket.Attrs) error {
	data, rows, err := encodeParquet(sch, recs)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return r.putObject(ctx, kind, name, data, rows, prev)
}

// encodeParquet encodes records with the sink's defaults and opts (deterministic bytes),
// compressed with zstd at its fastest level (dataCodec).
func encodeParquet(sch *arrow.Schema, recs []arrow.Record, opts ...parquetsink.Option) ([]byte, int64, error) {
	var buf bytes.Buffer
	info, err := parquetsink.Write(&buf, sch, recs, append([]parquetsink.Option{parquetsink.WithCompression(dataCodec)}, opts...)...)
	if err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), info.Rows, nil
}

// dataCodec compresses every object's pages: zstd at its fastest level. zstd's
// default level spent about twice the CPU (a tenth of a dense backfill's pipeline
// CPU, the largest single cost after JSON decoding) for files about 3% smaller.
var dataCodec = parquetsink.ZstdFastest

// readParquet decodes a whole Parquet object.
func readParquet(data []byte, mem memory.Allocator) (*arrow.Schema, []arrow.Record, error) {
	return parquetsink.Read(bytes.NewReader(data), int64(len(data)), mem)
}

// checkSchema rejects a transactions object whose columns are not this tool's
// (a file of a newer schema version, or a foreign file): merging it would lose columns.
func checkSchema(name string, recs []arrow.Record) error {
	if len(recs) == 0 || !strings.HasPrefix(name, txPrefix) {
		return nil
	}
	return checkTxSchema(recs[0].Schema())
}

// checkTxSchema rejects the schema of a transactions object whose columns are not
// this tool's.
func checkTxSchema(got *arrow.Schema) error {
	want := schema.Transactions()
	if len(got.Fields()) != len(want.Fields()) {
		return fmt.Errorf("%d columns, this tool writes %d (schema version %d)", len(got.Fields()), len(want.Fields()), schema.Version)
	}
	for i, f := range want.Fields() {
		if g := got.Field(i); g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	return nil
}

// putObject writes one data object, conditional on the generation that was read
// (or on its absence), and records it in the manifest.
func (r *runner) putObject(ctx context.Context, kind, name string, data []byte, rows int64, prev *bucket.Attrs) error {
	crc := bucket.CRC32C(data)
	if prev != nil && prev.CRC32C == crc && prev.Size == int64(len(data)) {
		r.mu.Lock()
		r.m.Uploads.Skipped++
		r.mu.Unlock()
		r.adopt(kind, name, prev, rows)
		return nil
	}
	if err := r.ensureMarker(ctx); err != nil {
		return err
	}
	cond := bucket.Condition{DoesNotExist: true}
	var prevGen int64
	if prev != nil {
		cond = bucket.Condition{GenerationMatch: prev.Generation}
		prevGen = prev.Generation
	}
	attrs, err := r.b.Put(ctx, name, data, cond)
	if err != nil {
		if errors.Is(err, bucket.ErrConflict) {
			return fmt.Errorf("write %s: another writer changed it since generation %d (is another run writing this dataset?): %w", name, prevGen, err)
		}
		return fmt.Errorf("write %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m.Uploads.Objects++
	r.m.Uploads.Bytes += int64(len(data))
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "put", Bytes: int64(len(data)), Rows: rows,
		CRC32C: crc, Generation: attrs.Generation, PreviousGeneration: prevGen})
	return nil
}

// adopt records, while recovering crashed runs, an object whose bytes are already what
// this run would write: they may be a crashed run's, and Verify trusts only bytes a
// committed manifest records.
func (r *runner) adopt(kind, name string, prev *bucket.Attrs, rows int64) {
	if prev == nil || len(r.crashed) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.objIndex[name]; ok {
		return // this run wrote it, and its entry vouches for these bytes
	}
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "adopt", Bytes: prev.Size, Rows: rows,
		CRC32C: prev.CRC32C, Generation: prev.Generation, PreviousGeneration: prev.Generation})
}

func (r *runner) deleteObject(ctx context.Context, kind, name string, prev *bucket.Attrs) error {
	if prev == nil {
		return nil
	}
	if err := r.ensureMarker(ctx); err != nil {
		return err
	}
	if err := r.b.Delete(ctx, name, bucket.Condition{GenerationMatch: prev.Generation}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordWrite(ObjectWrite{Path: name, Kind: kind, Op: "delete", PreviousGeneration: prev.Generation})
	return nil
}

// ensureMarker writes the in-flight marker before the run's first data write.
func (r *runner) ensureMarker(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.marker {
		return nil
	}
	mk := marker{RunID: r.runID, Shard: r.cfg.Shard, Shards: r.cfg.Shards, StartedAt: r.started, Ranges: r.plannedRanges()}
	data, _ := json.Marshal(mk)
	if _, err := r.b.Put(ctx, inflightObject(r.runID), data, bucket.Condition{DoesNotExist: true}); err != nil {
		return fmt.Errorf("write in-flight marker %s: %w", inflightObject(r.runID), err)
	}
	r.marker = true
	return nil
}

// plannedRanges is the marker's compact coverage: per run of dates, the buckets the
// run's windows cover over it.
func (r *runner) plannedRanges() []MarkerRange {
	perBucket := map[int][]span{}
	for _, a := range r.accounts {
		for _, run := range a.months {
			perBucket[a.bucket] = append(perBucket[a.bucket], span{run.from.first(), run.to.last()})
		}
	}
	bySpan := map[span][]int{}
	for bk, spans := range perBucket {
		for _, s := range joinSpans(spans) {
			bySpan[s] = append(bySpan[s], bk)
		}
	}
	out := []MarkerRange{}
	for s, bks := range bySpan {
		sort.Ints(bks)
		out = append(out, MarkerRange{From: s.from.String(), To: s.to.String(), Buckets: bks})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].From < out[j].From || (out[i].From == out[j].From && out[i].To < out[j].To)
	})
	return out
}
