package schema

import (
	"errors"
	"fmt"
	"time"
)

var (
	errTimestamp    = errors.New("not an RFC 3339 timestamp")
	errBadTimestamp = fmt.Errorf("%w: %w", errTimestamp, ErrInvalid)
)

// parseTimestamp parses an RFC 3339 date-time (any offset, 'T'/'t' and
// 'Z'/'z' accepted, any number of fractional-second digits) into UTC
// microseconds since the epoch. Digits beyond microseconds are truncated
// toward the past. It does not allocate on success.
func parseTimestamp[T ~string | ~[]byte](s T) (int64, error) {
	bad := errBadTimestamp
	// 2006-01-02T15:04:05Z is the shortest form.
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, bad
	}
	year, ok1 := atoiN(s[0:4])
	month, ok2 := atoiN(s[5:7])
	day, ok3 := atoiN(s[8:10])
	hour, ok4 := atoiN(s[11:13])
	minute, ok5 := atoiN(s[14:16])
	sec, ok6 := atoiN(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return 0, bad
	}
	i := 19
	micros := 0
	if s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-fs < 6 {
				micros = micros*10 + int(s[i]-'0')
			}
			i++
		}
		nd := i - fs
		if nd == 0 {
			return 0, bad
		}
		for ; nd < 6; nd++ {
			micros *= 10
		}
	}
	if i >= len(s) {
		return 0, bad
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, bad
		}
		oh, ok1 := atoiN(s[i+1 : i+3])
		om, ok2 := atoiN(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, bad
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, bad
	}
	if i != len(s) {
		return 0, bad
	}
	days := daysFromCivil(year, month, day)
	secs := int64(days)*86400 + int64(hour*3600+minute*60+sec) - int64(offset)
	return secs*1_000_000 + int64(micros), nil
}

func atoiN[T ~string | ~[]byte](s T) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// localDate returns the calendar date, in loc, of the instant given as UTC
// microseconds, as days since the epoch.
func localDate(micros int64, loc *time.Location) int32 {
	t := time.UnixMicro(micros).In(loc)
	y, m, d := t.Date()
	return int32(daysFromCivil(y, int(m), d))
}
