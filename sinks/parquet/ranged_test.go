package parquet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	parquetgo "github.com/parquet-go/parquet-go"
)

// rangeLog serves ranged reads of data and records them.
type rangeLog struct {
	data  []byte
	reads []byteRange
	fail  error // returned by every read once set
}

func (l *rangeLog) fetch(off, n int64) ([]byte, error) {
	l.reads = append(l.reads, byteRange{off, n})
	if l.fail != nil {
		return nil, l.fail
	}
	end := min(off+n, int64(len(l.data)))
	return append([]byte(nil), l.data[off:end]...), nil
}

func (l *rangeLog) bytes() (n int64) {
	for _, r := range l.reads {
		n += r.n
	}
	return n
}

// idChunks returns the byte ranges of the id column's chunks, from the file's footer.
func idChunks(t *testing.T, data []byte) []byteRange {
	t.Helper()
	f, err := parquetgo.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []byteRange
	for _, rg := range f.Metadata().RowGroups {
		md := rg.Columns[0].MetaData
		start := md.DataPageOffset
		if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
			start = md.DictionaryPageOffset
		}
		out = append(out, byteRange{start, md.TotalCompressedSize})
	}
	return out
}

// TestReadRangedReadsFooterAndIDChunksOnly reads the id column of files the sink
// wrote, through ranged reads: one read of the tail, a second only when the footer is
// longer, then exactly one per id chunk; never the other columns.
func TestReadRangedReadsFooterAndIDChunksOnly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tests := []struct {
		rows, rowGroup int
		keyValue       int // bytes of key-value metadata, to make the footer longer
	}{
		{300, 0, 0},     // one row group, the footer in the tail
		{5000, 1024, 0}, // five row groups, a footer longer than the tail
		{3000, 1000, TailBytes},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("rows=%d/rowgroup=%d/kv=%d", tc.rows, tc.rowGroup, tc.keyValue), func(t *testing.T) {
			recs := []arrow.Record{testRecord(mem, 0, tc.rows)}
			defer releaseAll(recs)
			opts := []Option{WithRowGroupRows(tc.rowGroup), WithBloomFilters("id")}
			if tc.keyValue > 0 {
				opts = append(opts, WithKeyValue("padding", string(bytes.Repeat([]byte("x"), tc.keyValue))))
			}
			data, _ := writeBytes(t, testSchema(), recs, opts...)
			log := &rangeLog{data: data}
			sch, got, err := ReadRanged(log.fetch, int64(len(data)), mem, Columns("id"))
			if err != nil {
				t.Fatal(err)
			}
			defer releaseAll(got)

			want := concat(t, mem, recs, 0)
			defer want.Release()
			if len(sch.Fields()) != 1 || sch.Field(0).Name != "id" {
				t.Fatalf("schema %v, want the id column only", sch)
			}
			gotIDs := concat(t, mem, got, 0)
			defer gotIDs.Release()
			if !array.Equal(gotIDs, want) {
				t.Fatalf("ids differ from the file's: %d read, %d written", gotIDs.Len(), want.Len())
			}

			size := int64(len(data))
			tail := byteRange{max(0, size-TailBytes), min(size, TailBytes)}
			if log.reads[0] != tail {
				t.Fatalf("first read %+v, want the tail %+v", log.reads[0], tail)
			}
			footer := 1
			if footerLen := int64(binary.LittleEndian.Uint32(data[size-8:])); footerLen+8 > tail.n {
				footer = 2 // the rest of the footer
				if rest := log.reads[1]; rest.off != size-8-footerLen || rest.end() != tail.off {
					t.Errorf("second read %+v, want the rest of the %d-byte footer before the tail %+v", rest, footerLen, tail)
				}
			}
			var chunks []byteRange // the id chunks the tail does not hold
			for _, c := range idChunks(t, data) {
				if c.off < tail.off {
					chunks = append(chunks, c)
				}
			}
			if len(log.reads) != footer+len(chunks) {
				t.Fatalf("%d reads %v, want %d for the footer and one per id chunk %v", len(log.reads), log.reads, footer, chunks)
			}
			for i, c := range chunks {
				if r := log.reads[footer+i]; r != c {
					t.Errorf("read %d = %+v, want id chunk %+v", footer+i, r, c)
				}
			}
			t.Logf("file %d bytes, %d row groups: %d reads, %d bytes", len(data), len(chunks), len(log.reads), log.bytes())
			if log.bytes() >= int64(len(data)) && len(data) > TailBytes {
				t.Errorf("read %d bytes of a %d-byte file", log.bytes(), len(data))
			}
		})
	}
}

