"""A stand-in for the remote system: works through the jobs in ./jobs and reports
each one back with `stepwise complete TOKEN --output JSON` (or `--error MSG` for an
order that is a multiple of 13). Set STEPWISE to the stepwise binary and
STEPWISE_DATABASE_URL to the database if they are not the defaults.

    python3 remote_service.py            # once over the spool directory
    python3 remote_service.py --forever  # keep watching it
"""
import json, os, subprocess, sys, time

stepwise = os.environ.get("STEPWISE", "stepwise")


def work_once():
    if not os.path.isdir("jobs"):
        return 0
    done = 0
    for name in sorted(os.listdir("jobs")):
        if not name.endswith(".json"):
            continue
        path = os.path.join("jobs", name)
        with open(path) as f:
            job = json.load(f)
        if job["order"] % 13 == 0:
            args = ["--error", f"order {job['order']} was rejected", "--permanent"]
        else:
            args = ["--output", json.dumps({"job": f"j-{job['order']}", "status": "done"})]
        answer = subprocess.run([stepwise, "complete", job["token"], *args])
        # 0: accepted; 3: the attempt is no longer current (timed out, cancelled).
        print(f"{name}: stepwise complete exited {answer.returncode}", file=sys.stderr)
        os.remove(path)
        done += 1
    return done


if "--forever" in sys.argv:
    while True:
        work_once()
        time.sleep(0.5)
else:
    work_once()
