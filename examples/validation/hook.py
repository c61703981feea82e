"""Runs one validation hook: the item of the `hooks` step."""
import json
import sys
import time

context = json.load(sys.stdin)
hook = context["item"]
if hook["name"] == "broken":
    print(f"hook {hook['name']} cannot run", file=sys.stderr)
    sys.exit(1)
time.sleep(0.2)
print(json.dumps({"hook": hook["name"], "index": context["item_index"], "ok": True}))
