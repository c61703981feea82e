"""Reads the document named by the run's input (relative to this directory)."""
import json
import sys

context = json.load(sys.stdin)
path = context["input"].get("document", "sample.txt")
with open(path, encoding="utf-8") as f:
    text = f.read()
lines = [line for line in text.splitlines() if line.strip()]
print(json.dumps({"document": path, "title": lines[0] if lines else "", "text": text}))
