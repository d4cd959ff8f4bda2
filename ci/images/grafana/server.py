"""Grafana stand-in: answers the health and login endpoints with Grafana's shapes."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "10.0.0-stackcheck-standin"


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/api/health"):
            self._send(200, json.dumps({"commit": "standin", "database": "ok", "version": VERSION}))
        elif self.path.startswith("/metrics"):
            self._send(200, "grafana_build_info{version=\"%s\"} 1\n" % VERSION, "text/plain; version=0.0.4")
        elif self.path in ("/", "/login"):
            self._send(200, "<html><title>Grafana</title><body>Grafana stand-in</body></html>", "text/html")
        else:
            self._send(404, json.dumps({"message": "Not found"}))

    def log_message(self, fmt, *args):
        print("grafana-standin: " + fmt % args, flush=True)


if __name__ == "__main__":
    # Admin password is accepted as upstream does; it is never printed.
    _ = os.environ.get("GF_SECURITY_ADMIN_PASSWORD")
    print("HTTP Server Listen address=0.0.0.0:3000 (grafana stand-in %s)" % VERSION, flush=True)
    ThreadingHTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
