#!/usr/bin/env bash
# The test suite N times in a row (default 5) while the benchmarks of .ci/run (at --small) run beside it in a
# loop, as on a busy CI machine: a test that depends on timing fails here. Logs stay in the printed folder.
#   bash scripts/stress.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
logs=$(mktemp -d /tmp/stress-XXXX)
set -m # the benchmark loop gets its own process group, so it can be stopped with everything it started
(
  while true; do
    for bench in benchmarks/bench_*.py benchmarks/soak.py; do
      .venv/bin/python "$bench" --small >>"$logs/benchmarks.log" 2>&1
    done
  done
) &
load=$!
trap 'kill -- -$load 2>/dev/null' EXIT
echo "logs in $logs; the benchmarks run beside the tests (pid $load)"
failed=0
for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if .venv/bin/pytest -q -p no:cacheprovider >"$logs/pytest-$i.log" 2>&1; then verdict=pass; else
    verdict=FAIL
    failed=$((failed + 1))
  fi
  echo "run $i/$runs: $verdict in $(($(date +%s) - started)) s: $(tail -1 "$logs/pytest-$i.log")"
done
echo "$failed of $runs runs failed (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
exit $((failed > 0 ? 1 : 0))
