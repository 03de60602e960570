package akahu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// decodeAccount types the fields the pipeline needs. connection may be an
// object {_id,name} or, in older responses, a bare id string. Its semantics are
// encoding/json's (decodeAccountJSON): an account in the usual shape takes a fast
// path over the jsonscan scanner that yields what encoding/json would, and one
// the fast path does not handle the same way goes to encoding/json.
func decodeAccount(s *jsonscan.Scanner, raw json.RawMessage) (Account, error) {
	if a, ok := fastAccount(s, raw); ok {
		if a.ID == "" {
			return Account{}, errNoAccountID
		}
		return a, nil
	}
	return decodeAccountJSON(raw)
}

var errNoAccountID = errors.New(`account has no "_id"`)

// decodeAccountJSON is decodeAccount with encoding/json: the reference, and the
// path for what the fast path leaves alone.
func decodeAccountJSON(raw json.RawMessage) (Account, error) {
	var w struct {
		ID            string          `json:"_id"`
		Authorisation string          `json:"_authorisation"`
		Name          string          `json:"name"`
		Status        string          `json:"status"`
		Type          string          `json:"type"`
		Attributes    []string        `json:"attributes"`
		Connection    json.RawMessage `json:"connection"`
		Balance       *struct {
			Currency string `json:"currency"`
		} `json:"balance"`
		Refreshed *struct {
			Transactions json.RawMessage `json:"transactions"`
		} `json:"refreshed"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Account{}, err
	}
	if w.ID == "" {
		return Account{}, errNoAccountID
	}
	a := Account{
		ID: w.ID, Name: w.Name, Status: w.Status, Type: w.Type,
		AuthorisationID: w.Authorisation, Attributes: w.Attributes, Raw: raw,
	}
	if w.Balance != nil {
		a.Currency = w.Balance.Currency
	}
	if w.Refreshed != nil {
		// A timestamp Akahu renders oddly is not worth failing the user's accounts for.
		var s string
		if json.Unmarshal(w.Refreshed.Transactions, &s) == nil {
			a.TransactionsRefreshed, _ = time.Parse(time.RFC3339Nano, s)
		}
	}
	if len(w.Connection) > 0 {
		var conn struct {
			ID   string `json:"_id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(w.Connection, &conn); err == nil {
			a.ConnectionID, a.ConnectionName = conn.ID, conn.Name
		} else if err := json.Unmarshal(w.Connection, &a.ConnectionID); err != nil {
			return Account{}, fmt.Errorf("account %s: connection is neither an object nor a string", w.ID)
		}
	}
	return a, nil
}

// Member names the fast path knows, per object.
var (
	accountNames    = []string{"_id", "_authorisation", "name", "status", "type", "attributes", "connection", "balance", "refreshed"}
	connectionNames = []string{"_id", "name"}
	balanceNames    = []string{"currency"}
	refreshedNames  = []string{"transactions"}
)

// fastAccount decodes raw as decodeAccountJSON does, or reports false where it
// might not: a syntax error, a known member named twice or matched only
// case-insensitively (encoding/json's rules), a member name that is escaped or not
// ASCII, a kept string with escapes or invalid UTF-8, or a value of a type
// encoding/json would refuse. Unknown members are skipped.
func fastAccount(s *jsonscan.Scanner, raw []byte) (a Account, ok bool) {
	s.Reset(raw, jsonscan.Options{AllowDuplicateNames: true, AllowInvalidUTF8: true})
	if s.PeekKind() != '{' {
		return Account{}, false
	}
	ok = members(s, accountNames, func(i int) (ok bool) {
		switch i {
		case 0:
			a.ID, ok = plainString(s)
		case 1:
			a.AuthorisationID, ok = plainString(s)
		case 2:
			a.Name, ok = plainString(s)
		case 3:
			a.Status, ok = plainString(s)
		case 4:
			a.Type, ok = plainString(s)
		case 5:
			a.Attributes, ok = fastAttributes(s)
		case 6:
			ok = fastConnection(s, &a)
		case 7:
			ok = fastBalance(s, &a)
		case 8:
			ok = fastRefreshed(s, &a)
		default:
			ok = skipValue(s)
		}
		return ok
	})
	if !ok {
		return Account{}, false
	}
	if s.End() != nil {
		return Account{}, false
	}
	a.Raw = raw
	return a, true
}

// knownMember reads the next member name of the open object and returns its index
// in names (-1 for a name that is none of them), more false at the object's end,
// and ok false where the fast path stops: a syntax error, a name with escapes or
// bytes beyond ASCII (encoding/json folds Unicode case), a name equal to a known
// one only case-insensitively, or a known name seen before (bits of seen).
func knownMember(s *jsonscan.Scanner, names []string, seen *int) (i int, more, ok bool) {
	name, rawName, more, err := s.NextName()
	if err != nil {
		return 0, false, false
	}
	if !more {
		return 0, false, true
	}
	if len(rawName) != len(name)+2 {
		return 0, false, false // escaped
	}
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return 0, false, false
		}
	}
	for k, known := range names {
		if string(name) == known {
			if *seen&(1<<k) != 0 {
				return 0, false, false
			}
			*seen |= 1 << k
			return k, true, true
		}
		if len(name) == len(known) && bytes.EqualFold(name, []byte(known)) {
			return 0, false, false
		}
	}
	return -1, true, true
}

