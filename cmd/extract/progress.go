package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the progress display: one line at the bottom of a terminal, redrawn
// as a run extracts (units done of planned, rows read, requests per second, ETA), that
// log lines never tangle with, because the log writes through it.

// clearLine moves to the start of the line and erases it (ANSI EL2).
const clearLine = "\r\x1b[2K"

// progressEvery bounds how often the line is redrawn for progress alone.
const progressEvery = 200 * time.Millisecond

// progress is the progress display on a terminal. It is also the writer of everything
// else the command writes to the terminal's stderr (the log, the failure lines): each
// write clears the progress line, writes its bytes and draws the line again below
// them. It is safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	stats func() akahu.Stats
	text  string // the progress line as last drawn; "" when nothing is drawn

	// The run's figures: base when it began (rows are counted from it); t0, done0 and
	// req0 at its first report, after planning (and any refresh wait): the ETA and the
	// request rate are measured from them.
	base  akahu.Stats
	t0    time.Time
	done0 int
	req0  int64
	last  time.Time // the last redraw for progress alone
}

// progressOut returns where the command writes its stderr output, and the progress
// display, which is nil (and the output stderr itself) unless stderr is a terminal and
// the log format is text: JSON and gcp logs are read by machines, which a redrawn line
// would only garble.
func progressOut(stderr io.Writer, terminal bool, format string) (io.Writer, *progress) {
	if !terminal || format != "text" {
		return stderr, nil
	}
	p := &progress{w: stderr}
	return p, p
}

// Write writes whole lines (a log record, a failure line) above the progress line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.text == "" {
		return p.w.Write(b)
	}
	var buf bytes.Buffer
	buf.WriteString(clearLine)
	buf.Write(b)
	if len(b) > 0 && b[len(b)-1] == '\n' {
		buf.WriteString(p.text)
	} else {
		p.text = "" // a partial line: the next full write starts clean
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// report returns the pipeline's Progress callback for one run whose Source counts
// its requests in stats. A nil display reports nothing.
func (p *progress) report(stats func() akahu.Stats) func(done, total int) {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.stats, p.base, p.t0 = stats, stats(), time.Time{}
	p.mu.Unlock()
	return p.update
}

// update redraws the line for done units of total, at most every progressEvery unless
// the run just completed its units.
func (p *progress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats == nil {
		return // the run has ended
	}
	now := time.Now()
	st := p.stats()
	if p.t0.IsZero() {
		p.t0, p.done0, p.req0 = now, done, st.Requests
	}
	if p.text != "" && done < total && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	p.text = p.format(done, total, now, st)
	_, _ = io.WriteString(p.w, clearLine+p.text)
}

// format is the progress line: "extracted 12/40 (30%) · 4567 rows · 38.2 req/s · ETA 1m10s".
func (p *progress) format(done, total int, now time.Time, st akahu.Stats) string {
	s := fmt.Sprintf("extracted %d/%d (%d%%) · %d rows", done, total, done*100/max(total, 1), st.Transactions-p.base.Transactions)
	if secs := now.Sub(p.t0).Seconds(); secs > 0 {
		s += fmt.Sprintf(" · %.1f req/s", float64(st.Requests-p.req0)/secs)
	}
	if n := done - p.done0; n > 0 && done < total {
		eta := time.Duration(float64(now.Sub(p.t0)) * float64(total-done) / float64(n))
		s += " · ETA " + eta.Round(time.Second).String()
	}
	return s
}

// end finishes a run's line: it stays on the terminal, drawn once more with the last
// figures and ended by a newline. The display is then ready for another run. A nil
// display, or one that drew nothing, writes nothing.
func (p *progress) end() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.text != "" {
		_, _ = io.WriteString(p.w, clearLine+p.text+"\n")
	}
	p.text, p.stats, p.t0, p.last = "", nil, time.Time{}, time.Time{}
}
