#!/usr/bin/env bash
# The whole example: the mock API, three workers on one SQLite database, three
# tenants (one with a backlog), then the API's own count of what it saw per tenant.
# Exits non-zero if a run did not complete or the API ever saw a tenant over its
# quota. STEPWISE (default: the debug build of this repository) is the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stepwise=${STEPWISE:-$root/target/debug/stepwise}
[ -x "$stepwise" ] || (cd "$root" && cargo build -q -p stepwise-cli)
work=$(mktemp -d)
export STEPWISE_DATABASE_URL="sqlite://$work/rate-limits.db"
pids=()
finish() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap finish EXIT

python3 "$here/mock_api.py" --quota 6 & pids+=($!)
until curl -sf http://127.0.0.1:9400/stats >/dev/null; do sleep 0.1; done
"$stepwise" apply "$here/workflow.toml"
{
  for i in $(seq 1 30); do echo "{\"tenant\": \"acme\", \"doc\": $i}"; done
  for t in globex initech; do
    for i in $(seq 1 6); do echo "{\"tenant\": \"$t\", \"doc\": $i}"; done
  done
} > "$work/inputs.jsonl"
"$stepwise" run rate-limits --inputs "$work/inputs.jsonl" > "$work/runs"
echo "started $(wc -l < "$work/runs") runs: 30 for acme, 6 each for globex and initech"
for n in 1 2 3; do
  "$stepwise" worker --pool '*=8' 2> "$work/worker$n.log" & pids+=($!)
done

total=$(wc -l < "$work/runs")
while :; do
  done_count=$("$stepwise" runs list --json | python3 -c '
import datetime, json, sys
runs = json.load(sys.stdin)
print(sum(r["status"] in ("completed", "failed", "cancelled") for r in runs))')
  [ "$done_count" -ge "$total" ] && break
  sleep 1
done
"$stepwise" limits
echo
status=0
"$stepwise" runs list --json | python3 -c '
import datetime, json, sys
runs = json.load(sys.stdin)
failed = [r["id"] for r in runs if r["status"] != "completed"]
print(f"{len(runs) - len(failed)} of {len(runs)} runs completed")
first = min(r["created_at"] for r in runs)
at = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
for tenant in sorted({r["input"]["tenant"] for r in runs}):
    last = max(r["finished_at"] or first for r in runs if r["input"]["tenant"] == tenant)
    print(f"  {tenant}: its last run finished {(at(last) - at(first)).total_seconds():.1f} s after the first was created")
sys.exit(1 if failed else 0)' || status=1
# Attempts the API turned away (retried after its Retry-After), if any.
"$stepwise" events --json | python3 -c '
import json, sys
errors = [json.loads(l)["data"]["error"] for l in sys.stdin if json.loads(l)["kind"] == "step.failed"]
print(f"{len(errors)} attempts failed" + "".join("\n  " + e for e in errors))'
curl -s http://127.0.0.1:9400/stats | python3 -c '
import json, sys
stats = json.load(sys.stdin)
for tenant, s in sorted(stats.items()):
    print("%s: %d calls, at most %d in one second, %d refused"
          % (tenant, s["calls"], s["max_per_second"], s["refused"]))
sys.exit(1 if any(s["refused"] for s in stats.values()) else 0)' || status=1
exit $status
