package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the first stage of a run: opening the dataset (_dataset.json) and
// loading the state the run starts from (the latest manifest, crashed runs' markers,
// this shard's partitions).

// openDataset reads _dataset.json, creating it on first use, and checks that this
// run's settings agree with it.
func (r *runner) openDataset(ctx context.Context) error {
	want := Dataset{LayoutVersion: LayoutVersion, SchemaVersion: schema.Version, TimeZone: r.loc.String(),
		Grain: "month", Buckets: r.cfg.Buckets, CreatedAt: r.started, Shards: r.cfg.Shards, BucketBy: bucketByUser}
	data, _, err := r.b.Get(ctx, datasetObject)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		if r.cfg.DryRun {
			r.ds = want
			return nil
		}
		buf, _ := json.MarshalIndent(want, "", "  ")
		if _, err := r.b.Put(ctx, datasetObject, buf, bucket.Condition{DoesNotExist: true}); err != nil && !errors.Is(err, bucket.ErrConflict) {
			return fmt.Errorf("create %s in %s: %w", datasetObject, r.b, err)
		}
		return r.openDataset(ctx)
	case err != nil:
		return fmt.Errorf("read %s in %s: %w", datasetObject, r.b, err)
	}
	var ds Dataset
	if err := json.Unmarshal(data, &ds); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, datasetObject, err)
	}
	switch ds.LayoutVersion {
	case 1:
		ds.BucketBy = bucketByAccount
	case LayoutVersion:
		if ds.BucketBy != bucketByUser {
			return fmt.Errorf("%w: %s: layout version 2 with bucket_by %q, want %q", ErrCorrupt, datasetObject, ds.BucketBy, bucketByUser)
		}
	}
	switch {
	case ds.LayoutVersion != 1 && ds.LayoutVersion != LayoutVersion:
		return fmt.Errorf("%w: layout version %d, this tool reads 1 and %d", ErrDatasetMismatch, ds.LayoutVersion, LayoutVersion)
	case ds.TimeZone != want.TimeZone:
		return fmt.Errorf("%w: dataset time zone is %s, run asked for %s", ErrDatasetMismatch, ds.TimeZone, want.TimeZone)
	case r.cfg.Buckets != DefaultBuckets && ds.Buckets != r.cfg.Buckets:
		return fmt.Errorf("%w: dataset has %d buckets, run asked for %d", ErrDatasetMismatch, ds.Buckets, r.cfg.Buckets)
	case ds.SchemaVersion > schema.Version:
		return fmt.Errorf("%w: dataset schema version %d is newer than this tool's %d", ErrDatasetMismatch, ds.SchemaVersion, schema.Version)
	}
	r.ds = ds
	return nil
}

// loadState reads the latest committed manifest, the shard's state objects, crashed
// runs' markers and, on a shard's first run, whether it has transactions partitions.
func (r *runner) loadState(ctx context.Context) error {
	latest, err := latestManifest(ctx, r.b, r.cfg.Now(), r.cfg.Shard, r.cfg.Shards)
	if err != nil {
		return err
	}
	r.latest = latest
	if r.state, err = loadRunState(ctx, r.b, r.ds.Buckets, r.cfg.Shard, r.cfg.Shards); err != nil {
		return err
	}
	crashed, err := crashedRuns(ctx, r.b, r.cfg.Shard, r.runID)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	if latest != nil {
		for _, id := range latest.Recovered {
			done[id] = true
		}
	}
	for _, c := range crashed {
		switch _, err := r.b.Attrs(ctx, manifestObject(c.RunID)); {
		case err == nil:
			// The run committed and died before removing its marker: its tombstones
			// are committed ones. Only the marker goes.
			r.committedMarkers = append(r.committedMarkers, c.RunID)
		case !errors.Is(err, bucket.ErrNotFound):
			return fmt.Errorf("check manifest of run %s: %w", c.RunID, err)
		case done[c.RunID]:
			r.recovered = append(r.recovered, c.RunID)
		default:
			r.crashed = append(r.crashed, c)
		}
	}
	// Ids new to their partition matter only when other partitions exist: they may
	// have moved from one. A first backfill keeps no per-id state at all. Where the
	// shard committed before, its buckets have state objects, or a crashed run is to
	// be recovered, partitions may exist and the ids are kept; only a shard that has
	// none of these lists the partitions to see, as that listing names every
	// partition of the dataset: it grows with the fleet, and every shard's every run
	// would pay it.
	r.trackFresh = r.latest != nil || !r.state.legacy || len(r.crashed) > 0
	if !r.trackFresh {
		list, err := r.b.List(ctx, txPrefix)
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", txPrefix, r.b, err)
		}
		for _, a := range list {
			if p, ok := parseTxObject(a.Name); ok && p.bucket%r.cfg.Shards == r.cfg.Shard {
				r.trackFresh = true
				break
			}
		}
	}
	if len(r.crashed) > 0 {
		r.log.Warn("recovering crashed runs", "runs", len(r.crashed))
	}
	return nil
}
