package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// statusNow is the clock 'extract status' measures ages against (tests fix it).
var statusNow = time.Now

// cmdStatus prints a dataset at a glance; exit 1 when a shard has not committed
// within --max-age.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) int {
	fs := flag.NewFlagSet("extract status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the dataset: a directory or gs://BUCKET/PREFIX (required)")
	asJSON := fs.Bool("json", false, "print the report as one JSON document (for scripts)")
	maxAge := fs.Duration("max-age", 36*time.Hour, "exit 1 when a shard's last committed run finished longer ago than this, or it never committed")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "extract status: --out is required and takes no arguments")
		return exitUsage
	}
	if *maxAge <= 0 {
		fmt.Fprintln(stderr, "extract status: --max-age must be positive")
		return exitUsage
	}
	if !strings.Contains(*out, "://") {
		// Opening a local bucket creates its directory; status writes nothing.
		if _, err := os.Stat(*out); err != nil {
			fmt.Fprintf(stderr, "extract status: --out %s: %v\n", *out, err)
			return exitUsage
		}
	}
	b, err := openBucket(ctx, *out)
	if err != nil {
		fmt.Fprintln(stderr, "extract status:", err)
		return exitUsage
	}
	rep, err := pipeline.Status(ctx, b, statusNow())
	if err != nil {
		fmt.Fprintln(stderr, "extract status:", err)
		if errors.Is(err, pipeline.ErrNotDataset) {
			return exitUsage
		}
		return exitFailed
	}
	stale := rep.CheckAge(*maxAge)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "extract status:", err)
			return exitFailed
		}
	} else {
		printStatus(stdout, rep, *maxAge)
	}
	if len(stale) > 0 {
		return exitPartial
	}
	return exitOK
}

