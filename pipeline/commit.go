package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the last stages of a run: assembling the manifest, committing it
// and cleaning up the in-flight marker and crashed runs' leftovers.

// round2 rounds x to two decimals, for figures in the manifest.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// manifest assembles the run's manifest.
func (r *runner) manifest() *Manifest {
	m := r.m
	m.ManifestVersion = ManifestVersion
	m.Kind = "run"
	m.RunID = r.runID
	m.Shard, m.Shards = r.cfg.Shard, r.cfg.Shards
	m.StartedAt = r.started
	m.FinishedAt = r.cfg.Now().UTC()
	m.ToolVersion = r.cfg.ToolVersion
	m.SchemaVersion = schema.Version
	m.Config = EffectiveConfig{Out: r.b.String(), Start: r.cfg.Start, End: r.cfg.End,
		Lookback: fmt.Sprintf("%dd", r.cfg.Lookback), History: fmt.Sprintf("%dd", r.cfg.History),
		Accounts: r.cfg.Accounts, Workers: r.cfg.Workers, Users: r.tokens, TimeZone: r.loc.String(),
		Buckets: r.ds.Buckets, Shard: r.cfg.Shard, Shards: r.cfg.Shards}
	m.ConfigHash = m.Config.hash()
	m.Range = DateRange{Start: r.start.String(), End: r.end.String()}
	st, s0 := r.cfg.Source.Stats(), r.apiStart
	m.API = APIStats{Requests: st.Requests - s0.Requests, Retries: st.Retries - s0.Retries,
		RateLimited: st.RateLimited - s0.RateLimited, ServerErrors: st.ServerErrors - s0.ServerErrors,
		RPSBudget: st.RateBudget, RateLimitSlowdowns: st.Slowdowns - s0.Slowdowns, RateLimitRPS: round2(st.RateLimit)}
	if d := m.FinishedAt.Sub(m.StartedAt).Seconds(); d > 0 {
		m.API.AchievedRPS = round2(float64(m.API.Requests) / d)
	}
	m.Reads = r.reads.stats()
	m.Spill = r.spill.stats()
	// A refused user (revoked or forbidden) is routine at scale: reported in Users, not a
	// failure, unless every user was refused.
	refused := map[string]int{}
	m.UserCounts, m.AccountCounts = map[string]int{}, map[string]int{}
	for _, u := range r.users {
		m.UserCounts[u.status]++
		if u.status == "ok" {
			continue // the state object names it (by fingerprint); counted above
		}
		us := UserStatus{UserID: u.me.ID, Index: u.index + 1, Status: u.status, TokenFP: u.fp}
		if u.err != nil {
			us.Error = u.err.Error()
			if u.isRefused() {
				refused[u.status]++
			} else {
				m.Failures = append(m.Failures, us.Error)
			}
		}
		m.Users = append(m.Users, us)
	}
	if n := refused["revoked"] + refused["forbidden"]; n > 0 && n == len(r.users) {
		m.Failures = append(m.Failures, fmt.Sprintf("Akahu refused every user's token (%d revoked, %d forbidden): nothing was extracted",
			refused["revoked"], refused["forbidden"]))
	}
	ranges := map[span]int{}
	for _, a := range r.accounts {
		as := AccountStatus{UserID: a.user.me.ID, AccountID: a.acct.ID, Name: a.acct.Name, Type: a.acct.Type,
			Status: a.status, Note: a.note, Rows: a.rows, Pending: a.pending}
		if as.Pending == "" && a.status != "skipped" {
			as.Pending = "kept (not requested)"
		}
		switch {
		case a.user.isRefused():
			as.Status = a.user.status
		case a.err != nil:
			as.Status = "failed"
		}
		if a.err != nil && !errors.Is(a.err, errSkipped) {
			as.Error = a.err.Error()
			if !a.user.isRefused() {
				m.Failures = append(m.Failures, as.Error)
			}
		}
		for _, s := range joinSpans(a.done) {
			ranges[s]++
		}
		m.AccountCounts[as.Status]++
		// Listed: what needs an operator's eye (a failure, a refused user's accounts, a
		// warning such as a refresh that did not complete, a pending list kept).
		// Routine statuses (ok, inactive, skipped) are counted only.
		switch as.Status {
		case "ok", "inactive", "skipped":
		default:
			m.Accounts = append(m.Accounts, as)
			continue
		}
		if as.Error != "" || (as.Status == "ok" && as.Note != "") || as.Pending == "kept (request failed)" {
			m.Accounts = append(m.Accounts, as)
		}
	}
	for s, n := range ranges {
		m.Ranges = append(m.Ranges, CoverageRange{From: s.from.String(), To: s.to.String(), Accounts: n})
	}
	sort.Slice(m.Ranges, func(i, j int) bool {
		if m.Ranges[i].From != m.Ranges[j].From {
			return m.Ranges[i].From < m.Ranges[j].From
		}
		return m.Ranges[i].To < m.Ranges[j].To
	})
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Path < m.Objects[j].Path })
	sort.Slice(m.Deleted, func(i, j int) bool { return m.Deleted[i].ID < m.Deleted[j].ID })
	// Recovered lists the crashed runs this run resolved, and those resolved earlier
	// whose clean-up is not done yet: until their markers are gone, every next run
	// must know not to adopt their tombstones again.
	for _, c := range r.crashed {
		m.Recovered = append(m.Recovered, c.RunID)
	}
	m.Recovered = append(m.Recovered, r.recovered...)
	sort.Strings(m.Recovered)
	if m.Objects == nil {
		m.Objects = []ObjectWrite{}
	}
	if m.Users == nil {
		m.Users = []UserStatus{}
	}
	if m.Accounts == nil {
		m.Accounts = []AccountStatus{}
	}
	if m.Deleted == nil {
		m.Deleted = []Tombstone{}
	}
	return &m
}

