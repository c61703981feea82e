"""Reads the document named by the run's input (relative to this directory)."""
import json
import sys

context = json.load(sys.stdin)
path = context["input"].get("document", "note.txt")
with open(path, encoding="utf-8") as f:
    text = f.read().strip()
print(json.dumps({"document": path, "text": text, "words": len(text.split())}))
