package schema

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// optStr is an optional string: ok is false when the field was absent or null.
type optStr struct {
	b  []byte
	ok bool
}

func (s optStr) String() string { return string(s.b) }

// optNum is an optional fixed-point number or timestamp (micros).
type optNum struct {
	v  int64
	ok bool
}

var (
	errNotObject = errors.New("not a JSON object")
	errType      = errors.New("wrong JSON type")
	errMissing   = errors.New("missing or null")
)

// fieldError is a semantic problem with one field; decoding goes on so that
// the error can name the item's _id even when _id comes later.
type fieldError struct {
	field string
	err   error
}

// reader streams one JSON object with a strict jsonscan.Scanner (valid
// UTF-8, unique member names in every object, as RFC 7493 asks) and collects
// what it needs. It is reused across items; nothing it returns survives the
// next reset.
type reader struct {
	sc    jsonscan.Scanner
	arena []byte // unescaped string values that had escapes
	ferr  fieldError
	extra extraTree
	refs  txRefs
}

// txRefs are the known objects of a transaction that may hold unknown
// members; they live in the reader so that decoding does not allocate them.
type txRefs struct {
	merchant, category, groups, pf, meta, conv xref
	connection, balance, refreshed             xref
}

// resetRefs forgets the refs' nodes of the previous item. Their names and
// parents are set once (again if the reader was copied, as the parents
// point into it), so that an item costs no pointer writes here.
func (r *reader) resetRefs() {
	x := &r.refs
	if x.groups.parent != &x.category {
		x.merchant = newRef(nil, qMerchant)
		x.category = newRef(nil, qCategory)
		x.groups = newRef(&x.category, qGroups)
		x.pf = newRef(&x.groups, qPersonalFinance)
		x.meta = newRef(nil, qMeta)
		x.conv = newRef(&x.meta, qConversion)
		x.connection = newRef(nil, qConnection)
		x.balance = newRef(nil, qBalance)
		x.refreshed = newRef(nil, qRefreshed)
		return
	}
	x.merchant.id, x.category.id, x.groups.id, x.pf.id, x.meta.id = -1, -1, -1, -1, -1
	x.conv.id, x.connection.id, x.balance.id, x.refreshed.id = -1, -1, -1, -1
}

// reset prepares the reader for item, which must stay unmodified until the
// row has been appended: decoded strings and raw values alias it.
func (r *reader) reset(item []byte) {
	r.sc.Reset(item, jsonscan.Options{})
	r.resetRefs()
	r.arena = r.arena[:0]
	r.ferr = fieldError{}
	r.extra.reset()
}

// fail records the first semantic error.
func (r *reader) fail(field string, err error) {
	if r.ferr.err != nil {
		return
	}
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverflow) {
		err = fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	r.ferr = fieldError{field: field, err: err}
}

// unquote returns the content of the JSON string v (quotes included). Slices
// stay valid until the next reset.
func (r *reader) unquote(v []byte) []byte {
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') < 0 {
		return in
	}
	start := len(r.arena)
	r.arena = jsonscan.AppendUnquote(r.arena, v) // v was validated by the scanner
	return r.arena[start:]
}

// finish checks that nothing but whitespace follows the object.
func (r *reader) finish() error {
	if err := r.sc.End(); err != nil {
		return fmt.Errorf("trailing data after the object: %w", ErrInvalid)
	}
	return nil
}

func syntaxErr(err error) error {
	return fmt.Errorf("%w: %w", err, ErrInvalid)
}

// openRoot reads the item's '{'.
func (r *reader) openRoot() error {
	switch k := r.sc.PeekKind(); k {
	case '{':
		if err := r.sc.BeginObject(); err != nil {
			return syntaxErr(err)
		}
		return nil
	case 0, '}', ']':
		_, err := r.sc.ReadValue()
		return syntaxErr(err)
	default:
		return fmt.Errorf("%w (got %s): %w", errNotObject, kindName(k), ErrInvalid)
	}
}

