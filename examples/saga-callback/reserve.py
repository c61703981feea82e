"""Reserves stock for the order (here: a line in reservations.log)."""
import json, sys

context = json.load(sys.stdin)
order = context["input"]["order"]
with open("reservations.log", "a") as log:
    log.write(f"reserved {order}\n")
print(json.dumps({"reservation": f"r-{order}"}))
