package jsonscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays accepted, counted
// from the top-level value (jsontext's limit).
const MaxDepth = 10000

// Options relax validation. The zero value is strict (RFC 7493): valid
// UTF-8, valid surrogate escapes, unique member names in every object.
type Options struct {
	// AllowInvalidUTF8 accepts invalid UTF-8 bytes and unpaired surrogate
	// escapes inside strings.
	AllowInvalidUTF8 bool
	// AllowDuplicateNames accepts an object that names a member twice.
	AllowDuplicateNames bool
}

// Error is a syntax error at a byte offset of the input. An input that ends
// too early unwraps to io.ErrUnexpectedEOF.
type Error struct {
	Offset int
	what   string
	eof    bool
}

func (e *Error) Error() string {
	if e.eof {
		return "unexpected EOF at offset " + strconv.Itoa(e.Offset)
	}
	return e.what + " at offset " + strconv.Itoa(e.Offset)
}

func (e *Error) Unwrap() error {
	if e.eof {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// ErrTrailingData is End's error for bytes after the top-level value.
var ErrTrailingData = errors.New("data after the top-level JSON value")

// frame is an open object or array. It holds no pointers, nor do the names,
// so that pushing and popping costs no GC write barriers.
type frame struct {
	obj    bool
	first  bool   // no member or element read yet (token API)
	hasSet bool   // the object's names are in Scanner.sets[depth]
	names  int    // index into Scanner.names where this object's names start
	bloom  uint64 // one bit per name seen, by nameBit: most names need no comparison
}

// span is a member name: input[off:end], or arena[off:end] if it had escapes.
type span struct {
	off, end int
	arena    bool
}

// manyNames is the member count above which an object's names are checked
// for duplicates with a map instead of a linear search.
const manyNames = 32

// Scanner reads one JSON text held in memory. It validates everything it
// passes over, including values skipped whole, and hands out sub-slices of
// the input (never copies). A Scanner is reusable after Reset; it is not
// safe for concurrent use.
type Scanner struct {
	b      []byte
	i      int
	opts   Options
	frames []frame
	names  []span                // unescaped names of the open objects' members, innermost last
	arena  []byte                // unescaped names that had escapes
	sets   []map[string]struct{} // by depth: the names of an object with many
}

// Reset starts reading b. Slices handed out before stay valid (they alias
// their input), except names unescaped into the arena, which die here.
func (s *Scanner) Reset(b []byte, opts Options) {
	s.b, s.i, s.opts = b, 0, opts
	s.frames, s.names, s.arena = s.frames[:0], s.names[:0], s.arena[:0]
}

// Bytes returns the input.
func (s *Scanner) Bytes() []byte { return s.b }

// Offset is the number of bytes read so far.
func (s *Scanner) Offset() int { return s.i }

// Depth is the number of open objects and arrays.
func (s *Scanner) Depth() int { return len(s.frames) }

func (s *Scanner) ws() {
	b, i := s.b, s.i
	if i < len(b) && b[i] > ' ' { // the common case: no whitespace
		return
	}
	for i < len(b) && isSpace[b[i]] {
		i++
	}
	s.i = i
}

var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// PeekKind skips whitespace and returns the kind of the next value, as
// jsontext names kinds: '{', '[', '"', 'n', 't', 'f', '0' for a number, or
// '}' or ']'. It returns 0 at the end of the input or before any other byte.
// At a member or element position after the first, it does not look past
// the separating comma: use NextName and NextElem there.
func (s *Scanner) PeekKind() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	switch c := s.b[s.i]; c {
	case '{', '[', '"', 'n', 't', 'f', '}', ']':
		return c
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return '0'
	}
	return 0
}

// BeginObject reads '{' and opens an object: read its members with NextName
// and a value each.
func (s *Scanner) BeginObject() error { return s.begin('{') }

// BeginArray reads '[' and opens an array: step through it with NextElem.
func (s *Scanner) BeginArray() error { return s.begin('[') }

func (s *Scanner) begin(c byte) error {
	s.ws()
	if s.i >= len(s.b) {
		return s.eof()
	}
	if s.b[s.i] != c {
		return s.invalid("expecting " + strconv.QuoteRune(rune(c)))
	}
	if err := s.push(c == '{'); err != nil {
		return err
	}
	s.i++
	return nil
}

// NextName reads the next member name of the innermost open object (and the
// ':' after it), or closes the object and reports more=false. name is
// unescaped (it aliases the input unless the name had escapes); raw is the
// name as written, quotes included.
func (s *Scanner) NextName() (name, raw []byte, more bool, err error) {
	f := &s.frames[len(s.frames)-1]
	more, err = s.next(f, '}')
	if !more || err != nil {
		return nil, nil, false, err
	}
	name, raw, err = s.member(f, true)
	return name, raw, err == nil, err
}

// NextElem moves to the next element of the innermost open array (read it
// with ReadValue or the Begin functions), or closes the array and reports
// more=false.
func (s *Scanner) NextElem() (more bool, err error) {
	return s.next(&s.frames[len(s.frames)-1], ']')
}

// next consumes the ',' before a member or element after the first, or the
// closing delimiter.
func (s *Scanner) next(f *frame, closing byte) (bool, error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.eof()
	}
	c := s.b[s.i]
	if c == closing {
		s.i++
		s.pop()
		return false, nil
	}
	if f.first {
		f.first = false
		return true, nil
	}
	if c != ',' {
		return false, s.invalid("after a value (expecting ',' or " + strconv.QuoteRune(rune(closing)) + ")")
	}
	s.i++
	return true, nil
}

