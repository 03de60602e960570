package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestConfigErrors runs realMain in-process for every flag and configuration error:
// each exits 2 with a message naming what was wrong, and writes nothing.
func TestConfigErrors(t *testing.T) {
	srv := akahutest.NewServer(akahutest.Options{Users: 1, AccountsPerUser: 3, TxPerAccountPerMonth: 2})
	defer srv.Close()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := srv.Users()[0].Token
	good := file("good", "# users\n\n"+tok+"\n")
	empty := file("empty", "")
	comments := file("comments", "# only a comment\n\n   \n")
	spaced := file("spaced", "user_token a b\n")
	dup := file("dup", tok+"\n"+tok+"\n")
	badID := file("badid", tok+" acc_1\n")
	tokenAsID := file("tokenasid", tok+" "+tok+"\n")
	out := filepath.Join(dir, "out")
	env := map[string]string{"AKAHU_APP_TOKEN": srv.AppToken(), "AKAHU_BASE_URL": srv.URL}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"empty tokens file", []string{"--user-tokens-file", empty}, nil, "has no tokens"},
		{"commented tokens file", []string{"--user-tokens-file", comments}, nil, "has no tokens"},
		{"token with spaces", []string{"--user-tokens-file", spaced}, nil, "line 1"},
		{"duplicate token", []string{"--user-tokens-file", dup}, nil, "same token as line 1"},
		{"not a user id", []string{"--user-tokens-file", badID}, nil, "line 1, second column: not an Akahu user id"},
		{"a token as the user id", []string{"--user-tokens-file", tokenAsID}, nil, "line 1, second column: a user token"},
		{"bad lookback", []string{"--user-tokens-file", good, "--lookback", "thirty"}, nil, "--lookback"},
		{"bad history", []string{"--user-tokens-file", good, "--history", "-3d"}, nil, "--history"},
		{"bad end date", []string{"--user-tokens-file", good, "--end", "2026-02-30"}, nil, "--end"},
		{"refresh wait not positive", []string{"--user-tokens-file", good, "--refresh", "--refresh-wait", "0s"}, nil, "--refresh-wait"},
		{"workers out of range", []string{"--user-tokens-file", good, "--workers", "0"}, nil, "--workers"},
		{"shard out of range", []string{"--user-tokens-file", good, "--shard", "3", "--shards", "2"}, nil, "--shard"},
		{"more tasks than shards", []string{"--user-tokens-file", good, "--shards", "2", "--tasks", "3"}, nil, "--tasks 3 --shards 2"},
		{"task index beyond the tasks", []string{"--user-tokens-file", good, "--shards", "8", "--tasks", "2"}, map[string]string{"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "4"}, "task index 3"},
		{"indexed job without --shards", []string{"--user-tokens-file", good}, map[string]string{"JOB_COMPLETION_INDEX": "0"}, "pass --shards"},
		{"indexed job pod 3 without --shards", []string{"--user-tokens-file", good}, map[string]string{"JOB_COMPLETION_INDEX": "3"}, "pass --shards"},
		{"bad time zone", []string{"--user-tokens-file", good, "--time-zone", "Mars/Olympus"}, nil, "--time-zone"},
		{"not an account id", []string{"--user-tokens-file", good, "--accounts", "savings"}, nil, "not an account id"},
		{"unknown account id", []string{"--user-tokens-file", good, "--accounts", "acc_nosuchaccount0000000000000"}, nil, "no such account"},
		{"unsupported output scheme", []string{"--user-tokens-file", good}, nil, "only local directories and gs://"},
		{"no app token", []string{"--user-tokens-file", good}, map[string]string{"AKAHU_APP_TOKEN": ""}, "AKAHU_APP_TOKEN"},
		{"remote plain http", []string{"--user-tokens-file", good}, map[string]string{"AKAHU_BASE_URL": "http://10.1.2.3/v1"}, "http"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := out
			if c.name == "unsupported output scheme" {
				target = "s3://bucket/prefix"
			}
			args := append([]string{"run", "--out", target}, c.args...)
			getenv := func(k string) string {
				if v, ok := c.env[k]; ok {
					return v
				}
				return env[k]
			}
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), args, &stdout, &stderr, getenv)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), c.want)
			}
			if strings.Contains(stderr.String(), tok) || strings.Contains(stdout.String(), tok) {
				t.Error("the token was printed")
			}
			if list, _ := filepath.Glob(filepath.Join(out, "*", "*.parquet")); len(list) > 0 {
				t.Errorf("a configuration error wrote data: %v", list)
			}
		})
	}
}

