"""Decides which hooks a deposition needs: here, the ones its input names."""
import json
import sys

context = json.load(sys.stdin)
hooks = context["input"].get("hooks", [])
print(json.dumps({"hooks": [{"name": h, "deposition": context["input"].get("deposition")} for h in hooks]}))
