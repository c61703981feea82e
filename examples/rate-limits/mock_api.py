#!/usr/bin/env python3
"""A mock API with a quota per tenant: at most QUOTA requests in any rolling
second. Over it, it answers 429 with Retry-After (whole seconds until the tenant's
window has room), as a real API does. GET /stats says, per tenant, how many calls
it took, the most it saw in one rolling second and how many it refused.

    python3 mock_api.py [--port 9400] [--quota 6]
"""

import argparse
import collections
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
WINDOWS = collections.defaultdict(collections.deque)  # tenant -> arrival times
STATS = collections.defaultdict(lambda: {"calls": 0, "max_per_second": 0, "refused": 0})


class Handler(BaseHTTPRequestHandler):
    quota = 6

    def do_GET(self):
        if self.path != "/stats":
            return self.answer(404, {"error": "no such path"})
        with LOCK:
            self.answer(200, dict(STATS))

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.answer(400, {"error": "the body is not JSON"})
        tenant = str(body.get("tenant") or (body.get("input") or {}).get("tenant") or "?")
        now = time.monotonic()
        with LOCK:
            window = WINDOWS[tenant]
            while window and window[0] <= now - 1.0:
                window.popleft()
            stats = STATS[tenant]
            if len(window) >= self.quota:
                stats["refused"] += 1
                wait = max(1, math.ceil(window[0] + 1.0 - now))
                return self.answer(429, {"error": f"over {self.quota}/s for {tenant}"},
                                   {"Retry-After": str(wait)})
            window.append(now)
            stats["calls"] += 1
            stats["max_per_second"] = max(stats["max_per_second"], len(window))
        self.answer(200, {"tenant": tenant, "path": self.path, "doc": body.get("doc")})

    def answer(self, status, value, headers=None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, text in (headers or {}).items():
            self.send_header(name, text)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--quota", type=int, default=6)
    args = parser.parse_args()
    Handler.quota = args.quota
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"mock API on http://127.0.0.1:{args.port}, {args.quota} calls per second per tenant",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
