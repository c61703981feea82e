"""Submits the job to the remote system and exits at once: the step ends when the
remote system calls back with this attempt's token (`stepwise complete TOKEN ...` or
POST /v1/callbacks/TOKEN). Here the "remote system" is a spool directory that
remote_service.py works through."""
import json, os, sys

context = json.load(sys.stdin)
token = os.environ["STEPWISE_CALLBACK_TOKEN"]
os.makedirs("jobs", exist_ok=True)
job = {
    "token": token,
    "order": context["input"]["order"],
    "approved_by": context["steps"]["approval"].get("by"),
    # Set when the server runs with --public-url: where an HTTP service would post.
    "callback_url": (context.get("callback") or {}).get("url"),
}
path = os.path.join("jobs", f"{context['run_id']}.json")
with open(path + ".tmp", "w") as f:
    json.dump(job, f)
os.replace(path + ".tmp", path)
print(json.dumps({"submitted": path}))
