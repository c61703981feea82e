"""Counts words and names the most frequent ones."""
import collections
import json
import re
import sys

context = json.load(sys.stdin)
text = context["steps"]["read"]["text"]
words = re.findall(r"[a-z']+", text.lower())
common = collections.Counter(w for w in words if len(w) > 3).most_common(5)
print(json.dumps({"words": len(words), "lines": text.count("\n"), "top": common}))
