package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

var (
	strict  = Options{}
	lenient = Options{AllowInvalidUTF8: true, AllowDuplicateNames: true}
)

func jsontextOpts(o Options) []jsontext.Options {
	return []jsontext.Options{jsontext.AllowInvalidUTF8(o.AllowInvalidUTF8), jsontext.AllowDuplicateNames(o.AllowDuplicateNames)}
}

// readAll reads b as one value with ReadValue.
func readAll(s *Scanner, b []byte, o Options) ([]byte, error) {
	s.Reset(b, o)
	v, err := s.ReadValue()
	if err != nil {
		return nil, err
	}
	return v, s.End()
}

// walkAll reads b with the token API (Begin*, NextName, NextElem), reading
// scalars with ReadValue, and returns the unescaped names it saw.
func walkAll(s *Scanner, b []byte, o Options) ([]string, error) {
	s.Reset(b, o)
	var names []string
	var walk func() error
	walk = func() error {
		switch s.PeekKind() {
		case '{':
			if err := s.BeginObject(); err != nil {
				return err
			}
			for {
				name, raw, more, err := s.NextName()
				if err != nil || !more {
					return err
				}
				if raw[0] != '"' || raw[len(raw)-1] != '"' {
					return fmt.Errorf("raw name %q is not quoted", raw)
				}
				names = append(names, string(name))
				if err := walk(); err != nil {
					return err
				}
			}
		case '[':
			if err := s.BeginArray(); err != nil {
				return err
			}
			for {
				more, err := s.NextElem()
				if err != nil || !more {
					return err
				}
				if err := walk(); err != nil {
					return err
				}
			}
		}
		_, err := s.ReadValue()
		return err
	}
	if err := walk(); err != nil {
		return nil, err
	}
	if s.Depth() != 0 {
		return nil, fmt.Errorf("depth %d after the value", s.Depth())
	}
	return names, s.End()
}

func TestScanErrors(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	many := func(dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 2 * manyNames {
			fmt.Fprintf(&b, `"n%d":%d,`, i, i)
		}
		b.WriteString(`"` + dup + `":0}`)
		return b.String()
	}
	for _, tc := range []struct {
		name, in string
		opts     Options
		want     string // "" for valid; else a substring of the error
		eof      bool
		offset   int
	}{
		{"object", ` {"a":[1,-2.5e+3,true,false,null,"x\n\u00e9"],"b":{}} `, strict, "", false, 0},
		{"whitespace everywhere", " \t{ \"a\" : [ 1 , { \"b\"\r\n:\nnull } ] , \"c\" : { } , \"d\" : [ ] }\n", strict, "", false, 0},
		{"empty", ``, strict, "unexpected EOF", true, 0},
		{"truncated object", `{"a":1`, strict, "unexpected EOF", true, 6},
		{"truncated string", `{"a":"xy`, strict, "unexpected EOF", true, 8},
		{"truncated literal", `[tru`, strict, "unexpected EOF", true, 4},
		{"truncated escape", `"\u00`, strict, "unexpected EOF", true, 5},
		{"truncated surrogate pair", `"\ud83d\u`, strict, "unexpected EOF", true, 9},
		{"trailing comma", `{"a":1,}`, strict, `invalid character '}' at start of an object member name`, false, 7},
		{"missing comma", `[1 2]`, strict, `invalid character '2' after an array element`, false, 3},
		{"missing colon", `{"a" 1}`, strict, `invalid character '1' after an object member name`, false, 5},
		{"bad literal", `[trUe]`, strict, `invalid character 'U' within literal true`, false, 3},
		{"leading zero", `[01]`, strict, `invalid character '1' after an array element`, false, 2},
		{"bare minus", `-x`, strict, `invalid character 'x' in number`, false, 1},
		{"bad fraction", `1.e3`, strict, `invalid character 'e' in number`, false, 2},
		{"control character", "\"a\tb\"", strict, `invalid character '\t' in string`, false, 2},
		{"bad escape", `"a\x"`, strict, `invalid escape sequence "\\x"`, false, 2},
		{"bad hex", `"\u12g4"`, strict, `invalid escape sequence "\\u12g"`, false, 1},
		{"invalid UTF-8", "\"caf\xe9\"", strict, "invalid UTF-8", false, 4},
		{"invalid UTF-8 allowed", "\"caf\xe9\"", lenient, "", false, 0},
		{"lone high surrogate", `"\ud800x"`, strict, `invalid escape sequence "\\ud800"`, false, 1},
		{"lone low surrogate", `"\udc00\udc00"`, strict, `invalid escape sequence "\\udc00\\udc00"`, false, 1},
		{"surrogate pair", `"\ud83d\ude00"`, strict, "", false, 0},
		{"lone surrogate allowed", `"\ud800"`, lenient, "", false, 0},
		{"duplicate name", `{"a":1,"b":{"a":2},"a":3}`, strict, `duplicate object member name "a"`, false, 19},
		{"duplicate name by escape", `{"a":1,"\u0061":2}`, strict, `duplicate object member name "a"`, false, 7},
		{"duplicate in array of objects", `[{"a":1},{"a":1,"a":2}]`, strict, `duplicate object member name "a"`, false, 16},
		{"names sharing a bloom bit", `{"axb":1,"ayb":2}`, strict, "", false, 0},
		{"duplicate after a bloom collision", `{"axb":1,"ayb":2,"axb":3}`, strict, `duplicate object member name "axb"`, false, 17},
		{"same name in sibling objects", `[{"a":1},{"a":1}]`, strict, "", false, 0},
		{"duplicate allowed", `{"a":1,"a":2}`, lenient, "", false, 0},
		{"duplicate among many names", many("n7"), strict, `duplicate object member name "n7"`, false, len(many("n7")) - 7},
		{"many names", many("z"), strict, "", false, 0},
		{"max depth", deep(MaxDepth), strict, "", false, 0},
		{"too deep", deep(MaxDepth + 1), strict, "exceeded max depth", false, MaxDepth},
		{"trailing data", `{} {}`, strict, "data after the top-level JSON value", false, 0},
		{"non-string name", `{1:2}`, strict, `invalid character '1' at start of an object member name`, false, 1},
		{"invalid byte", "\xff", strict, `invalid character '\xff' (expecting a value)`, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s Scanner
			_, err := readAll(&s, []byte(tc.in), tc.opts)
			_, werr := walkAll(new(Scanner), []byte(tc.in), tc.opts)
			if tc.want == "" {
				if err != nil || werr != nil {
					t.Fatalf("ReadValue: %v; token API: %v", err, werr)
				}
				return
			}
			if err == nil || werr == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadValue: %v; token API: %v; want an error containing %q", err, werr, tc.want)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.eof {
				t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = %v", err, got)
			}
			var se *Error
			if errors.As(err, &se) && se.Offset != tc.offset {
				t.Errorf("offset %d, want %d (%v)", se.Offset, tc.offset, err)
			}
		})
	}
}

