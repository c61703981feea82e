#!/usr/bin/env python3
"""The `index` step: calls the mock API itself. Told to come back later (429), it
passes the API's Retry-After on as back-pressure: exit 75 with
{"retry_after": "Ns"} on stdout, so Stepwise retries after that delay and pauses the
tenant's rate limit key as long."""

import json
import sys
import urllib.error
import urllib.request

context = json.load(sys.stdin)
tenant = context["input"]["tenant"]
request = urllib.request.Request(
    "http://127.0.0.1:9400/index",
    data=json.dumps({"tenant": tenant, "doc": context["input"].get("doc")}).encode(),
    headers={"content-type": "application/json"},
)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.read().decode())
except urllib.error.HTTPError as e:
    if e.code == 429:
        print(json.dumps({"retry_after": f"{e.headers.get('Retry-After', '1')}s"}))
        sys.exit(75)
    print(f"the API answered {e.code}", file=sys.stderr)
    sys.exit(1)
