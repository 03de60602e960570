package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// TestLogFormatAuto checks which format --log-format selects: auto is gcp under a Cloud
// Run Job (whether or not stderr is a terminal), text on a terminal, JSON otherwise.
func TestLogFormatAuto(t *testing.T) {
	cases := []struct {
		format   string
		job      string
		terminal bool
		want     string
	}{
		{"auto", "", false, "json"},
		{"auto", "", true, "text"},
		{"auto", "extract-nightly", false, "gcp"},
		{"auto", "extract-nightly", true, "gcp"},
		{"text", "extract-nightly", false, "text"},
		{"json", "extract-nightly", true, "json"},
		{"gcp", "", true, "gcp"},
		{"gcp", "", false, "gcp"},
	}
	for _, c := range cases {
		getenv := func(k string) string {
			if k == "CLOUD_RUN_JOB" {
				return c.job
			}
			return ""
		}
		got, err := logFormat(c.format, getenv, c.terminal)
		if err != nil || got != c.want {
			t.Errorf("logFormat(%q, CLOUD_RUN_JOB=%q, terminal=%v) = %q, %v; want %q", c.format, c.job, c.terminal, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "JSON", "stackdriver", "gcp "} {
		if _, err := logFormat(bad, func(string) string { return "" }, false); err == nil || !strings.Contains(err.Error(), "--log-format") {
			t.Errorf("logFormat(%q) = %v; want an error naming --log-format", bad, err)
		}
	}
}

// TestLogOutput logs the same lines in every format and checks the fields: the JSON
// formats parse line by line with exact field names, gcp maps all four levels onto
// Cloud Logging severities and moves run_id and shard into its labels, and a token
// never appears.
func TestLogOutput(t *testing.T) {
	const secret = "user_token_supersecret123"
	levels := []struct {
		level     slog.Level
		slog, gcp string
		text      string
	}{
		{slog.LevelDebug, "DEBUG", "DEBUG", "level=DEBUG"},
		{slog.LevelInfo, "INFO", "INFO", "level=INFO"},
		{slog.LevelWarn, "WARN", "WARNING", "level=WARN"},
		{slog.LevelError, "ERROR", "ERROR", "level=ERROR"},
	}
	emit := func(log *slog.Logger) {
		run := log.With("run_id", "20261130T212500Z-ab12", "component", "extract")
		for _, l := range levels {
			run.Log(t.Context(), l.level, "account done", "shard", 3, "account", "acc_1", "token", akahu.Token(secret))
		}
		run.WithGroup("api").Info("grouped", "shard", 4, "requests", 7)
	}
	for _, format := range []string{"text", "json", "gcp"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := newLogger(&buf, format, "debug", func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			emit(log)
			out := buf.String()
			if strings.Contains(out, secret) {
				t.Fatalf("the token reached the log:\n%s", out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(levels)+1 {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(levels)+1, out)
			}
			if format == "text" {
				for i, l := range levels {
					for _, want := range []string{l.text, `msg="account done"`, "run_id=20261130T212500Z-ab12", "shard=3", "token=[REDACTED]"} {
						if !strings.Contains(lines[i], want) {
							t.Errorf("line %d lacks %q: %s", i, want, lines[i])
						}
					}
				}
				return
			}
			for i, line := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
				}
				if i == len(levels) {
					checkGrouped(t, format, m)
					continue
				}
				l := levels[i]
				want := map[string]any{"component": "extract", "account": "acc_1", "token": "[REDACTED]"}
				switch format {
				case "json":
					want["level"], want["msg"], want["run_id"], want["shard"] = l.slog, "account done", "20261130T212500Z-ab12", float64(3)
					checkTime(t, m["time"], time.RFC3339Nano)
				case "gcp":
					want["severity"], want["message"] = l.gcp, "account done"
					want[gcpLabelsKey] = map[string]any{"run_id": "20261130T212500Z-ab12", "shard": "3"}
					checkTime(t, m["time"], time.RFC3339Nano)
				}
				delete(m, "time")
				if !jsonEqual(m, want) {
					t.Errorf("line %d:\n got %v\nwant %v", i, m, want)
				}
			}
		})
	}
}

// checkGrouped checks the line logged under a group: in gcp the run_id label stays
// top-level while the grouped shard is an ordinary field of the group.
func checkGrouped(t *testing.T, format string, m map[string]any) {
	t.Helper()
	api := map[string]any{"shard": float64(4), "requests": float64(7)}
	var want map[string]any
	switch format {
	case "json":
		want = map[string]any{"level": "INFO", "msg": "grouped", "run_id": "20261130T212500Z-ab12", "component": "extract", "api": api}
	case "gcp":
		want = map[string]any{"severity": "INFO", "message": "grouped", "component": "extract", "api": api,
			gcpLabelsKey: map[string]any{"run_id": "20261130T212500Z-ab12"}}
	}
	delete(m, "time")
	if !jsonEqual(m, want) {
		t.Errorf("grouped line:\n got %v\nwant %v", m, want)
	}
}

func checkTime(t *testing.T, v any, layout string) {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("time = %v, want a string", v)
	}
	if _, err := time.Parse(layout, s); err != nil {
		t.Errorf("time %q: %v", s, err)
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
