// Package pipeline owns one run of the ETL: it plans (users → accounts → date windows
// aligned to month partitions), extracts windows concurrently through bounded worker
// pools, merges each partition file with what the run re-read, classifies every
// transaction id (inserted, updated, unchanged, moved, deleted), writes the Parquet
// objects through a [bucket.Bucket] and finally commits the run with a manifest. With
// Config.Refresh it first asks Akahu to fetch the users' data from the banks and waits,
// bounded, for the accounts to show it (refresh.go).
//
// The order of writes is what makes a run crash-safe:
//
//  1. an in-flight marker naming the run and the windows it covers is written before
//     the first data object;
//  2. partitions without deletion candidates are written as soon as all their windows
//     are extracted (a partition the fresh rows leave as it is is not written; see
//     below); partitions that lose rows are held back to the end, and a later
//     re-read of the same run (a neighbouring month, a month a transaction moved to)
//     merges into the held state rather than writing the partition itself; an object
//     the run wrote and reads again must still be the generation it left;
//  3. tombstones (deletions/) are written before the partitions that drop the rows;
//  4. pending and account snapshots;
//  5. the manifest, which makes the run visible as a whole;
//  6. the in-flight marker and leftovers of crashed runs are removed.
//
// Before a partition is read whole to be merged, its footer and its id, account_id,
// date, date_local and updated_at columns are read by range (unchanged.go): when every
// fresh row is stored once with the same account, dates and a non-null updated_at
// equal to Akahu's, no stored row of a re-read account and date is missing, and the
// stored rows are unique and in the merge's order, the merge would keep every old row,
// so the partition is neither read whole nor written (its rows count as unchanged).
// The check's first path reads the footer alone: a run writes partitions with day digests
// under the key-value key akahu_parquet.day_digests (per local day, the row count and
// the sum of a 64-bit hash of each row's id, account, dates and updated_at; none when an
// updated_at is null), and when the fresh rows' digests equal the stored ones on every
// day some account is re-read on, and no fresh row is of another day, nothing else is
// read (digests.go). Otherwise, and for a file written without digests, the columns
// decide. This trusts updated_at, "when Akahu last changed" a transaction, as its version: a
// change Akahu makes without advancing it is picked up only by a run that reads whole,
// Config.CompareValues (--compare-values), which always does, as does a run recovering
// a crashed one.
//
// A run that finds the marker of a crashed run re-reads that run's windows too, adopts
// its tombstones whose rows are really gone and removes the rest, so the next successful
// run restores every invariant of docs/design.md. A lock object per shard keeps two runs from
// writing the same objects at once; every object write is also conditional on the
// generation that was read, so a lost lock shows up as a conflict, never as a lost update.
//
// Memory is meant to stay flat in a shard's number of users. Per account, a run keeps
// its planned months as runs of consecutive months (not one window per month), its
// accounts-snapshot row (built at plan time; the account's JSON as served is dropped)
// and a few counters. Windows and walks are made user by user as the extraction
// pool takes them and go when their partition is merged; extracted rows wait for
// the rest of their partition in memory up to Config.HoldBytes, on local disk beyond
// (spill.go); a partition held back to the end keeps its fresh rows as one record,
// in memory up to Config.HeldBytes and parked in the spill file beyond (held.go).
//
// The lock is a lease refreshed by a heartbeat. Refreshes that fail are retried until a
// quarter of the TTL before the lease ends; then the lease is lost, the run's work is
// cancelled and every write, which goes through a bucket wrapper checking the lease, is
// refused (ErrLockLost): no write lands after another run could take the lock over. A
// holder is taken over before its lease expires only when it provably died in this
// kernel and PID namespace (boot id, PID namespace and process start time match).
//
// The shard count is the dataset's, recorded in _dataset.json: lock objects are named by
// it but markers and manifests only by shard index, so a run with another --shards is
// refused (a configuration error) after taking its lock, and Reshard changes the count
// while holding every lock of the old and the new count. With buckets by user (layout 2)
// every shard is given every user token and learns which are its own from the state
// objects under _state/ (state.go), written after the manifest: each bucket's users
// object, and each shard's resolved object, the tokens that shard resolved with GET /me
// for users other shards own, so shards run one after another ask /me once per token
// per fleet.
//
// Status reads a dataset without locking or writing: its layout, each shard's newest
// committed run, accounts whose covered_through lags their shard's, lock objects and
// in-flight markers (held or expired; in progress, committed, recovered or crashed), and
// rows and bytes per table (bytes from the listing, rows from the newest committed
// manifest record of each object).
package pipeline