// TestFleetFlags: --spill-dir, --account-walks and --compare-values reach the run's
// configuration.
func TestFleetFlags(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("user_token_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"AKAHU_APP_TOKEN": "app_token_x", "AKAHU_BASE_URL": "http://127.0.0.1:1/v1"}[k]
	}
	for _, c := range []struct {
		args    []string
		spill   string
		walks   bool
		compare bool
	}{
		{nil, "", false, false},
		{[]string{"--spill-dir", dir, "--account-walks"}, dir, true, false},
		{[]string{"--compare-values"}, "", false, true},
	} {
		var f runFlags
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		f.register(fs, getenv)
		if err := fs.Parse(append([]string{"--out", dir, "--user-tokens-file", tokens}, c.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := f.config(context.Background(), getenv, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SpillDir != c.spill || cfg.AccountWalks != c.walks || cfg.CompareValues != c.compare {
			t.Errorf("%v: SpillDir %q, AccountWalks %v, CompareValues %v; want %q, %v, %v", c.args, cfg.SpillDir, cfg.AccountWalks, cfg.CompareValues, c.spill, c.walks, c.compare)
		}
	}
}

// TestTaskShards: without --shard, a process is task i of --tasks (both from the
// platform's variables by default) and runs shards i, i+tasks, … in turn; --shard
// runs that shard alone; the request budget is split across the tasks, which run
// at once.
func TestTaskShards(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("user_token_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   []string
		env    map[string]string
		shards []int
		budget float64 // of --rps 120
	}{
		{"one process", nil, nil, []int{0}, 120},
		{"a shard per Cloud Run task", nil, map[string]string{"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "4"}, []int{2}, 30},
		{"ten shards per Cloud Run task", []string{"--shards", "40"}, map[string]string{"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "4"},
			[]int{1, 5, 9, 13, 17, 21, 25, 29, 33, 37}, 30},
		{"shards not a multiple of the tasks", []string{"--shards", "5", "--tasks", "2"}, map[string]string{"JOB_COMPLETION_INDEX": "1"}, []int{1, 3}, 60},
		{"indexed job, a shard per pod", []string{"--shards", "3"}, map[string]string{"JOB_COMPLETION_INDEX": "2"}, []int{2}, 40},
		{"--shard runs one shard", []string{"--shards", "40", "--shard", "7"}, map[string]string{"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "4"}, []int{7}, 30},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"AKAHU_APP_TOKEN": "app_token_x", "AKAHU_BASE_URL": "http://127.0.0.1:1/v1"}
			maps.Copy(env, c.env)
			getenv := func(k string) string { return env[k] }
			var f runFlags
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			f.register(fs, getenv)
			if err := f.parse(fs, append([]string{"--out", dir, "--user-tokens-file", tokens, "--rps", "120"}, c.args...)); err != nil {
				t.Fatal(err)
			}
			cfg, client, err := f.config(context.Background(), getenv, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.runShards, c.shards) || cfg.Shard != c.shards[0] {
				t.Errorf("runs shards %v (first %d), want %v", f.runShards, cfg.Shard, c.shards)
			}
			if got := client.Stats().RateBudget; got != c.budget {
				t.Errorf("request budget %v/s, want %v/s", got, c.budget)
			}
		})
	}
}

// TestUserTokensFile: the tokens file's lines are a token, optionally followed by the
// token's user id ("" where a line gives none); each run reads the file again, so an
// edit between runs is what the next run reads, and a line broken since the check
// fails that run, named by its line.
func TestUserTokensFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content string
		tokens        []string
		ids           []string
	}{
		{"tokens only", "# fleet\nuser_token_a\n\nuser_token_b\n", []string{"user_token_a", "user_token_b"}, []string{"", ""}},
		{"some ids", "user_token_a user_1\nuser_token_b\n  user_token_c\tuser_3  \n", []string{"user_token_a", "user_token_b", "user_token_c"}, []string{"user_1", "", "user_3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			source, err := userTokens(func(string) string { return "" }, p)
			if err != nil {
				t.Fatal(err)
			}
			read := func() ([]string, []string, error) {
				var toks, ids []string
				err := source(func(tok akahu.Token, id string) bool {
					toks, ids = append(toks, string(tok)), append(ids, id)
					return true
				})
				return toks, ids, err
			}
			for run := range 2 {
				got, ids, err := read()
				if err != nil || !slices.Equal(got, c.tokens) || !slices.Equal(ids, c.ids) {
					t.Errorf("run %d: tokens %q ids %q (%v); want %q %q", run+1, got, ids, err, c.tokens, c.ids)
				}
			}
			if err := os.WriteFile(p, []byte(c.content+"user_token_z user_token_y\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			lines := strings.Count(c.content, "\n") + 1
			if _, _, err := read(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d, second column: a user token", lines)) || strings.Contains(err.Error(), "user_token_") {
				t.Errorf("the file broken since the check: %v; want its line %d named, no token quoted", err, lines)
			}
		})
	}
}
