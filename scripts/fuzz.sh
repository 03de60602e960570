#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each: ./scripts/fuzz.sh [DURATION]
#
# A real failure makes `go test -fuzz` write the failing input under testdata/fuzz and
# say "Failing input written to"; the script fails on that, or on a panic. When the
# deadline passes while the fuzzer is still minimising a new coverage input, go test
# can report only "context deadline exceeded" with no failing input: that run is retried
# once, and only fails the script if it happens again.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fuzz() { # pkg target
  go test -run '^$' -fuzz "^$2\$" -fuzztime "${fuzztime}" "$1" >"$log" 2>&1
}

grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./tests/' | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz ${pkg} ${target} (${fuzztime})"
    for attempt in 1 2; do
      if fuzz "$pkg" "$target"; then
        break
      fi
      if grep -q -e 'Failing input written to' -e '^panic:' "$log" || ! grep -q 'context deadline exceeded' "$log" || [ "$attempt" = 2 ]; then
        cat "$log"
        exit 1
      fi
      echo "  (the fuzzing deadline passed during minimisation, no failing input; retrying once)"
    done
  done
done
echo "fuzz: all targets passed"
