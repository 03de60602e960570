package schema

import (
	"errors"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // UTC, microseconds; "" means error
	}{
		{"2020-01-01T11:00:00.000Z", "2020-01-01T11:00:00.000000Z"},
		{"2020-01-01T11:00:00Z", "2020-01-01T11:00:00.000000Z"},
		{"2020-01-01t11:00:00z", "2020-01-01T11:00:00.000000Z"},
		{"2020-01-02T00:00:00.5+13:00", "2020-01-01T11:00:00.500000Z"},
		{"2019-12-31T19:30:00.123456-04:30", "2020-01-01T00:00:00.123456Z"},
		{"2020-01-01T00:00:00.1234569Z", "2020-01-01T00:00:00.123456Z"}, // truncated, not rounded
		{"1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"},
		{"2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"},
		{"2023-02-29T00:00:00Z", ""},
		{"2020-13-01T00:00:00Z", ""},
		{"2020-01-01T24:00:00Z", ""},
		{"2020-01-01T00:00:60Z", ""},
		{"2020-01-01T00:00:00", ""},
		{"2020-01-01 00:00:00Z", ""},
		{"2020-01-01T00:00:00.Z", ""},
		{"2020-01-01T00:00:00+1300", ""},
		{"2020-01-01", ""},
		{"not a time", ""},
		{"2020-01-01T00:00:00Zjunk", ""},
	} {
		got, err := parseTimestamp(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("parseTimestamp(%q) = %d, %v; want ErrInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseTimestamp(%q): %v", tc.in, err)
			continue
		}
		if s := time.UnixMicro(got).UTC().Format("2006-01-02T15:04:05.000000Z07:00"); s != tc.want {
			t.Errorf("parseTimestamp(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

// FuzzParseTimestamp compares with the standard library on RFC 3339 input.
func FuzzParseTimestamp(f *testing.F) {
	f.Add("2020-01-01T11:00:00.000Z")
	f.Add("2020-01-02T00:00:00.5+13:00")
	f.Add("2024-02-29T23:59:59.999999999-12:00")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTimestamp(s)
		want, werr := time.Parse(time.RFC3339Nano, s)
		if err == nil && werr == nil {
			if w := want.UnixMicro(); w != got && !(want.Nanosecond()%1000 != 0 && want.Before(time.Unix(0, 0))) {
				t.Fatalf("%q: got %d, time.Parse %d", s, got, w)
			}
		}
		if err == nil && werr != nil && len(s) >= 20 && s[10] == 'T' && s[len(s)-1] == 'Z' {
			t.Fatalf("%q accepted, time.Parse says %v", s, werr)
		}
	})
}

func TestLocalDate(t *testing.T) {
	auckland := defaultLocation
	chatham, err := time.LoadLocation("Pacific/Chatham")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ts   string
		loc  *time.Location
		want string
	}{
		{"NZST midnight", "2024-06-30T12:00:00.000Z", auckland, "2024-07-01"},
		{"NZST one ms before midnight", "2024-06-30T11:59:59.999Z", auckland, "2024-06-30"},
		{"NZDT midnight", "2023-12-31T11:00:00.000Z", auckland, "2024-01-01"},
		{"NZDT one ms before midnight", "2023-12-31T10:59:59.999Z", auckland, "2023-12-31"},
		{"UTC zone", "2023-12-31T11:00:00.000Z", time.UTC, "2023-12-31"},
		{"Chatham +13:45", "2023-12-31T10:15:00.000Z", chatham, "2024-01-01"},
		{"before epoch", "1969-12-31T12:00:00.000Z", auckland, "1970-01-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			us, err := parseTimestamp(tc.ts)
			if err != nil {
				t.Fatal(err)
			}
			d := localDate(us, tc.loc)
			if got := time.Unix(int64(d)*86400, 0).UTC().Format("2006-01-02"); got != tc.want {
				t.Fatalf("localDate(%s) = %s, want %s", tc.ts, got, tc.want)
			}
		})
	}
}