// printStatus writes the report as aligned text sections.
func printStatus(w io.Writer, r *pipeline.StatusReport, maxAge time.Duration) {
	ds := r.Dataset
	fmt.Fprintf(w, "dataset    %s\n", r.Location)
	by := ds.BucketBy
	if by == "" {
		by = "account" // layout 1
	}
	fmt.Fprintf(w, "layout     version %d, schema %d, time zone %s, %s partitions, %s by %s, %s, created %s\n",
		ds.LayoutVersion, ds.SchemaVersion, ds.TimeZone, ds.Grain, plural(ds.Buckets, "bucket"), by, plural(r.Shards, "shard"), stamp(ds.CreatedAt))
	fmt.Fprintf(w, "as of      %s, %s\n", stamp(r.Now), plural(r.Manifests, "committed manifest"))

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tLAST RUN\tAGE\tACCOUNTS\tFAILED\tUSERS\tREFUSED\tINSERTED\tUPDATED\tMOVED\tDELETED\tCOVERED THROUGH")
	for _, s := range r.ShardRuns {
		lr := s.LastRun
		if lr == nil {
			fmt.Fprintf(tw, "%d\tnone\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", s.Shard)
			continue
		}
		covered := "-"
		if s.CoveredThrough != "" {
			covered = fmt.Sprintf("%s (%s before today)", s.CoveredThrough, plural(s.DaysBehindToday, "day"))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Shard, lr.RunID, age(lr.AgeSeconds),
			lr.Accounts, len(lr.FailedAccounts), lr.Users, len(lr.RefusedUsers),
			lr.Counts.Inserted, lr.Counts.Updated, lr.Counts.Moved, lr.Counts.Deleted, covered)
	}
	tw.Flush()
	for _, s := range r.ShardRuns {
		if s.LastRun == nil {
			continue
		}
		for _, u := range s.LastRun.RefusedUsers {
			who := u.UserID
			if who == "" {
				who = "(not identified)"
			}
			fmt.Fprintf(w, "  shard %d %s: user %s (token %d)%s\n", s.Shard, u.Status, who, u.Index+1, suffix(u.Note))
		}
		for _, f := range s.LastRun.Failures {
			fmt.Fprintf(w, "  shard %d failed: %s\n", s.Shard, f)
		}
	}

	fmt.Fprintln(w)
	listSection(w, "lagging accounts", " (behind their shard's newest covered date)", len(r.Lagging),
		"  SHARD\tACCOUNT\tUSER\tCOVERED THROUGH\tBEHIND\tLAST STATUS", func(tw io.Writer, i int) {
			l := r.Lagging[i]
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", l.Shard, l.AccountID, dash(l.UserID), l.CoveredThrough, plural(l.DaysBehind, "day"), dash(l.LastStatus))
		})

	fmt.Fprintln(w)
	listSection(w, "locks", "", len(r.Locks), "  OBJECT\tRUN\tHOST\tPID\tEXPIRES\tSTATE", func(tw io.Writer, i int) {
		l := r.Locks[i]
		exp, state := "-", l.State
		if !l.ExpiresAt.IsZero() {
			exp = fmt.Sprintf("%s (%s)", stamp(l.ExpiresAt), relative(r.Now, l.ExpiresAt))
		}
		if state == "expired" {
			state = "expired: stale, the next run takes it over"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", l.Object, dash(l.RunID), dash(l.Host), l.PID, exp, state)
	})
	listSection(w, "in-flight markers", "", len(r.InFlight), "  RUN\tSHARD\tSTARTED\tAGE\tSTATE", func(tw io.Writer, i int) {
		f := r.InFlight[i]
		started, ag := "-", "-"
		if !f.StartedAt.IsZero() {
			started, ag = stamp(f.StartedAt), age(f.AgeSeconds)
		}
		state := f.State
		switch state {
		case "crashed":
			state = fmt.Sprintf("crashed: the next run of shard %d recovers it", f.Shard)
		case "committed", "recovered":
			state += ": the next run removes the marker"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", f.RunID, f.Shard, started, ag, state)
	})

	fmt.Fprintln(w)
	// Names left-aligned, figures right-aligned.
	rows := [][]string{{"TABLE", "OBJECTS", "ROWS", "BYTES"}}
	var unrecorded int
	for _, t := range r.Tables {
		rows = append(rows, []string{t.Name, fmt.Sprint(t.Objects), fmt.Sprint(t.Rows), size(t.Bytes)})
		unrecorded += t.Unrecorded
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%-*s", width[0], row[0])
		for i := 1; i < len(row); i++ {
			fmt.Fprintf(w, "  %*s", width[i], row[i])
		}
		fmt.Fprintln(w)
	}
	if unrecorded > 0 {
		fmt.Fprintf(w, "  unrecorded: %s in no committed manifest (written by a run in progress or one that died), rows not counted\n", plural(unrecorded, "object"))
	}

	fmt.Fprintln(w)
	if len(r.StaleShards) == 0 {
		fmt.Fprintf(w, "ok: every shard committed within %s\n", duration(maxAge))
		return
	}
	var parts []string
	for _, i := range r.StaleShards {
		if lr := r.ShardRuns[i].LastRun; lr != nil {
			parts = append(parts, fmt.Sprintf("shard %d last committed %s ago", i, age(lr.AgeSeconds)))
		} else {
			parts = append(parts, fmt.Sprintf("shard %d never committed", i))
		}
	}
	fmt.Fprintf(w, "STALE: not committed within %s: %s\n", duration(maxAge), strings.Join(parts, "; "))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func suffix(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}

// age renders whole seconds as 45s, 12m05s, 3h05m or 2d04h.
func age(sec int64) string {
	sign := ""
	if sec < 0 {
		sign, sec = "-", -sec
	}
	switch {
	case sec < 60:
		return fmt.Sprintf("%s%ds", sign, sec)
	case sec < 3600:
		return fmt.Sprintf("%s%dm%02ds", sign, sec/60, sec%60)
	case sec < 86400:
		return fmt.Sprintf("%s%dh%02dm", sign, sec/3600, sec%3600/60)
	}
	return fmt.Sprintf("%s%dd%02dh", sign, sec/86400, sec%86400/3600)
}

// relative says how far t is from now: "in 1m30s" or "2h05m ago".
func relative(now, t time.Time) string {
	d := int64(t.Sub(now) / time.Second)
	if d >= 0 {
		return "in " + age(d)
	}
	return age(-d) + " ago"
}

// size renders a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/unit, 0
	for f >= unit && u < 3 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[u])
}

// duration renders a --max-age as given: 36h rather than 36h0m0s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// listSection prints one list of the report: "title: none", or "title: n" and note,
// then a table under header with one row per item (row prints item i).
func listSection(w io.Writer, title, note string, n int, header string, row func(tw io.Writer, i int)) {
	if n == 0 {
		fmt.Fprintf(w, "%s: none\n", title)
		return
	}
	fmt.Fprintf(w, "%s: %d%s\n", title, n, note)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for i := range n {
		row(tw, i)
	}
	tw.Flush()
}
