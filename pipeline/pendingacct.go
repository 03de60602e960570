package pipeline

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// pendingAccount returns the _account of a pending item of a user's list, as
// encoding/json reads it into a string field (pendingAccountJSON), "" when it has
// none, or ok false when the item is not a JSON object encoding/json accepts or
// _account is not a string. Items of the usual shape are read with the jsonscan
// scanner: only the top-level names are looked at. An item that might read
// otherwise under encoding/json's rules (a name that is escaped, not ASCII, or
// _account in another case; _account twice; an escaped or invalid UTF-8 value)
// goes to encoding/json.
func pendingAccount(s *jsonscan.Scanner, item []byte) (string, bool) {
	if acct, ok, sure := fastPendingAccount(s, item); sure {
		return acct, ok
	}
	return pendingAccountJSON(item)
}

// pendingAccountJSON is pendingAccount with encoding/json: the reference.
func pendingAccountJSON(item []byte) (string, bool) {
	var head struct {
		Account string `json:"_account"`
	}
	if err := json.Unmarshal(item, &head); err != nil {
		return "", false
	}
	return head.Account, true
}

// fastPendingAccount is pendingAccount's fast path; sure is false where it leaves
// the item to encoding/json.
func fastPendingAccount(s *jsonscan.Scanner, item []byte) (acct string, ok, sure bool) {
	s.Reset(item, jsonscan.Options{AllowDuplicateNames: true, AllowInvalidUTF8: true})
	if s.PeekKind() != '{' || s.BeginObject() != nil {
		return "", false, false
	}
	seen := false
	for {
		name, raw, more, err := s.NextName()
		if err != nil {
			return "", false, false
		}
		if !more {
			break
		}
		if len(raw) != len(name)+2 {
			return "", false, false // escaped
		}
		for _, c := range name {
			if c >= utf8.RuneSelf {
				return "", false, false // encoding/json folds Unicode case
			}
		}
		v, err := s.ReadValue()
		if err != nil {
			return "", false, false
		}
		switch {
		case string(name) == "_account":
			if seen {
				return "", false, false
			}
			seen = true
			switch v[0] {
			case 'n': // leaves the field as it is: ""
			case '"':
				in := v[1 : len(v)-1]
				if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
					return "", false, false
				}
				acct = string(in)
			default:
				return "", false, true // encoding/json: cannot unmarshal into a string
			}
		case len(name) == len("_account") && bytes.EqualFold(name, []byte("_account")):
			return "", false, false
		}
	}
	if s.End() != nil {
		return "", false, false
	}
	return acct, true, true
}