// TestReadRangedFailures: a failing fetch is reported with its own error, not as an
// invalid file; a damaged file read by range is ErrInvalidFile, as with Read.
func TestReadRangedFailures(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	recs := []arrow.Record{testRecord(mem, 0, 5000)}
	data, _ := writeBytes(t, testSchema(), recs, WithRowGroupRows(1024))
	releaseAll(recs)
	errGone := errors.New("object replaced")

	// The footer read fails; then a chunk read fails.
	for _, after := range []int{0, 2} {
		log := &rangeLog{data: data}
		n := 0
		fetch := func(off, length int64) ([]byte, error) {
			if n++; n > after {
				log.fail = errGone
			}
			return log.fetch(off, length)
		}
		if _, _, err := ReadRanged(fetch, int64(len(data)), mem, Columns("id")); !errors.Is(err, errGone) || errors.Is(err, ErrInvalidFile) {
			t.Errorf("fetch failing after %d reads: err = %v, want the fetch's error and not ErrInvalidFile", after, err)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", []byte("PAR1")},
		{"truncated", data[:len(data)/2]},
		{"no footer magic", data[:len(data)-1]},
	} {
		log := &rangeLog{data: tc.data}
		if _, _, err := ReadRanged(log.fetch, int64(len(tc.data)), mem, Columns("id")); !errors.Is(err, ErrInvalidFile) {
			t.Errorf("%s: err = %v, want ErrInvalidFile", tc.name, err)
		}
	}
}

// TestFileSchemaWithColumns: FileSchema reports every column of the file, in file
// order and with Read's types, while Columns still decodes (and a ranged read still
// fetches) only the selected ones.
func TestFileSchemaWithColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	recs := []arrow.Record{testRecord(mem, 0, 300)}
	data, _ := writeBytes(t, testSchema(), recs)
	releaseAll(recs)
	whole, all, err := Read(bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatal(err)
	}
	releaseAll(all)
	for _, ranged := range []bool{false, true} {
		var fileSch *arrow.Schema
		log := &rangeLog{data: data}
		var sch *arrow.Schema
		var got []arrow.Record
		if ranged {
			sch, got, err = ReadRanged(log.fetch, int64(len(data)), mem, Columns("id"), FileSchema(&fileSch))
		} else {
			sch, got, err = Read(bytes.NewReader(data), int64(len(data)), mem, Columns("id"), FileSchema(&fileSch))
		}
		if err != nil {
			t.Fatal(err)
		}
		releaseAll(got)
		if len(sch.Fields()) != 1 || sch.Field(0).Name != "id" {
			t.Errorf("ranged %v: schema %v, want the id column only", ranged, sch)
		}
		if fileSch == nil || !fileSch.Equal(whole) {
			t.Errorf("ranged %v: file schema %v, want %v", ranged, fileSch, whole)
		}
		if ranged {
			var idBytes int64
			for _, c := range idChunks(t, data) {
				idBytes += c.n
			}
			if max := min(int64(len(data)), TailBytes) + idBytes; log.bytes() > max {
				t.Errorf("ranged read with FileSchema read %d bytes, want at most the tail and the id chunks (%d)", log.bytes(), max)
			}
		}
	}
}

// TestReadMetadataRanged reads the footer of files the sink wrote by range: one read
// of the tail, a second only when the footer is longer, nothing else; what it reports
// is ReadMetadata's, and a failing read is returned with its class.
func TestReadMetadataRanged(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tests := []struct {
		rows, rowGroup int
		keyValue       int // bytes of key-value metadata, to make the footer longer
		reads          int
	}{
		{300, 0, 0, 1},
		{5000, 1024, 0, 2},
		{3000, 1000, TailBytes, 2},
		{10, 0, 0, 1}, // a file smaller than the tail: read whole, once
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("rows=%d/rowgroup=%d/kv=%d", tc.rows, tc.rowGroup, tc.keyValue), func(t *testing.T) {
			recs := []arrow.Record{testRecord(mem, 0, tc.rows)}
			defer releaseAll(recs)
			opts := []Option{WithRowGroupRows(tc.rowGroup), WithKeyValue("k", "v")}
			if tc.keyValue > 0 {
				opts = append(opts, WithKeyValue("padding", string(bytes.Repeat([]byte("x"), tc.keyValue))))
			}
			data, _ := writeBytes(t, testSchema(), recs, opts...)
			want, err := ReadMetadata(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			log := &rangeLog{data: data}
			got, err := ReadMetadataRanged(log.fetch, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || got.KeyValue["k"] != "v" {
				t.Errorf("ranged metadata %+v, want %+v", got, want)
			}
			footer := int64(binary.LittleEndian.Uint32(data[len(data)-8:])) + 8
			if len(log.reads) != tc.reads || log.bytes() > max(footer, min(TailBytes, int64(len(data)))) {
				t.Errorf("%d reads of %d B (%v) for a %d-byte footer of a %d-byte file", len(log.reads), log.bytes(), log.reads, footer, len(data))
			}
			failing := &rangeLog{data: data, fail: errDiskFull}
			if _, err := ReadMetadataRanged(failing.fetch, int64(len(data))); !errors.Is(err, errDiskFull) {
				t.Errorf("failing read: %v, want %v", err, errDiskFull)
			}
		})
	}
	if _, err := ReadMetadataRanged(nil, 10); !errors.Is(err, ErrInvalidFile) {
		t.Errorf("no input: %v", err)
	}
}
