//go:build crashtest

package main

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
)

// killHook supports crash tests: with EXTRACT_TEST_KILL_AT=N the process SIGKILLs
// itself just before its N-th object write or delete. Only a binary built with
// -tags crashtest has it; the binary tests build one.
func killHook(getenv env) func(string) {
	n, err := strconv.Atoi(getenv("EXTRACT_TEST_KILL_AT"))
	if err != nil || n <= 0 {
		return nil
	}
	var count atomic.Int64
	return func(string) {
		if count.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never reached
		}
	}
}
