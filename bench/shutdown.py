#!/usr/bin/env python3
"""Shutdown timing: how long weir takes to exit after SIGTERM or SIGINT, idle and with 100
requests in flight (an origin that answers each after 1 s), how many of those requests were
answered, and how many bytes of log the shutdown wrote. Loopback only, bounded runs.

Run: cargo build && python3 bench/shutdown.py   (WEIR_BIN picks another binary; the debug build
is fine: the figures are waits, not CPU work. CARGO_TARGET_DIR is honoured.)
"""
import http.server, os, signal, socket, socketserver, statistics, subprocess, tempfile, threading, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "debug", "weir"))
RUNS = 5
IN_FLIGHT = 100


class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = 0
    lock = threading.Lock()

    def do_GET(self):
        with Slow.lock:
            Slow.seen += 1
        time.sleep(1.0)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 512


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(d, origin):
    proxy, admin = free_port(), free_port()
    open(f"{d}/weir.yaml", "w").write(f"""listeners: [{{ address: 127.0.0.1:{proxy} }}]
admin: {{ address: 127.0.0.1:{admin} }}
server: {{ threads: 2, grace_period_seconds: 30 }}
clusters:
  slow: {{ endpoints: ["127.0.0.1:{origin}"], read_timeout: 60s }}
routes:
  - cluster: slow
""")
    log = open(f"{d}/weir.log", "wb")
    p = subprocess.Popen([WEIR, "-c", f"{d}/weir.yaml"], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).status == 200:
                return p, proxy, f"{d}/weir.log"
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise SystemExit("weir did not become ready")


def stop(p, sig, log):
    before = os.path.getsize(log)
    t0 = time.perf_counter()
    p.send_signal(sig)
    try:
        code = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
        raise SystemExit("weir did not exit within 60 s")
    return (time.perf_counter() - t0) * 1000, os.path.getsize(log) - before, code


def run(sig, in_flight, origin):
    d = tempfile.mkdtemp()
    p, proxy, log = start(d, origin)
    answered = []
    if in_flight:
        Slow.seen = 0
        def one():
            try:
                answered.append(urllib.request.urlopen(f"http://127.0.0.1:{proxy}/", timeout=60).status)
            except OSError:
                answered.append(None)
        threads = [threading.Thread(target=one) for _ in range(in_flight)]
        for t in threads:
            t.start()
        deadline = time.time() + 20
        while Slow.seen < in_flight and time.time() < deadline:
            time.sleep(0.005)
    ms, logged, code = stop(p, sig, log)
    if in_flight:
        for t in threads:
            t.join()
    return ms, logged, code, sum(1 for a in answered if a == 200)


def main():
    origin = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    port = origin.server_address[1]
    print(f"weir: {WEIR}; {RUNS} runs each; grace_period_seconds 30; origin answers after 1 s\n")
    print("| signal | in flight | exit time (ms), median [min–max] | answered 200 | exit status | log bytes written during shutdown (max) |")
    print("|---|---|---|---|---|---|")
    for sig, name in [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")]:
        for n in [0, IN_FLIGHT]:
            rows = [run(sig, n, port) for _ in range(RUNS)]
            ms = [r[0] for r in rows]
            codes = sorted({r[2] for r in rows})
            answered = f"{min(r[3] for r in rows)}–{max(r[3] for r in rows)} of {n}" if n else "-"
            print(f"| {name} | {n} | {statistics.median(ms):.0f} [{min(ms):.0f}–{max(ms):.0f}] | {answered} | {codes} | {max(r[1] for r in rows)} |")


if __name__ == "__main__":
    main()
