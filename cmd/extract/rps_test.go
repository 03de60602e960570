package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"
)

// TestRPSIsTheJobsBudget: --rps is the whole job's request rate budget, so
// each of --shards clients gets an equal share.
func TestRPSIsTheJobsBudget(t *testing.T) {
	env := map[string]string{"AKAHU_APP_TOKEN": "app_token_x", "AKAHU_USER_TOKEN": "user_token_x", "AKAHU_BASE_URL": "http://127.0.0.1:1/v1"}
	for _, tc := range []struct {
		args []string
		want float64
	}{
		{[]string{"--rps", "40"}, 40},
		{[]string{"--rps", "40", "--shards", "4", "--shard", "3"}, 10},
		{[]string{"--rps", "10", "--shards", "4"}, 2.5},
		{[]string{"--shards", "4"}, 0}, // no budget: each shard finds the limit
		{[]string{"--rps", "0", "--shards", "4"}, 0},
	} {
		fs := flag.NewFlagSet("extract run", flag.ContinueOnError)
		var f runFlags
		f.register(fs, func(string) string { return "" })
		if err := fs.Parse(append([]string{"--out", t.TempDir()}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		_, client, err := f.config(context.Background(), func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := client.Stats().RateBudget; got != tc.want {
			t.Errorf("%v: client budget %v requests/s, want %v", tc.args, got, tc.want)
		}
	}
}
