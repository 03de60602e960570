package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// lockedBuffer is a bytes.Buffer safe for concurrent log writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNeverLeak runs extractions with distinctive tokens (one revoked, one
// unknown to Akahu, with retries and faults on the way) and searches every log line
// at debug level, every error, the manifests and every file written for them.
func TestSecretsNeverLeak(t *testing.T) {
	const app = "app_token_DISTINCTIVE_app_secret_0123456789"
	opts := smallPopulation()
	opts.AppToken = app
	dir := t.TempDir()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, opts)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := akahu.New(akahu.Config{BaseURL: h.srv.URL, AppToken: akahu.Token(app), HTTPClient: h.srv.Client(),
		BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.client = client
	unknown := akahu.Token("user_token_DISTINCTIVE_unknown_secret_987")
	secrets := []string{app, string(unknown)}
	for _, u := range h.srv.Users() {
		secrets = append(secrets, u.Token)
	}
	var errs []string
	run := func(mutate func(*pipeline.Config)) {
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Logger = log
		cfg.Users = append(cfg.Users, unknown)
		if mutate != nil {
			mutate(&cfg)
		}
		m, err := pipeline.Run(context.Background(), cfg)
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
		if m != nil {
			data, _ := json.Marshal(m)
			errs = append(errs, string(data))
		}
	}
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 3})
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.RateLimit, Count: 2, RetryAfter: time.Millisecond})
	run(nil)
	h.srv.RevokeUser(h.srv.Users()[1].ID)
	run(func(c *pipeline.Config) { c.PurgeRevoked = true })
	run(func(c *pipeline.Config) { c.Accounts = []string{"acc_doesnotexist0000000000000"} })

	if !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Fatal("no debug log lines were captured; the test would prove nothing")
	}
	haystacks := map[string]string{"logs": logs.String(), "errors and manifests": strings.Join(errs, "\n")}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		haystacks[path] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for where, text := range haystacks {
		if strings.HasPrefix(where, dir) {
			files++
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a token leaked into %s", where)
			}
		}
	}
	if files < 10 {
		t.Fatalf("only %d files searched", files)
	}
}
