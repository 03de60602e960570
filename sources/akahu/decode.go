package akahu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// envelope is the decoded shape of every Akahu response:
//
//	{"success":bool, "items":[{…}…], "item":{…}, "cursor":{"next":"…"|null}, "message":"…"}
//
// Items and item alias the body they were decoded from.
type envelope struct {
	success    bool
	hasSuccess bool
	items      []json.RawMessage
	hasItems   bool
	item       json.RawMessage
	next       string
	hasNext    bool // cursor.next was a string (not null, not absent)
	message    string
}

func (e *envelope) reset() {
	items := e.items[:0]
	clear(e.items) // drop references to the previous body
	*e = envelope{items: items}
}

// errTrailingData reports bytes after the top-level object.
var errTrailingData = errors.New("data after the top-level JSON object")

// envelopeOptions: duplicate names are checked by hand at the top level and
// items are passed through as served; bank text is passed through too (never
// fail a page on one byte of invalid UTF-8).
var envelopeOptions = jsonscan.Options{AllowDuplicateNames: true, AllowInvalidUTF8: true}

// decodeEnvelope parses body into env without copying items: each item is a
// sub-slice of body. It validates the whole body as JSON (items included:
// a malformed item is an error naming items[i], so the page is retried),
// requires a top-level object, requires every item (and item) to be a JSON
// object, and requires success to be a boolean and cursor.next a string or
// null. Unknown top-level fields are skipped. Items are only scanned, not
// decoded: their readers (the schema package for transactions) decode them.
func decodeEnvelope(s *jsonscan.Scanner, body []byte, env *envelope) error {
	env.reset()
	s.Reset(body, envelopeOptions)
	if err := expectDelim(s, '{', "body"); err != nil {
		return err
	}
	seen := 0
	const (
		sawSuccess = 1 << iota
		sawItems
		sawItem
		sawCursor
		sawMessage
	)
	once := func(bit int, name string) error {
		if seen&bit != 0 {
			return fmt.Errorf("duplicate field %q", name)
		}
		seen |= bit
		return nil
	}
	for {
		name, _, more, err := s.NextName()
		if err != nil {
			return err
		}
		if !more {
			break
		}
		switch string(name) {
		case "success":
			if err := once(sawSuccess, "success"); err != nil {
				return err
			}
			v, err := s.ReadValue()
			if err != nil {
				return err
			}
			switch v[0] {
			case 't', 'f':
				env.success, env.hasSuccess = v[0] == 't', true
			default:
				return fmt.Errorf("field success is %s, not a boolean", kindName(v[0]))
			}
		case "items":
			if err := once(sawItems, "items"); err != nil {
				return err
			}
			if err := expectDelim(s, '[', "field items"); err != nil {
				return err
			}
			for i := 0; ; i++ {
				more, err := s.NextElem()
				if err != nil {
					return fmt.Errorf("items[%d]: %w", i, err)
				}
				if !more {
					break
				}
				item, err := readObject(s)
				if err != nil {
					return fmt.Errorf("items[%d]: %w", i, err)
				}
				env.items = append(env.items, item)
			}
			env.hasItems = true
		case "item":
			if err := once(sawItem, "item"); err != nil {
				return err
			}
			item, err := readObject(s)
			if err != nil {
				return fmt.Errorf("item: %w", err)
			}
			env.item = item
		case "cursor":
			if err := once(sawCursor, "cursor"); err != nil {
				return err
			}
			if err := decodeCursor(s, env); err != nil {
				return fmt.Errorf("cursor: %w", err)
			}
		case "message":
			if err := once(sawMessage, "message"); err != nil {
				return err
			}
			v, err := s.ReadValue()
			if err != nil {
				return err
			}
			if v[0] == '"' {
				var m string
				if err := json.Unmarshal(v, &m); err == nil {
					env.message = m
				}
			}
		default:
			if _, err := s.ReadValue(); err != nil {
				return err
			}
		}
	}
	if s.End() != nil {
		return errTrailingData
	}
	return nil
}

// decodeCursor reads null or {"next": "…"|null, …}.
func decodeCursor(s *jsonscan.Scanner, env *envelope) error {
	if s.PeekKind() == 'n' {
		_, err := s.ReadValue()
		return err
	}
	if err := expectDelim(s, '{', "cursor"); err != nil {
		return err
	}
	sawNext := false
	for {
		name, _, more, err := s.NextName()
		if err != nil || !more {
			return err
		}
		v, err := s.ReadValue()
		if err != nil {
			return err
		}
		if string(name) != "next" {
			continue
		}
		if sawNext {
			return errors.New(`duplicate field "next"`)
		}
		sawNext = true
		switch v[0] {
		case 'n':
			env.next, env.hasNext = "", false
		case '"':
			next := v[1 : len(v)-1]
			if bytes.IndexByte(next, '\\') >= 0 {
				next = jsonscan.AppendUnquote(nil, v)
			}
			env.next, env.hasNext = string(next), true
		default:
			return fmt.Errorf("next is %s, not a string or null", kindName(v[0]))
		}
	}
}

// readObject reads one JSON value, which must be an object, and returns the
// sub-slice of the body holding it, capped so that an append cannot write
// into the rest of the body.
func readObject(s *jsonscan.Scanner) (json.RawMessage, error) {
	v, err := s.ReadValue()
	if err != nil {
		return nil, err
	}
	if v[0] != '{' {
		return nil, fmt.Errorf("%s, not a JSON object", kindName(v[0]))
	}
	return v[:len(v):len(v)], nil
}

// expectDelim opens the object or array that must come next.
func expectDelim(s *jsonscan.Scanner, want byte, what string) error {
	switch k := s.PeekKind(); {
	case k == want:
		if want == '{' {
			return s.BeginObject()
		}
		return s.BeginArray()
	case k == 0:
		if s.Offset() == len(s.Bytes()) {
			return fmt.Errorf("%s: %w", what, io.ErrUnexpectedEOF)
		}
		_, err := s.ReadValue() // the syntax error at this byte
		return err
	default:
		return fmt.Errorf("%s is %s, not %s", what, kindName(k), kindName(want))
	}
}

// kindName names the kind of a value (by its first byte, or a kind as
// PeekKind returns it) with its article, for messages.
func kindName(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '}':
		return "the end of an object"
	case ']':
		return "the end of an array"
	case '"':
		return "a string"
	case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-':
		return "a number"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "an invalid token"
}
