package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// This file holds Verify: the dataset checked against its committed manifests.

// Report is the outcome of Verify: Problems make the dataset unhealthy; Notes are
// facts an operator may want (a crashed run the next run will recover).
type Report struct {
	Objects      int      `json:"objects"`
	Manifests    int      `json:"manifests"`
	Transactions int64    `json:"transactions"`
	Problems     []string `json:"problems"`
	Notes        []string `json:"notes"`
}

// OK reports whether Verify found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// tempLister is implemented by buckets that can have temp files of crashed writers.
type tempLister interface {
	TempFiles(ctx context.Context) ([]string, error)
}

// Verify checks a dataset as an operator would: every object the committed manifests
// say they wrote last is there with the recorded CRC32C, size and rows; every Parquet
// object reads; no transaction id appears twice; no temp file of a crashed writer is
// left. It reads everything and writes nothing.
func Verify(ctx context.Context, b bucket.Bucket) (*Report, error) {
	rep := &Report{}
	problem := func(f string, a ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(f, a...)) }
	if _, _, err := b.Get(ctx, datasetObject); err != nil {
		if errors.Is(err, bucket.ErrNotFound) {
			problem("%s is missing: not a dataset, or never written", datasetObject)
			return rep, nil
		}
		return nil, fmt.Errorf("read %s: %w", datasetObject, err)
	}
	all, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b, err)
	}
	rep.Objects = len(all)
	attrs := map[string]bucket.Attrs{}
	for _, a := range all {
		attrs[a.Name] = a
	}
	// The last write of each object by a committed run, in run order.
	type lastWrite struct {
		run string
		ow  ObjectWrite
	}
	last := map[string]lastWrite{}
	var runs []string
	for _, a := range all {
		if id, ok := runIDOfObject(a.Name, manifestPrefix); ok {
			runs = append(runs, id)
		}
	}
	sort.Strings(runs)
	rep.Manifests = len(runs)
	for _, id := range runs {
		m, err := readManifest(ctx, b, id)
		if err != nil {
			problem("manifest %s: %v", id, err)
			continue
		}
		for _, ow := range m.Objects {
			last[ow.Path] = lastWrite{id, ow}
		}
	}
	// Objects the manifests wrote last that are gone (or deleted and back).
	for _, p := range sortedKeys(last) {
		lw := last[p]
		_, exists := attrs[p]
		switch {
		case lw.ow.Op == "delete" && exists:
			// Deleted by that run, written again later by a run that did not commit:
			// the next run resolves it.
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s was deleted by run %s but exists again", p, lw.run))
		case lw.ow.Op != "delete" && !exists:
			problem("%s: written by run %s but missing", p, lw.run)
		}
	}
	// Each Parquet object is read once: it must match what the manifest that wrote it
	// last recorded, it must read, and transaction ids must be unique.
	seen := map[string]string{}
	for _, a := range all {
		if !strings.HasSuffix(a.Name, ".parquet") {
			continue
		}
		data, _, err := b.Get(ctx, a.Name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", a.Name, err)
		}
		md, mdErr := parquetsink.ReadMetadata(bytes.NewReader(data), int64(len(data)))
		if lw, ok := last[a.Name]; ok && lw.ow.Op != "delete" {
			crc := bucket.CRC32C(data)
			switch {
			case crc != lw.ow.CRC32C || int64(len(data)) != lw.ow.Bytes:
				// A later uncommitted run may have rewritten it; only a committed
				// manifest can vouch for content, so say which.
				problem("%s: CRC32C %08x and %d bytes, run %s recorded %08x and %d bytes", a.Name, crc, len(data), lw.run, lw.ow.CRC32C, lw.ow.Bytes)
			case mdErr == nil && md.Rows != lw.ow.Rows:
				problem("%s: %d rows, run %s recorded %d", a.Name, md.Rows, lw.run, lw.ow.Rows)
			}
		}
		if mdErr != nil {
			problem("%s: not readable Parquet: %v", a.Name, mdErr)
			continue
		}
		if !strings.HasPrefix(a.Name, txPrefix) {
			continue
		}
		if _, ok := parseTxObject(a.Name); !ok {
			problem("%s: unexpected object under %s", a.Name, txPrefix)
		}
		_, recs, err := parquetsink.Read(bytes.NewReader(data), int64(len(data)), memory.DefaultAllocator, parquetsink.Columns("id"))
		if err != nil {
			problem("%s: not readable Parquet: %v", a.Name, err)
			continue
		}
		for _, rec := range recs {
			ids := rec.Column(0).(*array.String)
			for i := 0; i < ids.Len(); i++ {
				id := ids.Value(i)
				rep.Transactions++
				if prev, dup := seen[id]; dup {
					problem("transaction %s appears in %s and %s", id, prev, a.Name)
				}
				seen[id] = a.Name
			}
			rec.Release()
		}
	}
	for _, a := range all {
		if id, ok := runIDOfObject(a.Name, inflightPrefix); ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("run %s did not finish (%s); the next run of shard %d recovers it", id, a.Name, runShard(id)))
		}
	}
	if tl, ok := b.(tempLister); ok {
		temps, err := tl.TempFiles(ctx)
		if err != nil {
			return nil, fmt.Errorf("list temp files: %w", err)
		}
		for _, t := range temps {
			problem("stray temp file %s (a writer died; the next run removes it)", t)
		}
	}
	return rep, nil
}
