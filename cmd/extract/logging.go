package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// newLogger logs to w (stderr) in format: text, json, gcp, or auto (see logFormat).
// Tokens are akahu.Token values, which log themselves as "[REDACTED]" in every format.
func newLogger(w io.Writer, format, level string, getenv env) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	f, err := logFormat(format, getenv, isTerminal(w))
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch f {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "gcp":
		return slog.New(newGCPHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// logFormat resolves --log-format: auto is gcp under a Cloud Run Job (CLOUD_RUN_JOB is
// set), text on a terminal, and json otherwise.
func logFormat(format string, getenv env, terminal bool) (string, error) {
	switch format {
	case "text", "json", "gcp":
		return format, nil
	case "auto":
		switch {
		case getenv("CLOUD_RUN_JOB") != "":
			return "gcp", nil
		case terminal:
			return "text", nil
		}
		return "json", nil
	}
	return "", errors.New("--log-format: want auto, text, json or gcp")
}

// gcpLabelsKey is the field Cloud Logging turns into the entry's labels.
const gcpLabelsKey = "logging.googleapis.com/labels"

// gcpLabels are the attributes that become Cloud Logging labels (when not in a group):
// they identify the run and the shard, so the console can filter on them.
var gcpLabels = []string{"run_id", "shard"}

// gcpHandler writes the JSON lines Cloud Logging's agent parses on Cloud Run and GKE:
// "severity" (DEBUG, INFO, WARNING or ERROR), "message", "time" (RFC 3339 with
// nanoseconds), the run_id and shard attributes as string labels under
// "logging.googleapis.com/labels", and every other attribute as a top-level field.
type gcpHandler struct {
	inner  slog.Handler
	labels []slog.Attr // top-level label attributes given to WithAttrs
	nested bool        // a group is open: attributes are no longer top-level
}

func newGCPHandler(w io.Writer, opts *slog.HandlerOptions) *gcpHandler {
	o := *opts
	o.ReplaceAttr = gcpReplace
	return &gcpHandler{inner: slog.NewJSONHandler(w, &o)}
}

// gcpSeverity maps a slog level onto Cloud Logging's severities.
func gcpSeverity(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARNING"
	}
	return "ERROR"
}

func gcpReplace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			return slog.String("severity", gcpSeverity(l))
		}
	case slog.MessageKey:
		return slog.Attr{Key: "message", Value: a.Value}
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			return slog.String("time", a.Value.Time().Format(time.RFC3339Nano))
		}
	}
	return a
}

func isGCPLabel(a slog.Attr) bool { return slices.Contains(gcpLabels, a.Key) }

func (h *gcpHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *gcpHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.nested {
		return h.inner.Handle(ctx, r)
	}
	labels := slices.Clone(h.labels)
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if isGCPLabel(a) {
			labels = setLabel(labels, a)
		} else {
			out.AddAttrs(a)
		}
		return true
	})
	if len(labels) > 0 {
		out.AddAttrs(labelGroup(labels))
	}
	return h.inner.Handle(ctx, out)
}

func (h *gcpHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.nested {
		return &gcpHandler{inner: h.inner.WithAttrs(as), nested: true}
	}
	c := &gcpHandler{labels: slices.Clone(h.labels)}
	var rest []slog.Attr
	for _, a := range as {
		if isGCPLabel(a) {
			c.labels = setLabel(c.labels, a)
		} else {
			rest = append(rest, a)
		}
	}
	c.inner = h.inner.WithAttrs(rest)
	return c
}

func (h *gcpHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	inner := h.inner
	if !h.nested && len(h.labels) > 0 {
		// The labels gathered so far are top-level: write them before the group opens.
		inner = inner.WithAttrs([]slog.Attr{labelGroup(h.labels)})
	}
	return &gcpHandler{inner: inner.WithGroup(name), nested: true}
}

// setLabel adds a label as a string (Cloud Logging labels are strings), replacing an
// earlier one of the same key.
func setLabel(labels []slog.Attr, a slog.Attr) []slog.Attr {
	s := slog.String(a.Key, a.Value.Resolve().String())
	for i := range labels {
		if labels[i].Key == a.Key {
			labels[i] = s
			return labels
		}
	}
	return append(labels, s)
}

func labelGroup(labels []slog.Attr) slog.Attr {
	return slog.Attr{Key: gcpLabelsKey, Value: slog.GroupValue(labels...)}
}