// members reads the object that starts at the scanner, calling value for each
// member with its index in names (-1 for an unknown name) to read or skip its
// value; false where knownMember or value stops the fast path.
func members(s *jsonscan.Scanner, names []string, value func(i int) bool) bool {
	if s.BeginObject() != nil {
		return false
	}
	seen := 0
	for {
		i, more, ok := knownMember(s, names, &seen)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		if !value(i) {
			return false
		}
	}
}

// skipValue reads and drops the next value.
func skipValue(s *jsonscan.Scanner) bool {
	_, err := s.ReadValue()
	return err == nil
}

// plainString reads a string or null ("", as encoding/json leaves a zero string
// alone): ok false for another type, escapes or invalid UTF-8.
func plainString(s *jsonscan.Scanner) (string, bool) {
	v, err := s.ReadValue()
	if err != nil {
		return "", false
	}
	switch v[0] {
	case 'n':
		return "", true
	case '"':
		in := v[1 : len(v)-1]
		if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
			return "", false
		}
		return string(in), true
	}
	return "", false
}

// fastAttributes reads null (nil) or an array of strings (nulls are "").
func fastAttributes(s *jsonscan.Scanner) ([]string, bool) {
	switch s.PeekKind() {
	case 'n':
		return nil, skipValue(s)
	case '[':
	default:
		return nil, false
	}
	if s.BeginArray() != nil {
		return nil, false
	}
	out := make([]string, 0, 4) // an account has a few
	for {
		more, err := s.NextElem()
		if err != nil {
			return nil, false
		}
		if !more {
			return out, true
		}
		v, ok := plainString(s)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
}

// fastConnection reads null (no connection), a string (its id) or an object with
// _id and name.
func fastConnection(s *jsonscan.Scanner, a *Account) bool {
	switch s.PeekKind() {
	case 'n':
		return skipValue(s)
	case '"':
		var ok bool
		a.ConnectionID, ok = plainString(s)
		return ok
	case '{':
	default:
		return false
	}
	return members(s, connectionNames, func(i int) (ok bool) {
		switch i {
		case 0:
			a.ConnectionID, ok = plainString(s)
		case 1:
			a.ConnectionName, ok = plainString(s)
		default:
			ok = skipValue(s)
		}
		return ok
	})
}

// fastBalance reads null or an object whose currency is the account's.
func fastBalance(s *jsonscan.Scanner, a *Account) bool {
	switch s.PeekKind() {
	case 'n':
		return skipValue(s)
	case '{':
	default:
		return false
	}
	return members(s, balanceNames, func(i int) (ok bool) {
		if i != 0 {
			return skipValue(s)
		}
		a.Currency, ok = plainString(s)
		return ok
	})
}

// fastRefreshed reads null or an object whose transactions, when an RFC 3339
// string, is TransactionsRefreshed (anything else leaves it zero).
func fastRefreshed(s *jsonscan.Scanner, a *Account) bool {
	switch s.PeekKind() {
	case 'n':
		return skipValue(s)
	case '{':
	default:
		return false
	}
	return members(s, refreshedNames, func(i int) bool {
		if i != 0 {
			return skipValue(s)
		}
		v, err := s.ReadValue()
		if err != nil {
			return false
		}
		if v[0] == '"' {
			in := v[1 : len(v)-1]
			if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
				return false
			}
			a.TransactionsRefreshed, _ = time.Parse(time.RFC3339Nano, string(in))
		}
		return true
	})
}

// pendingNames are the members of a pending item PendingOwner reads.
var pendingNames = []string{"_account", "_user"}

// PendingOwner returns the _account and _user of a pending item of a user's list
// (AllPending), as encoding/json reads them into string fields (pendingOwnerJSON):
// "" for one it has not, or ok false when the item is not a JSON object
// encoding/json accepts or either is not a string. Items of the usual shape are
// read with the jsonscan scanner, s, looking only at the top-level names; an item
// that might read otherwise under encoding/json's rules (see knownMember and
// plainString) goes to encoding/json.
func PendingOwner(s *jsonscan.Scanner, item []byte) (account, user string, ok bool) {
	s.Reset(item, jsonscan.Options{AllowDuplicateNames: true, AllowInvalidUTF8: true})
	if s.PeekKind() == '{' && members(s, pendingNames, func(i int) (ok bool) {
		switch i {
		case 0:
			account, ok = plainString(s)
		case 1:
			user, ok = plainString(s)
		default:
			ok = skipValue(s)
		}
		return ok
	}) && s.End() == nil {
		return account, user, true
	}
	return pendingOwnerJSON(item)
}

// pendingOwnerJSON is PendingOwner with encoding/json: the reference.
func pendingOwnerJSON(item []byte) (account, user string, ok bool) {
	var head struct {
		Account string `json:"_account"`
		User    string `json:"_user"`
	}
	if err := json.Unmarshal(item, &head); err != nil {
		return "", "", false
	}
	return head.Account, head.User, true
}
