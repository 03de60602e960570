package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	_ "time/tzdata" // the dataset time zone must resolve on any machine

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds a run's configuration: Config, the Source it reads Akahu through,
// and the defaults and checks applied before a run starts.

// Defaults of a run.
const (
	DefaultWorkers  = 8
	DefaultLookback = 30 // days
	DefaultHistory  = 730
	DefaultBuckets  = 1
	DefaultLockWait = 5 * time.Minute
	// DefaultBatchRows is how many rows a window hands on as one Arrow record.
	DefaultBatchRows = 8192
	// DefaultMergers is how many partitions are merged and encoded at once.
	DefaultMergers = 2
	// DefaultUploads is how many merged partitions may wait for their write at once:
	// a merger encodes a partition and goes on to the next while the bucket writes it
	// (GCS answers a write in tens of milliseconds, the local bucket syncs the file
	// and its directory). What waits is the encoded bytes: at most DefaultUploadBytes
	// of them (a larger object is written alone).
	DefaultUploads     = 8
	DefaultUploadBytes = 16 << 20
	// DefaultHoldBytes is how many bytes of extracted rows may wait in memory for the
	// other accounts of their partitions before they go to the spill file. At 64 MiB
	// a 20,000-user fleet's dense backfill peaked at 301 MiB a process, at 32 MiB 278
	// MiB, no slower (docs/scaling.md).
	DefaultHoldBytes = 32 << 20
	// DefaultHeldBytes is how many bytes of held partitions (merged partitions that
	// may lose rows, waiting for the reconcile stage to decide) may stay in memory;
	// the others wait in the spill file and come back one at a time. 1 MiB keeps a
	// quiet shard's few small ones in memory and parks a dense month: with 8 MiB the
	// highest of a 20,000-user dense daily fleet's run peaks were the runs holding
	// dense partitions (docs/scaling.md).
	DefaultHeldBytes = 1 << 20
	// DefaultRefreshWait bounds the wait for Akahu's refresh (Config.Refresh);
	// DefaultRefreshPoll is the first pause between listings while waiting.
	DefaultRefreshWait = 3 * time.Minute
	DefaultRefreshPoll = 3 * time.Second
	// DefaultMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) the
	// extract command sets unless GOMEMLIMIT does: the spill's budget, the partitions
	// being merged and the run's state fit in it. 240 MiB (256 until 2026-12-02) keeps
	// a backfill's peak RSS near 285 MiB with the binary's own memory (BenchmarkPeakRSS).
	DefaultMemoryLimit = 240 << 20
)

// Source is what a run needs from Akahu; *akahu.Client implements it.
type Source interface {
	// Me returns the user the token belongs to.
	Me(ctx context.Context, user akahu.Token) (akahu.Me, error)
	// Accounts lists the user's accounts.
	Accounts(ctx context.Context, user akahu.Token) ([]akahu.Account, error)
	// Transactions walks the settled transactions of one account in a window, page by
	// page, newest first; fn must not keep the page's items after it returns.
	Transactions(ctx context.Context, user akahu.Token, accountID string, w akahu.Window, fn func(akahu.Page) error) error
	// Transaction returns one settled transaction by id, or an error wrapping
	// akahu.ErrNotFound when Akahu no longer has it.
	Transaction(ctx context.Context, user akahu.Token, id string) (json.RawMessage, error)
	// AllTransactions walks the settled transactions of every account of the user in
	// a window, like Transactions; each item names its account.
	AllTransactions(ctx context.Context, user akahu.Token, w akahu.Window, fn func(akahu.Page) error) error
	// Pending returns the account's pending transactions.
	Pending(ctx context.Context, user akahu.Token, accountID string) ([]json.RawMessage, error)
	// AllPending returns the pending transactions of every account of the user.
	AllPending(ctx context.Context, user akahu.Token) ([]json.RawMessage, error)
	// Stats returns the client's request counters.
	Stats() akahu.Stats
}

