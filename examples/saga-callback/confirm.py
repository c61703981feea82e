"""Confirms the order with the remote job's result."""
import json, sys

context = json.load(sys.stdin)
result = context["steps"]["submit"]
print(json.dumps({"confirmed": context["input"]["order"], "result": result}))
