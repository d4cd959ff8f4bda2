"""Entrypoint of the cp-kafka stand-in.

Maps the Confluent image's listener settings onto Tansu, which serves one listener and advertises
one address. The inter-broker listener is Tansu itself; every other listener is a small proxy that
rewrites the broker address in Metadata, FindCoordinator and DescribeCluster responses, so a host
client on `localhost:9092` is told `localhost:9092` while containers are told `kafka:29092` — the
two-listener set-up documented for cp-kafka.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

REWRITTEN_APIS = {3, 10, 60}  # Metadata, FindCoordinator, DescribeCluster


def listeners(value):
    out = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        name, _, rest = item.partition("://")
        host, _, port = rest.rpartition(":")
        out[name] = (host, int(port))
    return out


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encodings(host, port):
    h = host.encode()
    return [struct.pack(">h", len(h)) + h + struct.pack(">i", port),
            uvarint(len(h) + 1) + h + struct.pack(">i", port)]


def read_frame(sock):
    head = recv_exact(sock, 4)
    if head is None:
        return None
    return recv_exact(sock, struct.unpack(">i", head)[0])


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def proxy(bind_port, upstream_port, old, new):
    pairs = list(zip(encodings(*old), encodings(*new)))
    server = socket.create_server(("0.0.0.0", bind_port), reuse_port=False)

    def serve(client):
        try:
            broker = socket.create_connection(("127.0.0.1", upstream_port))
        except OSError:
            client.close()
            return
        pending = {}

        def requests():
            while (frame := read_frame(client)) is not None:
                api_key, _, corr = struct.unpack(">hhi", frame[:8])
                pending[corr] = api_key
                broker.sendall(struct.pack(">i", len(frame)) + frame)
            broker.close()

        def responses():
            while (frame := read_frame(broker)) is not None:
                if pending.pop(struct.unpack(">i", frame[:4])[0], None) in REWRITTEN_APIS:
                    for a, b in pairs:
                        frame = frame.replace(a, b)
                client.sendall(struct.pack(">i", len(frame)) + frame)
            client.close()

        threading.Thread(target=requests, daemon=True).start()
        responses()

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    env = os.environ
    advertised = listeners(env.get("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://localhost:9092"))
    bound = listeners(env.get("KAFKA_LISTENERS", "")) or {
        name: ("0.0.0.0", port) for name, (_, port) in advertised.items()}
    primary = env.get("KAFKA_INTER_BROKER_LISTENER_NAME") or next(iter(advertised))
    if primary not in advertised or primary not in bound:
        sys.exit(f"KAFKA_INTER_BROKER_LISTENER_NAME {primary!r} is not among the listeners")
    host, port = advertised[primary]
    broker = subprocess.Popen([
        "/usr/local/bin/tansu", "broker",
        "--listener-url", f"tcp://0.0.0.0:{bound[primary][1]}",
        "--advertised-listener-url", f"tcp://{host}:{port}",
        "--cluster-id", env.get("CLUSTER_ID", "stackcheck-kafka"),
        "--storage-engine", "memory://tansu/",
    ])
    signal.signal(signal.SIGTERM, lambda *_: broker.terminate())
    for name, (ahost, aport) in advertised.items():
        if name != primary:
            threading.Thread(target=proxy, args=(bound[name][1], bound[primary][1], (host, port), (ahost, aport)),
                             daemon=True).start()
    deadline = time.monotonic() + 30
    while broker.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", bound[primary][1]), timeout=1).close()
            names = ", ".join(f"{n}://{h}:{p}" for n, (h, p) in advertised.items())
            print(f"[KafkaServer id={env.get('KAFKA_BROKER_ID', '1')}] started (kafka.server.KafkaServer) "
                  f"advertised listeners: {names}", flush=True)
            break
        except OSError:
            time.sleep(0.1)
    sys.exit(broker.wait())


if __name__ == "__main__":
    main()