// Config is one run's configuration. Zero values take the Default* constants.
type Config struct {
	Out    bucket.Bucket
	Source Source
	// Users are the user tokens to extract; each is a secret.
	Users []akahu.Token
	// UserIDs, if set, has an entry per token of Users: the Akahu user id ("user_…")
	// the operator knows the token belongs to, or "" where it does not. An id is a
	// claim that routes the token before any request: a shard of a layout-2 dataset
	// leaves the users other shards own without asking GET /me, so shards started at
	// once ask /me once per user, not once per shard. The owning shard still asks
	// /me for a token no earlier run resolved and checks the claim: a token whose
	// user is not the one claimed fails, with both ids named, and is not extracted.
	// A claim is never recorded as a token's user, so it can never lead to a purge.
	UserIDs []string
	// Tokens, instead of Users and UserIDs, yields them (see Tokens): a run reads it
	// during discovery and keeps only its own users' tokens, where Users is held
	// whole for the whole run. Give a fleet's tokens file this way (TokensFile).
	Tokens Tokens
	// Start and End are inclusive local dates (YYYY-MM-DD) in the dataset time zone.
	// Windows are whole months: the range is widened to the months it touches. With no
	// Start a run continues from the last committed manifest minus Lookback days, or
	// takes History days on an empty dataset.
	Start, End string
	Lookback   int
	History    int
	// Accounts restricts the run to these account ids (all of them must exist).
	Accounts []string
	Workers  int
	DryRun   bool
	TimeZone string
	Buckets  int
	Shard    int
	Shards   int
	// LockWait is how long to wait for another run holding the shard's lock; zero
	// fails at once (the command line's default is DefaultLockWait).
	LockWait time.Duration
	LockTTL  time.Duration

	Now         func() time.Time
	Logger      *slog.Logger
	ToolVersion string
	Memory      memory.Allocator
	// PlanOut receives the plan of a dry run.
	PlanOut io.Writer
	// BeforeWrite, if set, is called before every object put or delete with the
	// object's name (lock refreshes included): the run writes through
	// bucket.WithHook(Out, BeforeWrite), so no write can skip it. Crash tests kill the
	// process there.
	BeforeWrite func(object string)
	// PurgeRevoked deletes the data of users whose access was revoked (a 401 for their
	// token) during the run, as the Privacy Act asks of data no longer reasonably
	// required. A 403 never purges; nor does a run in which no user was served, a
	// token no earlier run can name unambiguously, or a user another token of the run
	// still belongs to.
	PurgeRevoked bool
	// FailOnRevoked makes a run in which any user was refused (revoked or forbidden)
	// return ErrPartial. By default a refused user is reported but routine.
	FailOnRevoked bool
	// Progress, if set, is called after each walk with the windows (account-months)
	// done and planned.
	Progress func(done, total int)
	// SpillDir is the local directory of the spill file, where extracted rows wait
	// for the rest of their partition once HoldBytes of them are in memory; empty is
	// the system's temporary directory. HoldBytes 0 is DefaultHoldBytes; negative
	// spills everything.
	SpillDir  string
	HoldBytes int64
	// HeldBytes bounds the memory of the partitions held back for the reconcile
	// stage (they may lose rows to deletions): beyond it they wait in the spill file.
	// 0 is DefaultHeldBytes; negative parks every one.
	HeldBytes int64
	// StateCache, shared by the runs of a process that runs several shards of a
	// fleet one after another, spares each run re-reading the other shards' state
	// objects that have not changed since the previous run read them (every run
	// reads every bucket's users object to know its shard's tokens). Nil reads them
	// every run.
	StateCache *StateCache
	// AccountWalks walks every account on its own and asks each account's pending
	// list, never a user's accounts together: a request per account at least, where
	// by default a user whose accounts are all extracted over the same months costs
	// one walk and one pending request. (A failed walk over a user's accounts is done
	// again account by account anyway, so one account's failure stays its own.)
	AccountWalks bool
	// Refresh asks Akahu to fetch every user's data from the banks before extracting
	// (POST /refresh) and waits, up to RefreshWait, until each active account with
	// transactions shows a refreshed.transactions newer than the request; an account
	// that does not, or whose user's request failed, is extracted anyway with a
	// warning and a note in the manifest. A dry run does not refresh. The Source must
	// implement Refresher.
	Refresh bool
	// RefreshWait bounds that wait (0: DefaultRefreshWait). RefreshPoll is the first
	// pause between listings of a user's accounts while waiting, doubled each round
	// up to four times itself (0: DefaultRefreshPoll).
	RefreshWait time.Duration
	RefreshPoll time.Duration
	// CompareValues reads every re-read partition whole and compares every value of
	// the rows Akahu returned with the stored ones. By default a partition is first
	// checked by range (its footer and the id, account_id, date, date_local and
	// updated_at columns) and left unread and unwritten when every re-read row is
	// stored with the same updated_at and none is missing: a change Akahu makes
	// without advancing updated_at is then picked up only by a run with CompareValues.
	CompareValues bool
}

