"""Reports the batch: each child's final outputs, in the order of the documents."""
import json
import sys

context = json.load(sys.stdin)
children = context["steps"]["ingest"]
print(json.dumps({"documents": len(children),
                  "indexed": sum(1 for c in children if c and c["index"]["indexed"])}))
