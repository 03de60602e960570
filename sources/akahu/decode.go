package akahu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
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

// decodeEnvelope parses body into env without copying items: each item is a
// sub-slice of body. It validates the whole body as JSON, requires a
// top-level object, requires every item (and item) to be a JSON object, and
// requires success to be a boolean and cursor.next a string or null.
// Unknown top-level fields are skipped.
func decodeEnvelope(d *jsontext.Decoder, body []byte, env *envelope) error {
	env.reset()
	d.Reset(bytes.NewBuffer(body),
		jsontext.AllowDuplicateNames(true), // checked by hand at the top level; items are passed through
		jsontext.AllowInvalidUTF8(true),    // bank text is passed through; never fail a page on one byte
	)
	if err := expectDelim(d, '{', "body"); err != nil {
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
		kind, err := peek(d)
		if err != nil {
			return err
		}
		if kind == '}' {
			break
		}
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		name := tok.String()
		switch name {
		case "success":
			if err := once(sawSuccess, name); err != nil {
				return err
			}
			tok, err := d.ReadToken()
			if err != nil {
				return err
			}
			switch tok.Kind() {
			case 't', 'f':
				env.success, env.hasSuccess = tok.Bool(), true
			default:
				return fmt.Errorf("field success is %s, not a boolean", kindName(tok.Kind()))
			}
		case "items":
			if err := once(sawItems, name); err != nil {
				return err
			}
			if err := expectDelim(d, '[', "field items"); err != nil {
				return err
			}
			for i := 0; ; i++ {
				kind, err := peek(d)
				if err != nil {
					return err
				}
				if kind == ']' {
					break
				}
				item, err := readObject(d, body)
				if err != nil {
					return fmt.Errorf("items[%d]: %w", i, err)
				}
				env.items = append(env.items, item)
			}
			if _, err := d.ReadToken(); err != nil {
				return err
			}
			env.hasItems = true
		case "item":
			if err := once(sawItem, name); err != nil {
				return err
			}
			item, err := readObject(d, body)
			if err != nil {
				return fmt.Errorf("item: %w", err)
			}
			env.item = item
		case "cursor":
			if err := once(sawCursor, name); err != nil {
				return err
			}
			if err := decodeCursor(d, env); err != nil {
				return fmt.Errorf("cursor: %w", err)
			}
		case "message":
			if err := once(sawMessage, name); err != nil {
				return err
			}
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			if v.Kind() == '"' {
				var s string
				if err := json.Unmarshal(v, &s); err == nil {
					env.message = s
				}
			}
		default:
			if err := d.SkipValue(); err != nil {
				return err
			}
		}
	}
	if _, err := d.ReadToken(); err != nil { // the closing '}'
		return err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		if err == nil {
			return errTrailingData
		}
		return err
	}
	return nil
}

// decodeCursor reads null or {"next": "…"|null, …}.
func decodeCursor(d *jsontext.Decoder, env *envelope) error {
	kind, err := peek(d)
	if err != nil {
		return err
	}
	if kind == 'n' {
		_, err := d.ReadToken()
		return err
	}
	if err := expectDelim(d, '{', "cursor"); err != nil {
		return err
	}
	sawNext := false
	for {
		kind, err := peek(d)
		if err != nil {
			return err
		}
		if kind == '}' {
			_, err := d.ReadToken()
			return err
		}
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		if tok.String() != "next" {
			if err := d.SkipValue(); err != nil {
				return err
			}
			continue
		}
		if sawNext {
			return errors.New(`duplicate field "next"`)
		}
		sawNext = true
		tok, err = d.ReadToken()
		if err != nil {
			return err
		}
		switch tok.Kind() {
		case 'n':
			env.next, env.hasNext = "", false
		case '"':
			env.next, env.hasNext = tok.String(), true
		default:
			return fmt.Errorf("next is %s, not a string or null", kindName(tok.Kind()))
		}
	}
}

// readObject reads one JSON value, which must be an object, and returns the
// sub-slice of body holding it.
func readObject(d *jsontext.Decoder, body []byte) (json.RawMessage, error) {
	v, err := d.ReadValue()
	if err != nil {
		return nil, err
	}
	if v.Kind() != '{' {
		return nil, fmt.Errorf("%s, not a JSON object", kindName(v.Kind()))
	}
	end := d.InputOffset()
	start := end - int64(len(v))
	if start < 0 || end > int64(len(body)) {
		return nil, errors.New("decoder offset outside the body") // cannot happen
	}
	return body[start:end:end], nil
}

func expectDelim(d *jsontext.Decoder, want jsontext.Kind, what string) error {
	tok, err := d.ReadToken()
	if err == io.EOF {
		return fmt.Errorf("%s: %w", what, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	if k := tok.Kind(); k != want {
		return fmt.Errorf("%s is %s, not %s", what, kindName(k), kindName(want))
	}
	return nil
}

// peek returns the next kind, or the decoder's error if there is none.
func peek(d *jsontext.Decoder) (jsontext.Kind, error) {
	if k := d.PeekKind(); k != 0 {
		return k, nil
	}
	_, err := d.ReadToken()
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return 0, err
}

// kindName names a kind with its article, for messages.
func kindName(k jsontext.Kind) string {
	switch k {
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
	case '0':
		return "a number"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "an invalid token"
}
