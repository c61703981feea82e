"""Compensation of `submit`: withdraws the job if the remote system still has it."""
import json, os, sys

context = json.load(sys.stdin)
path = os.path.join("jobs", f"{context['run_id']}.json")
withdrawn = os.path.exists(path)
if withdrawn:
    os.remove(path)
print(json.dumps({"withdrawn": withdrawn}))
