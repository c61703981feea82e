"""Compensation of `reserve`: gives the stock back."""
import json, sys

context = json.load(sys.stdin)
reservation = context["compensating"]["output"]["reservation"]
with open("reservations.log", "a") as log:
    log.write(f"released {reservation}\n")
print(json.dumps({"released": reservation}))
