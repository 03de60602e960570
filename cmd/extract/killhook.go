//go:build !crashtest

package main

// killHook is the crash tests' seam, compiled only with -tags crashtest (see
// killhook_crashtest.go): a normal build ignores EXTRACT_TEST_KILL_AT.
func killHook(env) func(string) { return nil }
