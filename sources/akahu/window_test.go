package akahu

import (
	"testing"
	"time"
)

func TestLocalDates(t *testing.T) {
	t.Parallel()
	nz, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		from, to  time.Time
		loc       *time.Location
		wantStart string
		wantEnd   string
		wantHours float64 // End - Start
	}{
		{"NZDT summer day", day(2024, 1, 1), day(2024, 1, 1), nz, "2023-12-31T10:59:59.999Z", "2024-01-01T10:59:59.999Z", 24},
		{"NZST winter day", day(2024, 7, 1), day(2024, 7, 1), nz, "2024-06-30T11:59:59.999Z", "2024-07-01T11:59:59.999Z", 24},
		{"April switch NZDT→NZST (25 h day)", day(2024, 4, 7), day(2024, 4, 7), nz, "2024-04-06T10:59:59.999Z", "2024-04-07T11:59:59.999Z", 25},
		{"September switch NZST→NZDT (23 h day)", day(2024, 9, 29), day(2024, 9, 29), nz, "2024-09-28T11:59:59.999Z", "2024-09-29T10:59:59.999Z", 23},
		{"month across April switch", day(2024, 4, 1), day(2024, 4, 30), nz, "2024-03-31T10:59:59.999Z", "2024-04-30T11:59:59.999Z", 30*24 + 1},
		{"month across September switch", day(2024, 9, 1), day(2024, 9, 30), nz, "2024-08-31T11:59:59.999Z", "2024-09-30T10:59:59.999Z", 30*24 - 1},
		{"year 2024 (leap)", day(2024, 1, 1), day(2024, 12, 31), nz, "2023-12-31T10:59:59.999Z", "2024-12-31T10:59:59.999Z", 366 * 24},
		{"nil location is Pacific/Auckland", day(2024, 7, 1), day(2024, 7, 1), nil, "2024-06-30T11:59:59.999Z", "2024-07-01T11:59:59.999Z", 24},
		{"UTC", day(2024, 2, 28), day(2024, 2, 29), time.UTC, "2024-02-27T23:59:59.999Z", "2024-02-29T23:59:59.999Z", 48},
		{"clock time of inputs ignored", time.Date(2024, 1, 1, 23, 59, 0, 0, time.UTC), time.Date(2024, 1, 1, 1, 0, 0, 0, time.UTC), nz, "2023-12-31T10:59:59.999Z", "2024-01-01T10:59:59.999Z", 24},
		{"dates taken in the input's own zone", time.Date(2024, 1, 1, 0, 30, 0, 0, nz), time.Date(2024, 1, 1, 0, 30, 0, 0, nz), nz, "2023-12-31T10:59:59.999Z", "2024-01-01T10:59:59.999Z", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := LocalDates(tt.from, tt.to, tt.loc)
			if got := w.Start.UTC().Format(TimeFormat); got != tt.wantStart {
				t.Errorf("Start = %s, want %s", got, tt.wantStart)
			}
			if got := w.End.UTC().Format(TimeFormat); got != tt.wantEnd {
				t.Errorf("End = %s, want %s", got, tt.wantEnd)
			}
			if h := w.End.Sub(w.Start).Hours(); h != tt.wantHours {
				t.Errorf("window is %v h, want %v h", h, tt.wantHours)
			}
		})
	}
}

// TestLocalDatesContainsPostings checks the semantic that matters: a bank
// posting dated local day d (Akahu serves it at local midnight of d) is in
// LocalDates(from, to) exactly when from <= d <= to, for every day of a year
// that contains both DST switches.
func TestLocalDatesContainsPostings(t *testing.T) {
	t.Parallel()
	nz, _ := time.LoadLocation("Pacific/Auckland")
	from := time.Date(2024, 4, 5, 0, 0, 0, 0, time.UTC)
	to := time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC)
	w := LocalDates(from, to, nz)
	for d := time.Date(2024, 1, 1, 0, 0, 0, 0, nz); d.Year() == 2024; d = d.AddDate(0, 0, 1) {
		y, m, dd := d.Date()
		key := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
		want := !key.Before(from) && !key.After(to)
		if got := w.Contains(d); got != want {
			t.Errorf("posting %s (%s): Contains = %v, want %v", d.Format("2006-01-02"), d.UTC().Format(TimeFormat), got, want)
		}
		// The last millisecond of the local day is in exactly when the day is.
		last := time.Date(y, m, dd+1, 0, 0, 0, 0, nz).Add(-time.Millisecond)
		if got := w.Contains(last); got != want {
			t.Errorf("last ms of %s: Contains = %v, want %v", d.Format("2006-01-02"), got, want)
		}
	}
}

func TestWindowContainsBoundaries(t *testing.T) {
	t.Parallel()
	w := LocalDates(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), nil)
	tests := []struct {
		t    time.Time
		want bool
	}{
		{w.Start, false}, // exclusive
		{w.Start.Add(time.Millisecond), true},
		{w.End, true}, // inclusive
		{w.End.Add(time.Millisecond), false},
		{w.End.Add(999 * time.Microsecond), true}, // same millisecond as End
	}
	for _, tt := range tests {
		if got := w.Contains(tt.t); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.t.UTC().Format(time.RFC3339Nano), got, tt.want)
		}
	}
	if got := w.String(); got != "2023-12-31T10:59:59.999Z..2024-01-31T10:59:59.999Z" {
		t.Errorf("String = %q", got)
	}
}
