#!/usr/bin/env bash
# Runs the official Akahu JavaScript SDK (npm "akahu" 2.5.1, pinned in package.json and
# package-lock.json) against the fake Akahu API: installs the locked node_modules from the
# npm registry, then runs the Go test that starts the fake and drives check.mjs with node.
# Independent of the Makefile. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
cd ../..
AKAHU_SDK_CHECK=require go test -count=1 ./tests/sdk/
