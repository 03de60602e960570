package schema

import (
	"errors"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
)

// maxPrecision is the largest precision the int64 fast path supports.
const maxPrecision = 18

var pow10 = [...]int64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
}

var (
	errDecimalSyntax = errors.New("not a decimal number")
	errDecimalScale  = errors.New("more fractional digits than the column's scale")
)

// ParseDecimal parses the text of a JSON number (optional '-', integer part
// without leading zeros, optional fraction, optional exponent e/E) exactly
// into a decimal of type t, whose precision must be at most 18. It never goes
// through float64 and never rounds: digits beyond t.Scale must be zeros, else
// the error wraps ErrInvalid; a magnitude of 10^(Precision-Scale) or more
// wraps ErrOverflow. "-0" is 0.
func ParseDecimal(text string, t *arrow.Decimal128Type) (decimal128.Num, error) {
	if t.Precision < 1 || t.Precision > maxPrecision || t.Scale < 0 || t.Scale > t.Precision {
		return decimal128.Num{}, fmt.Errorf("schema: decimal(%d,%d) unsupported: %w", t.Precision, t.Scale, ErrInvalid)
	}
	v, err := parseScaled(text, t.Precision, t.Scale)
	if err != nil {
		return decimal128.Num{}, fmt.Errorf("schema: %q: %w", text, err)
	}
	return decimal128.FromI64(v), nil
}

// parseScaled returns the value of the JSON number s multiplied by 10^scale.
// Errors wrap ErrInvalid or ErrOverflow. It does not allocate on success.
func parseScaled[T ~string | ~[]byte](s T, precision, scale int32) (int64, error) {
	i, n := 0, len(s)
	neg := false
	if i < n && s[i] == '-' {
		neg = true
		i++
	}
	var (
		mant      uint64 // significant digits up to the last non-zero one
		sig       int    // number of digits in mant (after leading zeros)
		zeros     int    // zero digits seen after the last non-zero digit
		frac      int    // digits after the decimal point
		tooLong   bool   // more than maxPrecision significant digits
		intDigits int
	)
	digit := func(c byte, inFrac bool) {
		if inFrac {
			frac++
		}
		if c == '0' {
			if sig > 0 {
				zeros++
			}
			return
		}
		need := sig + zeros + 1
		if tooLong || need > maxPrecision {
			tooLong = true
			sig = need
			zeros = 0
			return
		}
		for ; zeros > 0; zeros-- {
			mant *= 10
		}
		mant = mant*10 + uint64(c-'0')
		sig = need
	}
	// integer part: 0 | [1-9][0-9]*
	start := i
	for i < n && s[i] >= '0' && s[i] <= '9' {
		digit(s[i], false)
		i++
	}
	intDigits = i - start
	if intDigits == 0 || (intDigits > 1 && s[start] == '0') {
		return 0, fmt.Errorf("%w: %w", errDecimalSyntax, ErrInvalid)
	}
	if i < n && s[i] == '.' {
		i++
		fs := i
		for i < n && s[i] >= '0' && s[i] <= '9' {
			digit(s[i], true)
			i++
		}
		if i == fs {
			return 0, fmt.Errorf("%w: %w", errDecimalSyntax, ErrInvalid)
		}
	}
	exp := 0
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < n && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < n && s[i] >= '0' && s[i] <= '9' {
			if exp < 100000 { // clamp: any larger exponent is out of range anyway
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == es {
			return 0, fmt.Errorf("%w: %w", errDecimalSyntax, ErrInvalid)
		}
		if eneg {
			exp = -exp
		}
	}
	if i != n {
		return 0, fmt.Errorf("%w: %w", errDecimalSyntax, ErrInvalid)
	}
	if sig == 0 { // all zeros, any exponent, any sign
		return 0, nil
	}
	// value = mant * 10^(zeros - frac + exp); scaled = value * 10^scale
	shift := zeros - frac + exp + int(scale)
	if shift < 0 {
		return 0, fmt.Errorf("%w (scale %d): %w", errDecimalScale, scale, ErrInvalid)
	}
	if tooLong || shift > maxPrecision {
		return 0, fmt.Errorf("precision %d: %w", precision, ErrOverflow)
	}
	limit := uint64(pow10[precision])
	v := mant
	for ; shift > 0; shift-- {
		v *= 10 // mant < 10^18 and shift <= 18: overflow is caught below
		if v >= limit {
			return 0, fmt.Errorf("precision %d: %w", precision, ErrOverflow)
		}
	}
	if v >= limit {
		return 0, fmt.Errorf("precision %d: %w", precision, ErrOverflow)
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}