// ReadValue reads one complete value, validating it, and returns its text.
func (s *Scanner) ReadValue() ([]byte, error) {
	s.ws()
	start := s.i
	base := len(s.frames)
	for {
		// At a value.
		if s.i >= len(s.b) {
			return nil, s.eof()
		}
		switch c := s.b[s.i]; c {
		case '{':
			if err := s.push(true); err != nil {
				return nil, err
			}
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				s.pop()
				break
			}
			if _, _, err := s.member(&s.frames[len(s.frames)-1], !s.opts.AllowDuplicateNames); err != nil {
				return nil, err
			}
			continue
		case '[':
			if err := s.push(false); err != nil {
				return nil, err
			}
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				s.pop()
				break
			}
			s.ws()
			continue
		case '"':
			if _, err := s.str(); err != nil {
				return nil, err
			}
		case 't':
			if err := s.literal("true"); err != nil {
				return nil, err
			}
		case 'f':
			if err := s.literal("false"); err != nil {
				return nil, err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return nil, err
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if err := s.number(); err != nil {
				return nil, err
			}
		default:
			return nil, s.invalid("(expecting a value)")
		}
		// After a value: close containers until one has more to read.
		for {
			if len(s.frames) == base {
				return s.b[start:s.i], nil
			}
			s.ws()
			if s.i >= len(s.b) {
				return nil, s.eof()
			}
			f := &s.frames[len(s.frames)-1]
			c := s.b[s.i]
			if c == ',' {
				s.i++
				s.ws()
				if f.obj {
					if _, _, err := s.member(f, !s.opts.AllowDuplicateNames); err != nil {
						return nil, err
					}
				}
				break
			}
			if (f.obj && c == '}') || (!f.obj && c == ']') {
				s.i++
				s.pop()
				continue
			}
			if f.obj {
				return nil, s.invalid("after an object member (expecting ',' or '}')")
			}
			return nil, s.invalid("after an array element (expecting ',' or ']')")
		}
	}
}

// End checks that nothing but whitespace follows the top-level value.
func (s *Scanner) End() error {
	s.ws()
	if s.i < len(s.b) {
		return fmt.Errorf("%w at offset %d", ErrTrailingData, s.i)
	}
	return nil
}

func (s *Scanner) push(obj bool) error {
	if len(s.frames) == MaxDepth {
		return &Error{Offset: s.i, what: "exceeded max depth " + strconv.Itoa(MaxDepth)}
	}
	s.frames = append(s.frames, frame{obj: obj, first: true, names: len(s.names)})
	return nil
}

func (s *Scanner) pop() {
	f := &s.frames[len(s.frames)-1]
	if f.obj {
		s.names = s.names[:f.names]
	}
	s.frames = s.frames[:len(s.frames)-1]
}

// member reads a member name of object f and the ':' after it, checking it
// is not a duplicate unless allowed. With want false (and duplicates
// allowed) it does not unescape the name and returns no name.
func (s *Scanner) member(f *frame, want bool) (name, raw []byte, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, nil, s.eof()
	}
	if s.b[s.i] != '"' {
		return nil, nil, s.invalid(`at start of an object member name (expecting '"')`)
	}
	start := s.i
	escaped, err := s.str()
	if err != nil {
		return nil, nil, err
	}
	raw = s.b[start:s.i]
	if !want {
		goto colon
	}
	{
		n := span{off: start + 1, end: s.i - 1}
		if escaped {
			n = span{off: len(s.arena), arena: true}
			s.arena = AppendUnquote(s.arena, raw)
			n.end = len(s.arena)
		}
		name = s.name(n)
		if !s.opts.AllowDuplicateNames {
			if err := s.unique(f, n, start); err != nil {
				return nil, nil, err
			}
		}
	}
