package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// parquet-go trusts the lengths and counts it decodes from thrift
// structures and allocates them before reading: a corrupt file can make it
// ask for gigabytes and the process dies with a fatal out-of-memory error,
// which recover cannot catch. Read therefore checks the framing of the
// footer and of every page header it will decode, so parquet-go's
// allocations stay proportional to the input's size.

const (
	// maxThriftDepth bounds nesting in the thrift structures we skim.
	maxThriftDepth = 32
	// maxPageBytes bounds a page's uncompressed size. Writers aim for pages
	// of 1 MiB or less; 256 MiB leaves ample room.
	maxPageBytes = 256 << 20
	// maxPageValues bounds the values of one page independently of its size
	// (a page of nulls is a few bytes for any count).
	maxPageValues = 1 << 24
)

var errThrift = errors.New("malformed thrift")

// skimThrift walks one compact-protocol struct at the start of b without
// allocating, checking that every length and element count fits in the
// bytes that remain. It returns the number of bytes the struct occupies.
func skimThrift(b []byte) (int, error) {
	s := skimmer{b: b}
	if err := s.structure(0); err != nil {
		return 0, err
	}
	return s.pos, nil
}

type skimmer struct {
	b   []byte
	pos int
}

func (s *skimmer) byte1() (byte, error) {
	if s.pos >= len(s.b) {
		return 0, errThrift
	}
	c := s.b[s.pos]
	s.pos++
	return c, nil
}

func (s *skimmer) uvarint() (uint64, error) {
	v, n := binary.Uvarint(s.b[s.pos:])
	if n <= 0 {
		return 0, errThrift
	}
	s.pos += n
	return v, nil
}

func (s *skimmer) skip(n uint64) error {
	if n > uint64(len(s.b)-s.pos) {
		return errThrift
	}
	s.pos += int(n)
	return nil
}

func (s *skimmer) structure(depth int) error {
	if depth > maxThriftDepth {
		return errThrift
	}
	for {
		h, err := s.byte1()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil
		}
		if h>>4 == 0 { // long form: explicit zigzag field id
			if _, err := s.uvarint(); err != nil {
				return err
			}
		}
		if err := s.value(h&0x0f, depth); err != nil {
			return err
		}
	}
}

