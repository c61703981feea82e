"""A mock embeddings API over HTTPS, for the example workflow.

    MOCK_API_TOKEN=s3cret python3 mock_api.py      # https://127.0.0.1:8443

POST /v1/embeddings with `Authorization: Bearer $MOCK_API_TOKEN` and a JSON body
{"model": ..., "input": "text"} answers {"model", "embedding", "tokens"}; a wrong
token gets 401. Serves certs/server.pem (run ./make-certs.sh first).
"""
import hashlib
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = os.environ.get("MOCK_API_TOKEN", "")
PORT = int(os.environ.get("MOCK_API_PORT", "8443"))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not TOKEN or self.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.answer(401, {"error": "missing or wrong bearer token"})
        if self.path != "/v1/embeddings":
            return self.answer(404, {"error": f"no route {self.path}"})
        text = str(body.get("input", ""))
        digest = hashlib.sha256(text.encode()).digest()
        self.answer(200, {
            "model": body.get("model"),
            "embedding": [round(b / 255, 3) for b in digest[:8]],
            "tokens": len(text.split()),
            "request_id": self.headers.get("x-request-id"),
        })

    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    if not TOKEN:
        sys.exit("set MOCK_API_TOKEN (the token the workflow's worker must send)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(HERE, "certs", "server.pem"),
                            os.path.join(HERE, "certs", "server.key"))
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"mock API on https://127.0.0.1:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
