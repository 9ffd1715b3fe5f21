"""A real HTTP server for the webhook tests: answers each POST with the next status from a
list (the last one repeats) and appends what it received to a JSON-lines log.

    python3 webhook-server.py LOG STATUSES     e.g. STATUSES = 500,500,200
Prints the port it listens on (127.0.0.1, chosen by the system), then serves until killed.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

log_path = sys.argv[1]
statuses = [int(s) for s in sys.argv[2].split(",")]
received = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global received
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status = statuses[min(received, len(statuses) - 1)]
        received += 1
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"status": status, "path": self.path,
                                  "headers": {k.lower(): v for k, v in self.headers.items()},
                                  "body": body.decode("utf-8")}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
