package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// This file holds the spill: where extracted rows wait, on local disk, for the other
// accounts of their partition, and where the accounts-snapshot rows the plan builds
// wait for the end of the run.
//
// A walk over two years hands rows to 24 partitions at once, and a partition is
// merged only when every account of its bucket is in. Rows that would wait in memory
// beyond the run's budget are written instead to one temporary file as Arrow IPC
// streams (LZ4-compressed; held partitions parked there, uncompressed: park) and read
// back when their partition is merged, so memory is bounded by the budget and the
// partitions being merged, whatever the number of users. A spill takes the
// partition's rows waiting in memory along, as one record: a quiet user's walk leaves
// a row or two per month, and one stream each would cost more than the rows. The
// file is removed when the run ends; it holds transactions, so it is created
// readable by its owner only, and it is never part of the dataset.

// spill is the run's spill file and in-memory budget.
type spill struct {
	dir    string
	budget int64 // bytes of records that may wait in memory
	mem    memory.Allocator
	sch    *arrow.Schema

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes written to f
	held    int64 // bytes of records waiting in memory
	written int64 // bytes spilled, for the run's figures
	parked  int64 // held partitions parked (held.go)
}

// segment is one spilled batch of records: a whole IPC stream at an offset.
type segment struct{ off, n int64 }

// reserve counts size bytes against the in-memory budget and reports whether they
// fit; rows that do not fit go to the spill file (write).
func (s *spill) reserve(size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held+size > s.budget {
		return false
	}
	s.held += size
	return true
}

// free gives back size bytes of the in-memory budget.
func (s *spill) free(size int64) {
	s.mu.Lock()
	s.held -= size
	s.mu.Unlock()
}

// write appends recs to the spill file as one IPC stream.
func (s *spill) write(recs []arrow.Record) (*segment, error) { return s.writeAs(s.sch, recs) }

// park appends a held partition's records to the spill file, counted as parked.
// Unlike write it streams them into the file uncompressed, holding the file's lock:
// a held partition is a whole month of its bucket, and compressing it first (LZ4
// keeps a compressed copy of every buffer of a record until the record is written)
// into a buffer cost about its size again at the moment it was meant to leave
// memory. The records' buffers go to the file as they are, without a copy; a park
// takes a few milliseconds of the lock, and parks are rare (a partition that lost a
// row, beyond Config.HeldBytes).
func (s *spill) park(recs []arrow.Record) (*segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return nil, err
	}
	cw := &countingWriter{w: io.NewOffsetWriter(s.f, s.size)}
	w := ipc.NewWriter(cw, ipc.WithSchema(s.sch), ipc.WithAllocator(s.mem))
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("spill: park in %s: %w", s.f.Name(), err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("spill: park in %s: %w", s.f.Name(), err)
	}
	// What a failed park wrote lies beyond s.size: the next write overwrites it.
	seg := &segment{off: s.size, n: cw.n}
	s.size += cw.n
	s.written += cw.n
	s.parked++
	return seg, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// open creates the spill file if the run has none yet; s.mu is held.
func (s *spill) open() error {
	if s.f != nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, ".akahu-spill-*")
	if err != nil {
		return fmt.Errorf("spill: create temporary file in %s: %w", s.dirName(), err)
	}
	s.f = f
	return nil
}

// writeAs appends recs of schema sch (not the transactions') to the spill file.
func (s *spill) writeAs(sch *arrow.Schema, recs []arrow.Record) (*segment, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sch), ipc.WithAllocator(s.mem), ipc.WithLZ4())
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("spill: encode: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("spill: encode: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return nil, err
	}
	seg := &segment{off: s.size, n: int64(buf.Len())}
	if _, err := s.f.WriteAt(buf.Bytes(), seg.off); err != nil {
		return nil, fmt.Errorf("spill: write %s: %w", s.f.Name(), err)
	}
	s.size += seg.n
	s.written += seg.n
	return seg, nil
}

// read returns the records of a segment; the caller releases them.
func (s *spill) read(seg *segment) ([]arrow.Record, error) { return s.readAs(s.sch, seg) }

// readAs returns the records of a segment written by writeAs with sch.
func (s *spill) readAs(sch *arrow.Schema, seg *segment) ([]arrow.Record, error) {
	s.mu.Lock()
	f := s.f
	s.mu.Unlock()
	rd, err := ipc.NewReader(io.NewSectionReader(f, seg.off, seg.n), ipc.WithAllocator(s.mem), ipc.WithSchema(sch))
	if err != nil {
		return nil, fmt.Errorf("spill: read %s at %d: %w", f.Name(), seg.off, err)
	}
	defer rd.Release()
	var out []arrow.Record
	for rd.Next() {
		rec := rd.Record()
		rec.Retain()
		out = append(out, rec)
	}
	if err := rd.Err(); err != nil {
		for _, rec := range out {
			rec.Release()
		}
		return nil, fmt.Errorf("spill: read %s at %d: %w", f.Name(), seg.off, err)
	}
	return out, nil
}

// stats returns the bytes written to the spill file and the held partitions parked.
func (s *spill) stats() SpillStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpillStats{Bytes: s.written, HeldParked: s.parked}
}

// close removes the spill file.
func (s *spill) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		name := s.f.Name()
		_ = s.f.Close()
		_ = os.Remove(name)
		s.f = nil
	}
}

func (s *spill) dirName() string {
	if s.dir == "" {
		return os.TempDir()
	}
	return s.dir
}

// arrayOverhead is what an Arrow array costs beyond its buffers' bytes (its data
// and buffer structs, and the allocator's rounding): for the small records a quiet
// user's walk hands each month, it is most of their memory.
const arrayOverhead = 512

// recordSize is the memory a record holds: its buffers' capacities (a builder's
// records keep the builder's spare room) plus a fixed cost per array.
func recordSize(rec arrow.Record) int64 {
	var n int64
	var add func(d arrow.ArrayData)
	add = func(d arrow.ArrayData) {
		n += arrayOverhead
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Cap())
			}
		}
		for _, c := range d.Children() {
			add(c)
		}
	}
	for _, col := range rec.Columns() {
		add(col.Data())
	}
	return n
}
