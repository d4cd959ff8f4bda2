"""Kibana stand-in: /api/status with Kibana's shape, derived from Elasticsearch being reachable."""
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "8.11.0"
ES = os.environ.get("ELASTICSEARCH_HOSTS", "http://elasticsearch:9200").strip("[]\"' ").split(",")[0]


def es_version():
    try:
        with urllib.request.urlopen(ES, timeout=2) as r:
            return json.load(r)["version"]["number"]
    except Exception:  # any failure means "not available", which is what the status reports
        return None


class Handler(BaseHTTPRequestHandler):
    def send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api/status":
            es = es_version()
            level = "available" if es else "unavailable"
            doc = {"name": os.uname().nodename, "version": {"number": VERSION, "build_flavor": "default"},
                   "status": {"overall": {"level": level, "summary": "All services are %s" % level},
                              "core": {"elasticsearch": {"level": level, "summary": "Elasticsearch %s at %s" % (es, ES)}}}}
            self.send(200 if es else 503, json.dumps(doc))
        elif path in ("/", "/app/home", "/login"):
            self.send(200, "<html><title>Elastic</title><body>Kibana stand-in</body></html>", "text/html")
        else:
            self.send(404, json.dumps({"statusCode": 404, "error": "Not Found", "message": "Not Found"}))

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    print(json.dumps({"log.level": "info", "message": "Kibana is now available (stand-in), elasticsearch at %s" % ES}), flush=True)
    ThreadingHTTPServer(("0.0.0.0", 5601), Handler).serve_forever()
