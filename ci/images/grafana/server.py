"""Grafana stand-in: answers the health and login endpoints with Grafana's shapes, the signed-in
user's organisation and user (`/api/org`, `/api/user`), and the data sources provisioned under
$GF_PATHS_PROVISIONING/datasources — the API ones with the admin's basic auth, as in Grafana.
Settings come from the environment as upstream reads them: GF_SECURITY_ADMIN_USER/PASSWORD (or
their `__FILE` forms), GF_SERVER_HTTP_PORT."""
import base64
import glob
import json
import os
import re
import signal
import sys
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
        elif self.path.startswith("/api/") and not self._admin():
            self._send(401, json.dumps({"message": "Unauthorized"}))
        elif self.path.startswith("/api/datasources"):
            self._send(200, json.dumps(provisioned_datasources()))
        elif self.path.rstrip("/") == "/api/org":
            self._send(200, json.dumps({"id": 1, "name": "Main Org.", "address": {}}))
        elif self.path.rstrip("/") == "/api/user":
            login = setting("GF_SECURITY_ADMIN_USER", "admin")
            self._send(200, json.dumps({"id": 1, "login": login, "email": "admin@localhost",
                                        "isGrafanaAdmin": True, "orgId": 1}))
        elif self.path.startswith("/metrics"):
            self._send(200, "grafana_build_info{version=\"%s\"} 1\n" % VERSION, "text/plain; version=0.0.4")
        elif self.path in ("/", "/login"):
            self._send(200, "<html><title>Grafana</title><body>Grafana stand-in</body></html>", "text/html")
        else:
            self._send(404, json.dumps({"message": "Not found"}))

    def _admin(self):
        want = "%s:%s" % (setting("GF_SECURITY_ADMIN_USER", "admin"),
                          setting("GF_SECURITY_ADMIN_PASSWORD", "admin"))
        got = self.headers.get("Authorization", "")
        return got == "Basic " + base64.b64encode(want.encode()).decode()

    def log_message(self, fmt, *args):
        print("grafana-standin: " + fmt % args, flush=True)


def setting(name, default):
    """A GF_* setting from the environment, or from the file its `__FILE` form names (upstream)."""
    path = os.environ.get(name + "__FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get(name, default)


def provisioned_datasources():
    """name/type/url of each `- name:` entry; a line-based read (no YAML library in the stand-in)."""
    out = []
    root = os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    for path in sorted(glob.glob(root + "/datasources/*.y*ml")):
        for line in open(path, encoding="utf-8"):
            m = re.match(r"\s*(-\s*)?(name|type|url|isDefault):\s*(.+?)\s*$", line)
            if not m:
                continue
            if m.group(1) or not out:
                out.append({"id": len(out) + 1})
            value = m.group(3).strip("\"'")
            out[-1][m.group(2)] = value == "true" if m.group(2) == "isDefault" else value
    return out


if __name__ == "__main__":
    # As PID 1 the default SIGTERM action is ignored; upstream exits on it (`docker stop` is quick).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    print("HTTP Server Listen address=0.0.0.0:%d (grafana stand-in %s)" % (port, VERSION), flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