func (s *skimmer) value(typ byte, depth int) error {
	switch typ {
	case 1, 2: // bool in a field header: no payload
		return nil
	case 3:
		_, err := s.byte1()
		return err
	case 4, 5, 6:
		_, err := s.uvarint()
		return err
	case 7:
		return s.skip(8)
	case 8:
		n, err := s.uvarint()
		if err != nil {
			return err
		}
		return s.skip(n)
	case 9, 10:
		h, err := s.byte1()
		if err != nil {
			return err
		}
		n := uint64(h >> 4)
		if n == 15 {
			if n, err = s.uvarint(); err != nil {
				return err
			}
		}
		// every element takes at least one byte
		if n > uint64(len(s.b)-s.pos) {
			return errThrift
		}
		et := h & 0x0f
		for i := uint64(0); i < n; i++ {
			if et == 1 || et == 2 { // bools in lists take one byte each
				if _, err := s.byte1(); err != nil {
					return err
				}
				continue
			}
			if err := s.value(et, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 11:
		n, err := s.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n > uint64(len(s.b)-s.pos)/2 {
			return errThrift
		}
		kv, err := s.byte1()
		if err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			if err := s.value(kv>>4, depth+1); err != nil {
				return err
			}
			if err := s.value(kv&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 12:
		return s.structure(depth + 1)
	}
	return errThrift
}

// checkFooter skims the footer's FileMetaData before parquet-go decodes it.
func checkFooter(r io.ReaderAt, size, footerLen int64) error {
	footer := make([]byte, footerLen)
	if _, err := r.ReadAt(footer, size-8-footerLen); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading footer: %v", err)
	}
	if _, err := skimThrift(footer); err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	return nil
}

// checkChunk reads the byte range of a column chunk and checks every page
// header in it: thrift framing, page sizes within the chunk and within
// maxPageBytes, and value counts within numRows (flat columns have one
// value per row).
func checkChunk(r io.ReaderAt, size int64, md *format.ColumnMetaData, numRows int64) error {
	err := checkChunkFraming(r, size, md, numRows)
	if err != nil && !errors.Is(err, ErrUnsupportedType) {
		return fmt.Errorf("%v: %w", err, ErrInvalidFile)
	}
	return err
}

func checkChunkFraming(r io.ReaderAt, size int64, md *format.ColumnMetaData, numRows int64) error {
	start := md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
		start = md.DictionaryPageOffset
	}
	n := md.TotalCompressedSize
	if start < 4 || n <= 0 || start > size || n > size-start {
		return fmt.Errorf("column chunk at %d+%d outside a %d-byte file", start, n, size)
	}
	if numRows < 0 || numRows > int64(maxPageValues)*1024 {
		return fmt.Errorf("row group of %d rows", numRows)
	}
	switch md.Codec {
	case format.Uncompressed, format.Snappy, format.Gzip, format.Zstd:
	default:
		// parquet-go's LZ4 decoder grows its output without bound on
		// corrupt input; the warehouse and common writers use the above.
		return fmt.Errorf("compression codec %v is not read: %w", md.Codec, ErrUnsupportedType)
	}
	chunk := make([]byte, n)
	if _, err := r.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading column chunk: %v", err)
	}
	proto := &thrift.CompactProtocol{}
	var values int64
	for pos := 0; pos < len(chunk); {
		hlen, err := skimThrift(chunk[pos:])
		if err != nil {
			return fmt.Errorf("page header at %d: %w", start+int64(pos), err)
		}
		var h format.PageHeader
		if err := thrift.Unmarshal(proto, chunk[pos:pos+hlen], &h); err != nil {
			return fmt.Errorf("page header at %d: %v", start+int64(pos), err)
		}
		pos += hlen
		if h.CompressedPageSize < 0 || int(h.CompressedPageSize) > len(chunk)-pos ||
			h.UncompressedPageSize < 0 || h.UncompressedPageSize > maxPageBytes {
			return fmt.Errorf("page at %d: sizes %d/%d", start+int64(pos), h.CompressedPageSize, h.UncompressedPageSize)
		}
		payload := chunk[pos : pos+int(h.CompressedPageSize)]
		pos += int(h.CompressedPageSize)
		var nv int32
		switch {
		case h.DataPageHeader.Valid:
			nv = h.DataPageHeader.V.NumValues
			values += int64(nv)
		case h.DataPageHeaderV2.Valid:
			v2 := h.DataPageHeaderV2.V
			nv = v2.NumValues
			values += int64(nv)
			if v2.DefinitionLevelsByteLength < 0 || v2.RepetitionLevelsByteLength < 0 ||
				int64(v2.DefinitionLevelsByteLength)+int64(v2.RepetitionLevelsByteLength) > int64(h.CompressedPageSize) {
				return fmt.Errorf("page at %d: level lengths", start+int64(pos))
			}
			payload = payload[v2.DefinitionLevelsByteLength+v2.RepetitionLevelsByteLength:]
			if c, ok := v2.IsCompressed.Get(); ok && !c {
				payload = nil
			}
		case h.DictionaryPageHeader.Valid:
			nv = h.DictionaryPageHeader.V.NumValues
			if int64(nv) > int64(h.UncompressedPageSize)+1 {
				return fmt.Errorf("dictionary of %d values in %d bytes", nv, h.UncompressedPageSize)
			}
		}
		if err := checkCompressed(md.Codec, payload, h.UncompressedPageSize); err != nil {
			return fmt.Errorf("page at %d: %w", start+int64(pos), err)
		}
		if nv < 0 || nv > maxPageValues || values > numRows {
			return fmt.Errorf("page at %d: %d values (%d so far) for %d rows", start+int64(pos), nv, values, numRows)
		}
	}
	return nil
}

// checkCompressed verifies that a compressed page does not announce more
// output than its header's uncompressed size: the snappy and zstd decoders
// allocate what the payload announces before decoding it.
func checkCompressed(codec format.CompressionCodec, payload []byte, uncompressed int32) error {
	if len(payload) == 0 {
		return nil
	}
	switch codec {
	case format.Snappy:
		n, err := snappy.DecodedLen(payload)
		if err != nil || n > int(uncompressed) {
			return fmt.Errorf("snappy page announces %d bytes, header %d", n, uncompressed)
		}
	case format.Zstd:
		var h zstd.Header
		if err := h.Decode(payload); err != nil {
			return fmt.Errorf("zstd frame: %v", err)
		}
		if h.HasFCS && h.FrameContentSize > uint64(uncompressed) {
			return fmt.Errorf("zstd page announces %d bytes, header %d", h.FrameContentSize, uncompressed)
		}
	}
	return nil
}