colon:
	s.ws()
	if s.i >= len(s.b) {
		return nil, nil, s.eof()
	}
	if s.b[s.i] != ':' {
		return nil, nil, s.invalid("after an object member name (expecting ':')")
	}
	s.i++
	s.ws()
	return name, raw, nil
}

func (s *Scanner) name(n span) []byte {
	if n.arena {
		return s.arena[n.off:n.end]
	}
	return s.b[n.off:n.end]
}

func (s *Scanner) unique(f *frame, n span, at int) error {
	name := s.name(n)
	if f.hasSet {
		set := s.sets[len(s.frames)-1]
		if _, dup := set[string(name)]; dup {
			return s.duplicate(name, at)
		}
		set[string(name)] = struct{}{}
		return nil
	}
	seen := s.names[f.names:]
	if bit := nameBit(name); f.bloom&bit == 0 {
		f.bloom |= bit // a new name: no earlier one has its bit
	} else {
		for _, o := range seen {
			if string(s.name(o)) == string(name) {
				return s.duplicate(name, at)
			}
		}
	}
	if len(seen) < manyNames {
		s.names = append(s.names, n)
		return nil
	}
	d := len(s.frames) - 1
	for len(s.sets) <= d {
		s.sets = append(s.sets, nil)
	}
	set := s.sets[d]
	if set == nil {
		set = make(map[string]struct{}, 4*manyNames)
		s.sets[d] = set
	}
	clear(set)
	for _, o := range seen {
		set[string(s.name(o))] = struct{}{}
	}
	set[string(name)] = struct{}{}
	f.hasSet = true
	return nil
}

// nameBit picks a name's bit in frame.bloom from its length and end bytes.
func nameBit(name []byte) uint64 {
	h := uint(len(name))
	if len(name) > 0 {
		h = h*31 + uint(name[0])
		h = h*31 + uint(name[len(name)-1])
	}
	return 1 << (h & 63)
}

func (s *Scanner) duplicate(name []byte, at int) error {
	return &Error{Offset: at, what: "duplicate object member name " + strconv.Quote(string(name))}
}

func (s *Scanner) literal(lit string) error {
	rest := s.b[s.i:]
	n := min(len(rest), len(lit))
	for k := range n {
		if rest[k] != lit[k] {
			s.i += k
			return s.invalid("within literal " + lit)
		}
	}
	if n < len(lit) {
		s.i = len(s.b)
		return s.eof()
	}
	s.i += n
	return nil
}

func (s *Scanner) number() error {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		s.i = i
		return s.eof()
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		s.i = i
		return s.invalid("in number (expecting a digit)")
	}
	var err error
	if i < len(b) && b[i] == '.' {
		if i, err = s.digits(i + 1); err != nil {
			return err
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, err = s.digits(i); err != nil {
			return err
		}
	}
	s.i = i
	return nil
}

// digits consumes the one or more digits a fraction or an exponent needs at
// s.b[i:] and returns where they end.
func (s *Scanner) digits(i int) (int, error) {
	b := s.b
	switch {
	case i >= len(b):
		s.i = i
		return i, s.eof()
	case !isDigit(b[i]):
		s.i = i
		return i, s.invalid("in number (expecting a digit)")
	}
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// str reads a string at s.i (which holds '"') and reports whether it has
// escapes.
func (s *Scanner) str() (escaped bool, err error) {
	b := s.b
	i := s.i + 1
	for {
		// Runs of plain ASCII, 8 bytes at a time, then one at a time.
		for i+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			return escaped, s.eof()
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			n, err := s.escape(i)
			if err != nil {
				return escaped, err
			}
			i += n
		case c < ' ':
			s.i = i
			return escaped, s.invalid("in string (expecting a non-control character)")
		default: // non-ASCII
			if s.opts.AllowInvalidUTF8 {
				i++
				continue
			}
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.i = i
				if !utf8.FullRune(b[i:]) {
					s.i = len(b)
					return escaped, s.eof()
				}
				return escaped, &Error{Offset: i, what: "invalid UTF-8 within string"}
			}
			i += n
		}
	}
}

