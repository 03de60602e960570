package akahu

import (
	"time"
	_ "time/tzdata" // LocalDates defaults to Pacific/Auckland on hosts without a zone database
)

// TimeFormat is how start and end are sent to Akahu: UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// defaultTimeZone is the zone LocalDates uses when given a nil location: New
// Zealand, where Akahu's banks and their local dates are. It is the same zone as
// schema.DefaultTimeZone, the dataset's default and the one authoritative
// constant; it is spelled again here because a source does not import the
// dataset schema (and its Arrow dependency). pipeline's
// TestDefaultTimeZonesAgree fails if the two drift apart.
const defaultTimeZone = "Pacific/Auckland"

// Window is a range of instants with Akahu's semantics: Start is exclusive
// and End is inclusive, both to the millisecond. A transaction dated t is in
// the window when Start < t <= End.
type Window struct{ Start, End time.Time }

// LocalDates converts the inclusive local dates [from, to] in loc into a
// Window: Start is local midnight of from minus 1 ms, End is local midnight of
// the day after to minus 1 ms. The calendar dates are taken from from and to
// as given (their Year/Month/Day in their own location); the clock time is
// ignored. A nil loc means Pacific/Auckland (schema.DefaultTimeZone). Midnight
// exists on every day in New Zealand (DST switches at 02:00/03:00), so the
// window is exact across daylight-saving changes.
func LocalDates(from, to time.Time, loc *time.Location) Window {
	if loc == nil {
		loc = defaultLocation()
	}
	fy, fm, fd := from.Date()
	ty, tm, td := to.Date()
	return Window{
		Start: time.Date(fy, fm, fd, 0, 0, 0, 0, loc).Add(-time.Millisecond),
		End:   time.Date(ty, tm, td+1, 0, 0, 0, 0, loc).Add(-time.Millisecond),
	}
}

// Contains reports whether t is in the window (Start < t <= End), at
// millisecond precision as Akahu compares.
func (w Window) Contains(t time.Time) bool {
	t = t.Truncate(time.Millisecond)
	return t.After(w.Start.Truncate(time.Millisecond)) && !t.After(w.End.Truncate(time.Millisecond))
}

// IsZero reports whether both ends are the zero time.
func (w Window) IsZero() bool { return w.Start.IsZero() && w.End.IsZero() }

// String formats the window as "start..end" in the wire format.
func (w Window) String() string {
	return w.Start.UTC().Format(TimeFormat) + ".." + w.End.UTC().Format(TimeFormat)
}

func defaultLocation() *time.Location {
	loc, err := time.LoadLocation(defaultTimeZone)
	if err != nil { // cannot happen: time/tzdata is embedded
		return time.UTC
	}
	return loc
}
