"""Kafka Connect stand-in: the REST root, connectors and plugins with Connect's JSON shapes."""
import json
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "7.5.0-ccs"
BOOTSTRAP = os.environ.get("CONNECT_BOOTSTRAP_SERVERS", "")
PLUGINS = [{"class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "type": "source", "version": VERSION},
           {"class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "type": "sink", "version": VERSION}]


class Handler(BaseHTTPRequestHandler):
    def send(self, code, doc):
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/") or "/"
        if path == "/":
            self.send(200, {"version": VERSION, "commit": "stackcheck-standin", "kafka_cluster_id": "stackcheck-kafka"})
        elif path == "/connectors":
            self.send(200, [])
        elif path == "/connector-plugins":
            self.send(200, PLUGINS)
        else:
            self.send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def log_message(self, fmt, *args):
        pass


def wait_for_kafka():
    missing = [k for k in ("CONNECT_BOOTSTRAP_SERVERS", "CONNECT_GROUP_ID", "CONNECT_CONFIG_STORAGE_TOPIC",
                           "CONNECT_OFFSET_STORAGE_TOPIC", "CONNECT_STATUS_STORAGE_TOPIC") if not os.environ.get(k)]
    if missing:
        sys.exit("Command [/usr/local/bin/dub ensure %s] FAILED !" % missing[0])
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return
        except OSError as e:
            print("waiting for Kafka at %s: %s" % (BOOTSTRAP, e), flush=True)
            time.sleep(1)


if __name__ == "__main__":
    # As PID 1 the default SIGTERM action is ignored; upstream exits on it (`docker stop` is quick).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait_for_kafka()
    print("INFO Kafka Connect started (org.apache.kafka.connect.runtime.Connect) [stand-in]", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8083), Handler).serve_forever()
