"""Parses one document (here: pretends to, and counts its name's letters)."""
import json
import sys

context = json.load(sys.stdin)
document = context["input"]["document"]
print(json.dumps({"document": document, "words": len(document)}))