func TestAppendUnquote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`""`, ``},
		{`"plain"`, `plain`},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
		{`"caf\u00e9 \ud83d\ude00"`, "café 😀"},
		{`"\ud800x"`, "\uFFFDx"},
		{`"\udc00\ud800"`, "\uFFFD\uFFFD"},
		{"\"bad \xff\"", "bad \xff"},
	} {
		if got := string(AppendUnquote([]byte("pre"), []byte(tc.in))); got != "pre"+tc.want {
			t.Errorf("AppendUnquote(%s) = %q, want %q", tc.in, got, "pre"+tc.want)
		}
	}
}

// The scanner must not allocate on the common path (short objects, no
// escapes), with duplicate names checked.
func TestScanAllocs(t *testing.T) {
	in := []byte(`{"_id":"trans_1","amount":-1.5,"meta":{"a":[1,2,{"b":null}],"c":"d"},"x":"caf\u00e9"}`)
	var s Scanner
	if _, err := walkAll(&s, in, strict); err != nil { // warm up the scratch slices
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(in, strict)
		if _, err := s.ReadValue(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadValue allocates %v times per object", allocs)
	}
}

// FuzzScan is differential: the scanner accepts exactly what jsontext
// accepts with the same options, through ReadValue and through the token
// API; what it returns is the value's text, and names and strings unescape
// as jsontext unescapes them.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,true,false,null,"x\n\u00e9"],"b":{}}`,
		" \t{ \"a\" : [ 1 , { \"b\"\r\n:\nnull } ] , \"c\" : { } , \"d\" : [ ] }\n",
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, "\"caf\xe9\"", `"\ud83d\ude00"`, `"\ud800"`,
		`[01]`, `1.e3`, `{"a" 1}`, `[{"a":1},{"a":1,"a":2}]`, ` 0 `, `-0.0e-0`, `"\u00"`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	var s Scanner
	f.Fuzz(func(t *testing.T, in []byte, lax bool) {
		o := strict
		if lax {
			o = lenient
		}
		want := jsontext.Value(in).IsValid(jsontextOpts(o)...)
		v, err := readAll(&s, in, o)
		if (err == nil) != want {
			t.Fatalf("ReadValue(%q, %+v): err = %v, jsontext valid = %v", in, o, err, want)
		}
		names, werr := walkAll(&s, in, o)
		if (werr == nil) != want {
			t.Fatalf("token API (%q, %+v): err = %v, jsontext valid = %v", in, o, werr, want)
		}
		var se *Error
		if err != nil && !errors.As(err, &se) && !errors.Is(err, ErrTrailingData) {
			t.Fatalf("error %v is neither an *Error nor ErrTrailingData", err)
		}
		if !want {
			return
		}
		if !bytes.Equal(v, bytes.Trim(in, " \t\r\n")) {
			t.Fatalf("value %q, input %q", v, in)
		}
		if lax {
			return // jsontext rewrites invalid UTF-8 when unquoting
		}
		// Names as jsontext reads them.
		d := jsontext.NewDecoder(bytes.NewReader(in))
		var wantNames []string
		for {
			tok, err := d.ReadToken()
			if err != nil {
				break
			}
			if tok.Kind() == '"' && d.StackDepth() > 0 {
				if k, n := d.StackIndex(d.StackDepth()); k == '{' && n%2 == 1 {
					wantNames = append(wantNames, tok.String())
				}
			}
		}
		if fmt.Sprint(names) != fmt.Sprint(wantNames) {
			t.Fatalf("names %q, jsontext %q", names, wantNames)
		}
		if v[0] == '"' {
			want, err := jsontext.AppendUnquote(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendUnquote(nil, v); !bytes.Equal(got, want) {
				t.Fatalf("AppendUnquote(%q) = %q, jsontext %q", v, got, want)
			}
		}
	})
}
