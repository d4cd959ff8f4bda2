"""Front of the Elasticsearch stand-in: the REST port of Elasticsearch 8.11.0 over osmem-server.

Identity (`GET /`) and `_nodes/jvm` answer as Elasticsearch does; everything else is forwarded to
osmem. Settings come from the environment as in the upstream image: with
`xpack.security.enabled` not `false`, requests without credentials get 401 like a secured node;
`ES_JAVA_OPTS` -Xmx is reported as the heap. 9300 accepts connections and holds them open, as
upstream's transport port does while it waits for a handshake.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OSMEM = ("127.0.0.1", 9201)
VERSION = "8.11.0"
SECURED = os.environ.get("xpack.security.enabled", "true").lower() != "false"
CLUSTER = os.environ.get("cluster.name", "docker-cluster")
NODE = os.environ.get("node.name", socket.gethostname())


def heap_bytes():
    m = re.search(r"-Xmx(\d+)([kmgKMG]?)", os.environ.get("ES_JAVA_OPTS", ""))
    if not m:
        return 1 << 30
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, code, doc):
        self.send_body(code, json.dumps(doc).encode())

    def send_body(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-elastic-product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        if SECURED and "Authorization" not in self.headers:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="security" charset="UTF-8"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.path.split("?")[0]
        if path == "/" and self.command in ("GET", "HEAD"):
            return self.send_json(200, {
                "name": NODE, "cluster_name": CLUSTER, "cluster_uuid": "stackcheck-standin",
                "version": {"number": VERSION, "build_flavor": "default", "build_type": "docker",
                            "lucene_version": "9.8.0", "minimum_wire_compatibility_version": "7.17.0",
                            "minimum_index_compatibility_version": "7.0.0"},
                "tagline": "You Know, for Search"})
        if path in ("/_nodes/jvm", "/_nodes/_local/jvm"):
            return self.send_json(200, {"nodes": {NODE: {"name": NODE, "version": VERSION, "jvm": {
                "mem": {"heap_max_in_bytes": heap_bytes(), "heap_init_in_bytes": heap_bytes()}}}}})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {"Content-Type": "application/json"}
        conn = http.client.HTTPConnection(*OSMEM, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            return self.send_json(503, {"error": f"search backend unavailable: {e}", "status": 503})
        finally:
            conn.close()
        self.send_body(resp.status, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    def log_message(self, fmt, *args):
        pass


def transport():
    srv = socket.create_server(("0.0.0.0", 9300))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=hold, args=(conn,), daemon=True).start()


def hold(conn):
    # Like upstream's transport port waiting for a node's handshake: the connection stays open
    # until the peer closes it (closing at once is what a port with nothing behind it does).
    with conn:
        while conn.recv(4096):
            pass


def main():
    backend = subprocess.Popen(["/usr/local/bin/osmem-server", "-addr", "%s:%d" % OSMEM, "-no-stdin-watch"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(OSMEM, timeout=1).close()
            break
        except OSError:
            if backend.poll() is not None:
                sys.exit("osmem-server exited with %s" % backend.returncode)
            time.sleep(0.1)
    threading.Thread(target=transport, daemon=True).start()
    print(json.dumps({"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "log.level": "INFO",
                      "message": "started", "service.name": "ES_ECS", "node.name": NODE,
                      "elasticsearch.cluster.name": CLUSTER,
                      "stackcheck.note": "stand-in: heap %d MB, security %s" % (heap_bytes() >> 20, "on" if SECURED else "off")}),
          flush=True)
    # As PID 1 the default SIGTERM action is ignored; upstream exits on it (`docker stop` is quick).
    signal.signal(signal.SIGTERM, lambda *_: (backend.terminate(), sys.exit(0)))
    ThreadingHTTPServer(("0.0.0.0", 9200), Front).serve_forever()


if __name__ == "__main__":
    main()