// joinSpans returns spans sorted and joined where they touch.
func joinSpans(spans []span) []span {
	s := append([]span(nil), spans...)
	sort.Slice(s, func(i, j int) bool { return s[i].from < s[j].from })
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && x.from <= out[n-1].to+1 {
			out[n-1].to = max(out[n-1].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}

// commit writes the manifest; from here on the run is visible as a whole.
func (r *runner) commit(ctx context.Context, m *Manifest) error {
	if err := r.lease.check(); err != nil {
		return err
	}
	if err := commitManifest(ctx, r.b, m); err != nil {
		return err
	}
	r.log.Info("committed", "manifest", manifestObject(m.RunID), "objects", len(m.Objects), "inserted", m.Counts.Inserted,
		"updated", m.Counts.Updated, "deleted", m.Counts.Deleted, "moved", m.Counts.Moved)
	return nil
}

// commitManifest writes a manifest; it never replaces one. The run has committed
// exactly when the manifest is stored: a write that fails ambiguously (ErrTransient:
// its answer may have been lost after the store applied it) or finds the run's own
// manifest name taken is decided by reading the manifest back. If that fails too,
// the error wraps ErrCommitUnknown.
func commitManifest(ctx context.Context, b bucket.Bucket, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	name := manifestObject(m.RunID)
	_, err = b.Put(ctx, name, data, bucket.Condition{DoesNotExist: true})
	if err == nil {
		return nil
	}
	if !errors.Is(err, bucket.ErrTransient) && !errors.Is(err, bucket.ErrConflict) {
		return fmt.Errorf("commit manifest %s: %w", name, err)
	}
	stored, _, gerr := b.Get(ctx, name)
	switch {
	case gerr == nil && bytes.Equal(stored, data):
		return nil // stored: the answer was lost
	case gerr == nil, errors.Is(gerr, bucket.ErrNotFound):
		return fmt.Errorf("commit manifest %s: %w", name, err)
	}
	return fmt.Errorf("%w: commit manifest %s: %w; reading it back failed too: %v", ErrCommitUnknown, name, err, gerr)
}

// cleanup removes this run's marker and the leftovers of the crashed runs it resolved.
// A crashed run's marker goes only once its tombstones are gone: while it stays, the
// next run finds the run listed as recovered in the latest manifest and retries the
// clean-up without recording those deletions again. So a failure here is harmless.
func (r *runner) cleanup(ctx context.Context) {
	runs := map[string]bool{}
	for _, c := range r.crashed {
		runs[c.RunID] = true
	}
	for _, id := range r.recovered {
		runs[id] = true
	}
	var names []string
	for _, id := range sortedKeys(r.removeTombstones(ctx, runs)) {
		names = append(names, inflightObject(id))
	}
	for _, id := range r.committedMarkers {
		names = append(names, inflightObject(id))
	}
	if r.marker {
		names = append(names, inflightObject(r.runID))
	}
	sort.Strings(names)
	for _, n := range names {
		if err := r.b.Delete(ctx, n, bucket.Condition{}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
			r.log.Warn("cleanup failed", "object", n, "err", err)
		}
	}
	if tc, ok := r.b.(bucket.TempCleaner); ok && r.cfg.Shards == 1 {
		if removed, err := tc.CleanTemp(ctx, 0); err == nil && len(removed) > 0 {
			r.log.Info("removed temp files of crashed writers", "files", strings.Join(removed, ","))
		}
	}
}

// removeTombstones deletes the tombstone objects of the given crashed runs and returns
// the runs whose tombstones are all gone.
func (r *runner) removeTombstones(ctx context.Context, runs map[string]bool) map[string]bool {
	if len(runs) == 0 {
		return nil
	}
	list, err := r.b.List(ctx, deletionPrefix)
	if err != nil {
		r.log.Warn("cleanup failed: crashed runs' markers stay for the next run", "prefix", deletionPrefix, "err", err)
		return nil
	}
	gone := map[string]bool{}
	for id := range runs {
		gone[id] = true
	}
	for _, a := range list {
		if run, ok := parseDeletionObject(a.Name); ok && runs[run] {
			if err := r.b.Delete(ctx, a.Name, bucket.Condition{}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
				r.log.Warn("cleanup failed: the crashed run's marker stays for the next run", "object", a.Name, "run", run, "err", err)
				gone[run] = false
			}
		}
	}
	for id, ok := range gone {
		if !ok {
			delete(gone, id)
		}
	}
	return gone
}
