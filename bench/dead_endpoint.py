#!/usr/bin/env python3
"""Success rate of 1,000 requests against a cluster with one dead endpoint (a port that
refuses connections) and one live one, as an operator would first meet it:

  no retries          - retry_policy: { num_retries: 0 } (Envoy without a retry policy)
  default             - weir's default: connect-failure retried once
  health check        - TCP health check every 100 ms, no retries
  outlier detection   - consecutive_5xx: 2, no retries
  retries + outlier   - the default retry and outlier detection

Each configuration runs the same sequential keep-alive load from one client on loopback and
reports the share of 200 answers. Figures only: nothing here asserts.

Run: cargo build --release && python3 bench/dead_endpoint.py   (WEIR_BIN picks another binary)
"""
import http.client, os, socket, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import TARGET, free_port, wait_http  # noqa: E402

WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "release", "weir"))
REQUESTS = 1000

CONFIGS = [
    ("no retries", "", "    retry_policy: { num_retries: 0 }\n"),
    ("default (connect-failure, once)", "", ""),
    ("health check", "    health_check: { interval: 100ms }\n", "    retry_policy: { num_retries: 0 }\n"),
    ("outlier detection", "    outlier_detection: { consecutive_5xx: 2, max_ejection_percent: 50 }\n",
     "    retry_policy: { num_retries: 0 }\n"),
    ("retries + outlier detection", "    outlier_detection: { consecutive_5xx: 2, max_ejection_percent: 50 }\n", ""),
]


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # One write: a head and a body written apart meet Nagle and delayed ACKs (40 ms).
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def log_message(self, *args):
        pass


def run(name, cluster_extra, route_extra, origin, dead):
    d = tempfile.mkdtemp()
    proxy, admin = free_port(), free_port()
    open(f"{d}/weir.yaml", "w").write(
        f"listeners: [{{ address: 127.0.0.1:{proxy} }}]\nadmin: {{ address: 127.0.0.1:{admin} }}\n"
        f"clusters:\n  o:\n    endpoints: [\"127.0.0.1:{dead}\", \"127.0.0.1:{origin}\"]\n{cluster_extra}"
        f"routes:\n  - cluster: o\n{route_extra}")
    env = dict(os.environ, RUST_LOG="warn")
    p = subprocess.Popen([WEIR, "-c", f"{d}/weir.yaml"], stdout=subprocess.DEVNULL,
                         stderr=open(f"{d}/weir.log", "wb"), env=env)
    try:
        wait_http(f"http://127.0.0.1:{admin}/ready", seconds=30)
        time.sleep(0.3) if "health" in name else None  # let the first checks run
        ok, started = 0, time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
        for _ in range(REQUESTS):
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                ok += r.status == 200
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
        took = time.monotonic() - started
        stats = urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5).read().decode()
        retries = stats.split('"retries":')[1].split(",")[0]
        print(f"| {name} | {ok / REQUESTS:.1%} | {retries} | {took:.2f} s |")
    finally:
        p.terminate()
        p.wait(timeout=30)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # A port bound but not listening refuses connections and stays ours.
    dead_socket = socket.socket()
    dead_socket.bind(("127.0.0.1", 0))
    dead = dead_socket.getsockname()[1]
    print(f"{REQUESTS} sequential GETs, cluster = one refusing endpoint + one live endpoint\n")
    print("| configuration | 200 answers | retries | wall time |")
    print("|---|---|---|---|")
    for name, cluster_extra, route_extra in CONFIGS:
        run(name, cluster_extra, route_extra, server.server_address[1], dead)


if __name__ == "__main__":
    main()
