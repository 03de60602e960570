package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// TestTokensReadPerRun: a task that runs a fleet's shards in turn (RunShards) with
// the tokens given as a file (Config.Tokens) reads the file once per run, not once
// for the task, and each manifest counts the file's tokens; between them the shards
// extract every user of the file once, and a token added to the file between two
// tasks is extracted by the next.
func TestTokensReadPerRun(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 12, 2
	h := newHarness(t, b, opts)
	file := filepath.Join(t.TempDir(), "tokens")
	write := func(toks []akahu.Token) {
		var s strings.Builder
		s.WriteString("# the fleet\n")
		for _, tok := range toks {
			s.WriteString(string(tok) + "\n")
		}
		if err := os.WriteFile(file, []byte(s.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(h.tokens[:10])
	reads := 0
	source := pipeline.TokensFile(file)
	counted := func(yield func(akahu.Token, string) bool) error {
		reads++
		return source(yield)
	}
	task := func() (users int) {
		t.Helper()
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Users, cfg.Tokens = nil, counted
		cfg.Buckets, cfg.Shards = 8, 4
		reads = 0
		pipeline.RunShards(context.Background(), cfg, []int{0, 1, 2, 3}, func(shard int, m *pipeline.Manifest, err error) bool {
			if err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
			if m.Config.Users != 10 && m.Config.Users != 12 {
				t.Errorf("shard %d's manifest counts %d user tokens; want the file's", shard, m.Config.Users)
			}
			users += m.UserCounts["ok"]
			return true
		})
		if reads != 4 {
			t.Errorf("the tokens were read %d times by 4 runs; want once a run", reads)
		}
		return users
	}
	if got := task(); got != 10 {
		t.Errorf("the first task's shards extracted %d users between them; want the file's 10", got)
	}
	write(h.tokens) // two users join the fleet
	if got := task(); got != 12 {
		t.Errorf("the second task's shards extracted %d users between them; want the file's 12", got)
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}

// TestTokensRefused: tokens a run cannot use fail it before any data is written,
// with an ErrConfig error that says which token (by its place, never its value) and
// why.
func TestTokensRefused(t *testing.T) {
	opts := smallPopulation()
	opts.Users = 3
	h := newHarness(t, newLocal(t), opts)
	tok := h.tokens
	list := func(toks ...akahu.Token) pipeline.Tokens { return pipeline.TokenList(toks, nil) }
	for _, c := range []struct {
		name   string
		users  []akahu.Token
		tokens pipeline.Tokens
		want   string
	}{
		{"no token", nil, list(), "no user token"},
		{"an empty token", nil, list(tok[0], "", tok[1]), "user token 2 is empty"},
		{"a token twice", nil, list(tok[0], tok[1], tok[0]), "user token 3 is the same as token 1"},
		{"a malformed user id", nil, pipeline.TokenList(tok[:2], []string{"", "user_token_x"}), "user id of token 2"},
		{"tokens given twice", tok, list(tok...), "given twice"},
		{"the source fails", nil, func(yield func(akahu.Token, string) bool) error {
			if !yield(tok[0], "") {
				return nil
			}
			return errors.New("tokens file /x line 2: unreadable")
		}, "tokens file /x line 2: unreadable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newLocal(t)
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Out, cfg.Users, cfg.Tokens = b, c.users, c.tokens
			_, err := pipeline.Run(context.Background(), cfg)
			if !errors.Is(err, pipeline.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run: %v; want ErrConfig saying %q", err, c.want)
			}
			for _, s := range tok {
				if strings.Contains(err.Error(), string(s)) {
					t.Errorf("the error quotes a token: %v", err)
				}
			}
			for _, prefix := range []string{"transactions/", "_manifests/", "pending/", "accounts/"} {
				if got := mustList(t, b, prefix); len(got) != 0 {
					t.Errorf("%d objects under %s after the refused run; want none", len(got), prefix)
				}
			}
		})
	}
}
