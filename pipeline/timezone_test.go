package pipeline

import (
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// TestDefaultTimeZonesAgree: the Akahu client's default zone (LocalDates with a
// nil location, spelled in sources/akahu, which does not import schema) is the
// dataset's schema.DefaultTimeZone (Config's and --time-zone's default): the windows asked
// of Akahu and the local dates written cover the same days, across both New
// Zealand daylight-saving changes.
func TestDefaultTimeZonesAgree(t *testing.T) {
	loc, err := time.LoadLocation(schema.DefaultTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"2024-01-15", "2024-04-07", "2024-07-01", "2024-09-29", "2024-12-31"} {
		day, err := time.Parse(time.DateOnly, d)
		if err != nil {
			t.Fatal(err)
		}
		got, want := akahu.LocalDates(day, day, nil), akahu.LocalDates(day, day, loc)
		if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
			t.Errorf("%s: LocalDates(nil) = %s, in %s = %s", d, got, schema.DefaultTimeZone, want)
		}
	}
}