// kindName names a kind as Scanner.PeekKind returns it.
func kindName(k byte) string {
	switch k {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "an object"
}

// openObject reads the start of an object-valued field. It reports false for
// null and for values of another type (recording a semantic error).
func (r *reader) openObject(field string) (bool, error) {
	switch r.sc.PeekKind() {
	case '{':
		if err := r.sc.BeginObject(); err != nil {
			return false, syntaxErr(err)
		}
		return true, nil
	case 'n':
		if _, err := r.sc.ReadValue(); err != nil {
			return false, syntaxErr(err)
		}
		return false, nil
	default:
		if _, err := r.sc.ReadValue(); err != nil {
			return false, syntaxErr(err)
		}
		r.fail(field, fmt.Errorf("%w: want an object", errType))
		return false, nil
	}
}

// nextName returns the next member name of the open object (unquoted and as
// written), or more=false after consuming the closing '}'.
func (r *reader) nextName() (name, raw []byte, more bool, err error) {
	name, raw, more, err = r.sc.NextName()
	if err != nil {
		return nil, nil, false, syntaxErr(err)
	}
	return name, raw, more, nil
}

// value reads the next raw value.
func (r *reader) value() ([]byte, error) {
	v, err := r.sc.ReadValue()
	if err != nil {
		return nil, syntaxErr(err)
	}
	return v, nil
}

// str reads a string-or-null field.
func (r *reader) str(field string, dst *optStr) error {
	v, err := r.value()
	if err != nil {
		return err
	}
	switch v[0] {
	case '"':
		*dst = optStr{b: r.unquote(v), ok: true}
	case 'n':
		*dst = optStr{}
	default:
		r.fail(field, fmt.Errorf("%w: want a string", errType))
	}
	return nil
}

// decimal reads a number-or-null field (a string holding a JSON number is
// tolerated) scaled by 10^scale.
func (r *reader) decimal(field string, precision, scale int32, dst *optNum) error {
	v, err := r.value()
	if err != nil {
		return err
	}
	var text []byte
	switch c := v[0]; {
	case c == 'n':
		*dst = optNum{}
		return nil
	case c == '"':
		text = r.unquote(v)
	case c == '-' || (c >= '0' && c <= '9'):
		text = v
	default:
		r.fail(field, fmt.Errorf("%w: want a number", errType))
		return nil
	}
	n, perr := parseScaled(text, precision, scale)
	if perr != nil {
		r.fail(field, fmt.Errorf("%q: %w", text, perr))
		return nil
	}
	*dst = optNum{v: n, ok: true}
	return nil
}

// timestamp reads an RFC 3339 string-or-null field as UTC micros.
func (r *reader) timestamp(field string, dst *optNum) error {
	v, err := r.value()
	if err != nil {
		return err
	}
	switch v[0] {
	case '"':
		text := r.unquote(v)
		t, perr := parseTimestamp(text)
		if perr != nil {
			r.fail(field, fmt.Errorf("%q: %w", text, perr))
			return nil
		}
		*dst = optNum{v: t, ok: true}
	case 'n':
		*dst = optNum{}
	default:
		r.fail(field, fmt.Errorf("%w: want a timestamp string", errType))
	}
	return nil
}

// boolean reads a bool-or-null field.
func (r *reader) boolean(field string, dst *optNum) error {
	v, err := r.value()
	if err != nil {
		return err
	}
	switch v[0] {
	case 't':
		*dst = optNum{v: 1, ok: true}
	case 'f':
		*dst = optNum{v: 0, ok: true}
	case 'n':
		*dst = optNum{}
	default:
		r.fail(field, fmt.Errorf("%w: want a boolean", errType))
	}
	return nil
}

// unknown keeps the member (name as written, raw value) in extra under parent.
func (r *reader) unknown(parent *xref, name, raw []byte) error {
	v, err := r.value()
	if err != nil {
		return err
	}
	r.extra.add(parent, name, raw, v)
	return nil
}
