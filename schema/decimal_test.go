package schema

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/decimal128"
)

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  string // "money" or "rate"
		want string // ToString at the type's scale, or "" on error
		err  error
	}{
		{in: "0.1", want: "0.1000"},
		{in: "0.2", want: "0.2000"},
		{in: "-11.50", want: "-11.5000"},
		{in: "1e2", want: "100.0000"},
		{in: "1E+2", want: "100.0000"},
		{in: "12345e-4", want: "1.2345"},
		{in: "1234567.89", want: "1234567.8900"},
		{in: "-0", want: "0.0000"},
		{in: "-0.0e-99999", want: "0.0000"},
		{in: "0", want: "0.0000"},
		{in: "100", want: "100.0000"},
		{in: "1.23450000000000000000", want: "1.2345"},           // extra digits are zeros: exact
		{in: "99999999999999.9999", want: "99999999999999.9999"}, // largest Money
		{in: "-99999999999999.9999", want: "-99999999999999.9999"},
		{in: "0.00001", err: ErrInvalid}, // more fractional digits than scale 4
		{in: "1.23456", err: ErrInvalid},
		{in: "1e-5", err: ErrInvalid},
		{in: "100000000000000", err: ErrOverflow}, // 10^14 * 10^4 = 10^18 does not fit 18 digits
		{in: "1e14", err: ErrOverflow},
		{in: "1e99999999999", err: ErrOverflow},
		{in: "12345678901234567890123", err: ErrOverflow},
		{in: "123456789012345678901.5", err: ErrOverflow},
		{in: "", err: ErrInvalid},
		{in: "abc", err: ErrInvalid},
		{in: "1.", err: ErrInvalid},
		{in: ".5", err: ErrInvalid},
		{in: "+1", err: ErrInvalid},
		{in: "01", err: ErrInvalid},
		{in: "1e", err: ErrInvalid},
		{in: "1.5x", err: ErrInvalid},
		{in: " 1", err: ErrInvalid},
		{in: "NaN", err: ErrInvalid},
		{in: "1.0712345678", typ: "rate", want: "1.0712345678"},
		{in: "99999999.9999999999", typ: "rate", want: "99999999.9999999999"},
		{in: "100000000", typ: "rate", err: ErrOverflow},
		{in: "0.00000000001", typ: "rate", err: ErrInvalid},
	} {
		typ := Money
		if tc.typ == "rate" {
			typ = Rate
		}
		got, err := ParseDecimal(tc.in, typ)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseDecimal(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDecimal(%q): %v", tc.in, err)
			continue
		}
		if s := got.ToString(typ.Scale); s != tc.want {
			t.Errorf("ParseDecimal(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

func TestDecimalSumIsExact(t *testing.T) {
	a, err := ParseDecimal("0.1", Money)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseDecimal("0.2", Money)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseDecimal("0.3", Money)
	if err != nil {
		t.Fatal(err)
	}
	if sum := a.Add(b); sum != c {
		t.Fatalf("0.1 + 0.2 = %s, want exactly 0.3", sum.ToString(4))
	}
	x, y := 0.1, 0.2
	if x+y == 0.3 { // the float64 path this package never takes
		t.Fatal("float64 arithmetic unexpectedly exact")
	}
}

// FuzzParseDecimal checks the parser against math/big: whenever the text is
// a valid JSON number, success means the exact value scaled is an integer
// that fits, and the result equals it.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0.1", "-11.50", "1e2", "1234567.89", "-0", "1e-5", "99999999999999.9999", "1.5e3", "0.00010"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseScaled(s, Money.Precision, Money.Scale)
		grammar := jsonNumber(s)
		r, exact := new(big.Rat).SetString(s) // fails on astronomically large exponents
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("%q: unclassified error %v", s, err)
			}
			if grammar && exact {
				scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
				if scaled.IsInt() && scaled.Num().CmpAbs(big.NewInt(1e18)) < 0 {
					t.Fatalf("%q rejected (%v) but %s fits", s, err, scaled.Num())
				}
			}
			return
		}
		if !grammar {
			t.Fatalf("%q accepted as %d but is not a JSON number", s, got)
		}
		if exact {
			scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
			if !scaled.IsInt() || scaled.Num().Cmp(big.NewInt(got)) != 0 {
				t.Fatalf("%q = %d, exact value ×10^4 is %s", s, got, scaled.RatString())
			}
		} else if got != 0 {
			t.Fatalf("%q = %d: only zero survives a huge exponent", s, got)
		}
		if got <= -1e18 || got >= 1e18 {
			t.Fatalf("%q = %d beyond precision", s, got)
		}
		if decimal128.FromI64(got).ToString(4) == "" {
			t.Fatal("unformattable")
		}
	})
}

// jsonNumber is an independent check of the JSON number grammar.
func jsonNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	digits := func() int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		d := n
		s = s[n:]
		return d
	}
	if len(s) > 1 && s[0] == '0' && s[1] >= '0' && s[1] <= '9' {
		return false
	}
	if digits() == 0 {
		return false
	}
	if strings.HasPrefix(s, ".") {
		s = s[1:]
		if digits() == 0 {
			return false
		}
	}
	if strings.HasPrefix(s, "e") || strings.HasPrefix(s, "E") {
		s = s[1:]
		if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
			s = s[1:]
		}
		if digits() == 0 {
			return false
		}
	}
	return s == ""
}