// plainWord reports whether none of the 8 bytes of x is '"', '\\', a
// control character or non-ASCII.
func plainWord(x uint64) bool {
	q := x ^ ('"' * lsb)
	bs := x ^ ('\\' * lsb)
	// A byte is flagged when it is below 0x20, zero after the XORs, or has
	// its top bit set. Borrows only ever flag bytes above a flagged one.
	t := ((x - 0x20*lsb) | (q - lsb) | (bs - lsb)) &^ x
	return (t|x)&msb == 0
}

var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escape validates the escape sequence at b[i] ('\\') and returns its length.
func (s *Scanner) escape(i int) (int, error) {
	b := s.b
	if i+1 >= len(b) {
		s.i = len(b)
		return 0, s.eof()
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
	default:
		return 0, s.badEscape(i, i+2)
	}
	v1, err := s.hex4(i)
	if err != nil {
		return 0, err
	}
	if s.opts.AllowInvalidUTF8 || !utf16.IsSurrogate(rune(v1)) {
		return 6, nil
	}
	// A surrogate must be the first half of a pair written as two escapes.
	j := i + 6
	switch {
	case j+2 > len(b) && (j == len(b) || b[j] == '\\'):
		s.i = len(b)
		return 0, s.eof()
	case j+2 > len(b) || b[j] != '\\' || b[j+1] != 'u':
		return 0, s.badEscape(i, j)
	}
	v2, err := s.hex4(j)
	if err != nil {
		return 0, err
	}
	if utf16.DecodeRune(rune(v1), rune(v2)) == utf8.RuneError {
		return 0, s.badEscape(i, j+6)
	}
	return 12, nil
}

// hex4 reads the four hex digits of \uXXXX at b[i].
func (s *Scanner) hex4(i int) (uint16, error) {
	b := s.b
	var v uint16
	for k := i + 2; k < i+6; k++ {
		if k >= len(b) {
			s.i = len(b)
			return 0, s.eof()
		}
		c := b[k]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.badEscape(i, k+1)
		}
		v = v<<4 | uint16(c)
	}
	return v, nil
}

func (s *Scanner) badEscape(from, to int) error {
	s.i = from
	return &Error{Offset: from, what: "invalid escape sequence " + strconv.Quote(string(s.b[from:to])) + " within string"}
}

func (s *Scanner) eof() error { return &Error{Offset: len(s.b), eof: true} }

// invalid reports the byte at s.i as unexpected.
func (s *Scanner) invalid(context string) error {
	c := s.b[s.i:]
	r, n := utf8.DecodeRune(c)
	q := strconv.QuoteRune(r)
	if r == utf8.RuneError && n <= 1 {
		q = fmt.Sprintf(`'\x%02x'`, c[0])
	}
	return &Error{Offset: s.i, what: "invalid character " + q + " " + context}
}

// AppendUnquote appends the content of the valid JSON string v (quotes
// included, as ReadValue returns it) to dst, with escapes decoded. An
// unpaired surrogate escape becomes U+FFFD; invalid UTF-8 bytes are copied.
func AppendUnquote(dst, v []byte) []byte {
	v = v[1 : len(v)-1]
	for len(v) > 0 {
		k := 0
		for k < len(v) && v[k] != '\\' {
			k++
		}
		dst = append(dst, v[:k]...)
		v = v[k:]
		if len(v) < 2 {
			return dst
		}
		switch c := v[1]; c {
		case 'b':
			dst, v = append(dst, '\b'), v[2:]
		case 'f':
			dst, v = append(dst, '\f'), v[2:]
		case 'n':
			dst, v = append(dst, '\n'), v[2:]
		case 'r':
			dst, v = append(dst, '\r'), v[2:]
		case 't':
			dst, v = append(dst, '\t'), v[2:]
		case 'u':
			r := rune(unhex(v[2:6]))
			v = v[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if len(v) >= 6 && v[0] == '\\' && v[1] == 'u' {
					if p := utf16.DecodeRune(r, rune(unhex(v[2:6]))); p != utf8.RuneError {
						r2, v = p, v[6:]
					}
				}
				r = r2
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst, v = append(dst, c), v[2:]
		}
	}
	return dst
}

func unhex(b []byte) uint16 {
	var v uint16
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		v = v<<4 | uint16(c)
	}
	return v
}
