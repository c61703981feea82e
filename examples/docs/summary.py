"""A naive extractive summary: the first sentence of each paragraph."""
import json
import sys

context = json.load(sys.stdin)
text = context["steps"]["read"]["text"]
paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
firsts = [p.replace("\n", " ").split(". ")[0].rstrip(".") + "." for p in paragraphs[1:4]]
print(f"progress: summarised {len(paragraphs)} paragraphs", file=sys.stderr)
print(json.dumps({"summary": " ".join(firsts)}))
