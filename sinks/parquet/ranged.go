package parquet

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	parquetgo "github.com/parquet-go/parquet-go"
)

// This file holds ReadRanged: decoding some columns of a file that is read by byte
// range (a footer and column chunks) instead of whole.

// RangeFunc reads length bytes at offset of a file. It returns fewer only where the
// file ends. An error it returns is ReadRanged's error (wrapped), not ErrInvalidFile.
type RangeFunc func(offset, length int64) ([]byte, error)

// TailBytes is how much of a file's end ReadRanged reads first: enough for the footer
// of a file of up to three row groups of the warehouse's transactions schema (about
// 1 KiB plus 1.8 KiB per row group), so that one read usually brings all of it.
const TailBytes = 8 << 10

// ReadRanged is Read for a file of size bytes that fetch reads by byte range, for
// reading a few columns without the rest of the file: it reads the last TailBytes
// (the whole file when smaller), then the rest of the footer if the footer is longer,
// then, for each row group, the chunks of the selected columns (Columns), one read per
// run of adjacent chunks. It reads nothing else: not the other columns, not the magic
// bytes at the start (the footer's are checked), page indexes or bloom filters. Reads
// the decoder makes outside what was loaded (a file whose chunks overlap their
// declared ranges) are fetched as they come, so a malformed file costs requests but is
// still read correctly or rejected with ErrInvalidFile.
//
// The records and errors are Read's, except that a failure of fetch is returned
// wrapped as it is (its class kept), whatever the decoder made of the missing bytes.
func ReadRanged(fetch RangeFunc, size int64, mem memory.Allocator, opts ...ReadOption) (*arrow.Schema, []arrow.Record, error) {
	if fetch == nil || size < 0 {
		return nil, nil, fmt.Errorf("parquet: no input: %w", ErrInvalidFile)
	}
	rr := &rangeReader{fetch: fetch, size: size}
	if err := rr.loadTail(); err != nil {
		return nil, nil, fmt.Errorf("parquet: reading the footer: %w", err)
	}
	sch, recs, err := read(rr, rr, size, mem, opts)
	if ferr := rr.failure(); ferr != nil {
		for _, rec := range recs {
			rec.Release()
		}
		return nil, nil, fmt.Errorf("parquet: ranged read: %w", ferr)
	}
	return sch, recs, err
}

// byteRange is [off, off+n) of a file.
type byteRange struct{ off, n int64 }

func (b byteRange) end() int64 { return b.off + b.n }

// segment is bytes of a file loaded at off.
type segment struct {
	off  int64
	data []byte
}

// rangeReader is an io.ReaderAt over the segments of a file loaded by range; a read
// outside them is fetched (exactly what it asks for) and kept.
type rangeReader struct {
	fetch RangeFunc
	size  int64

	mu   sync.Mutex
	segs []segment
	err  error // the first failure of fetch
}

func (r *rangeReader) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// get fetches a range (clipped to the file) and keeps it.
func (r *rangeReader) get(br byteRange) error {
	br.n = max(0, min(br.n, r.size-br.off))
	if br.n == 0 {
		return nil
	}
	data, err := r.fetch(br.off, br.n)
	if err == nil && int64(len(data)) != br.n {
		err = fmt.Errorf("%d bytes at %d of a %d-byte file gave %d: %w", br.n, br.off, r.size, len(data), io.ErrUnexpectedEOF)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return err
	}
	r.segs = append(r.segs, segment{br.off, data})
	return nil
}

// loadTail reads the end of the file, and the rest of the footer if it is longer.
func (r *rangeReader) loadTail() error {
	tail := byteRange{max(0, r.size-TailBytes), min(r.size, TailBytes)}
	if err := r.get(tail); err != nil {
		return err
	}
	if tail.n < 8 {
		return nil // too short: Read reports it
	}
	b := r.segs[0].data[tail.n-8:]
	footer := int64(b[0]) | int64(b[1])<<8 | int64(b[2])<<16 | int64(b[3])<<24
	start := r.size - 8 - footer
	if footer > r.size-12 || start >= tail.off {
		return nil // in the tail already, or impossible: Read reports that
	}
	// One segment for the whole footer, so that one ReadAt finds all of it.
	rest := byteRange{start, tail.off - start}
	if err := r.get(rest); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.segs = []segment{{start, append(r.segs[1].data, r.segs[0].data...)}}
	return nil
}

// load replaces every segment but the footer's with the ranges given, adjacent or
// overlapping ones fetched in one read.
func (r *rangeReader) load(ranges []byteRange) error {
	r.mu.Lock()
	r.segs = r.segs[:min(len(r.segs), 1)] // the tail (with the footer) stays
	r.mu.Unlock()
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].off < ranges[j].off })
	var merged []byteRange
	for _, br := range ranges {
		if k := len(merged) - 1; k >= 0 && br.off <= merged[k].end() {
			merged[k].n = max(merged[k].end(), br.end()) - merged[k].off
			continue
		}
		merged = append(merged, br)
	}
	for _, br := range merged {
		if r.covered(br) {
			continue
		}
		if err := r.get(br); err != nil {
			return err
		}
	}
	return nil
}

// covered reports whether one segment holds all of br.
func (r *rangeReader) covered(br byteRange) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.segs {
		if s.off <= br.off && br.end() <= s.off+int64(len(s.data)) {
			return true
		}
	}
	return false
}

// ReadAt implements io.ReaderAt.
func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	br := byteRange{off, want}
	if !r.covered(br) {
		if err := r.get(br); err != nil {
			return 0, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.segs {
		if s.off <= off && br.end() <= s.off+int64(len(s.data)) {
			n := copy(p[:want], s.data[off-s.off:])
			if int64(n) < int64(len(p)) {
				return n, io.EOF
			}
			return n, nil
		}
	}
	return 0, errors.New("parquet: ranged read lost a segment") // unreachable
}

// chunkRanges returns the byte ranges of row group gi's chunks of the selected
// columns, as their metadata declares them; ranges outside the file are left out
// (checkChunk reports them).
func chunkRanges(f *parquetgo.File, gi int, cols []fileColumn, size int64) []byteRange {
	rgs := f.Metadata().RowGroups
	if gi >= len(rgs) {
		return nil
	}
	var out []byteRange
	for _, c := range cols {
		if c.leaf >= len(rgs[gi].Columns) {
			continue
		}
		md := &rgs[gi].Columns[c.leaf].MetaData
		start := md.DataPageOffset
		if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
			start = md.DictionaryPageOffset
		}
		if start < 0 || md.TotalCompressedSize <= 0 || start >= size || md.TotalCompressedSize > size-start {
			continue
		}
		out = append(out, byteRange{start, md.TotalCompressedSize})
	}
	return out
}

var _ io.ReaderAt = (*rangeReader)(nil)