func (c *Config) setDefaults() error {
	if c.Out == nil || c.Source == nil {
		return fmt.Errorf("%w: an output bucket and an Akahu source are required", ErrConfig)
	}
	if c.Tokens != nil {
		if c.Users != nil || c.UserIDs != nil {
			return fmt.Errorf("%w: user tokens given twice (Tokens, and Users or UserIDs): give one", ErrConfig)
		}
	} else if len(c.Users) == 0 {
		return fmt.Errorf("%w: no user token (set AKAHU_USER_TOKEN or --user-tokens-file)", ErrConfig)
	}
	for i, u := range c.Users {
		if u == "" {
			return fmt.Errorf("%w: user token %d is empty", ErrConfig, i+1)
		}
	}
	if c.UserIDs != nil && len(c.UserIDs) != len(c.Users) {
		return fmt.Errorf("%w: %d user ids for %d user tokens: want one per token (\"\" where unknown)", ErrConfig, len(c.UserIDs), len(c.Users))
	}
	for i, id := range c.UserIDs {
		if err := CheckUserID(id); err != nil {
			return fmt.Errorf("%w: user id of token %d: %v", ErrConfig, i+1, err)
		}
	}
	if c.Tokens == nil {
		c.Tokens = TokenList(c.Users, c.UserIDs)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Workers < 1 || c.Workers > 256 {
		return fmt.Errorf("%w: --workers %d out of range 1..256", ErrConfig, c.Workers)
	}
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.Lookback < 0 || c.History < 0 {
		return fmt.Errorf("%w: lookback and history must be positive", ErrConfig)
	}
	if c.TimeZone == "" {
		c.TimeZone = schema.DefaultTimeZone
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Buckets < 1 || c.Buckets > 4096 {
		return fmt.Errorf("%w: bucket count %d out of range 1..4096", ErrConfig, c.Buckets)
	}
	if c.Shard < 0 || c.Shard >= c.Shards {
		return fmt.Errorf("%w: shard %d of %d", ErrConfig, c.Shard, c.Shards)
	}
	if c.LockWait < 0 {
		return fmt.Errorf("%w: lock wait %s is negative", ErrConfig, c.LockWait)
	}
	if c.LockTTL == 0 {
		c.LockTTL = DefaultLockTTL
	}
	if c.Refresh {
		if _, ok := c.Source.(Refresher); !ok {
			return fmt.Errorf("%w: refresh asked for but the source cannot refresh (%T)", ErrConfig, c.Source)
		}
		if c.RefreshWait < 0 || c.RefreshPoll < 0 {
			return fmt.Errorf("%w: refresh wait %s and poll %s must not be negative", ErrConfig, c.RefreshWait, c.RefreshPoll)
		}
		if c.RefreshWait == 0 {
			c.RefreshWait = DefaultRefreshWait
		}
		if c.RefreshPoll == 0 {
			c.RefreshPoll = DefaultRefreshPoll
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Memory == nil {
		c.Memory = memory.DefaultAllocator
	}
	if c.HoldBytes == 0 {
		c.HoldBytes = DefaultHoldBytes
	}
	if c.HeldBytes == 0 {
		c.HeldBytes = DefaultHeldBytes
	}
	if c.PlanOut == nil {
		c.PlanOut = io.Discard
	}
	if c.ToolVersion == "" {
		c.ToolVersion = "dev"
	}
	return nil
}

// CheckUserID accepts "" (unknown) or an Akahu user id: "user_" and letters, digits,
// '_' or '-', but not "user_token_…" (a token in the wrong column). The value is
// never quoted back: it may be a secret put there by mistake.
func CheckUserID(id string) error {
	if id == "" {
		return nil
	}
	rest, ok := strings.CutPrefix(id, "user_")
	if !ok || rest == "" {
		return errors.New("not an Akahu user id (user_…)")
	}
	if strings.HasPrefix(rest, "token_") {
		return errors.New("a user token, not a user id (user_…)")
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("not an Akahu user id: it holds %q", c)
		}
	}
	return nil
}
