#!/usr/bin/env python3
"""Filter CPU-deadline precision on a busy machine (loopback, bounded runs).

A filter loops forever in `on_request_headers`; weir must cut it off at its deadline (epoch
interruption) and answer 503. Measures the time to that answer for deadlines of 100 ms and 1 s,
idle and with CPU burners (2 per core) competing for the cores.

Run: cargo build --release && cargo test --workspace --no-run && python3 bench/deadline_precision.py
(CARGO_TARGET_DIR is honoured, as the build uses it.)
"""
import json, multiprocessing, os, signal, socket, subprocess, tempfile, time, urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "release", "weir"))
PROBE = os.path.join(TARGET, "wasm", "wasm32-wasip1", "release", "probe.wasm")
RUNS = 8


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def burn(stop_at):
    while time.time() < stop_at:
        pass


def timed(url, admin):
    # A trapped VM stays failed (503 without running): a reload brings fresh ones.
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin}/reload", method="POST"), timeout=60).read()
    t0 = time.perf_counter()
    try:
        urllib.request.urlopen(url, timeout=60).read()
    except urllib.error.HTTPError as e:
        assert e.code == 503, e.code
    return (time.perf_counter() - t0) * 1000


def main():
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from run import require_fresh
    require_fresh(WEIR)
    d = tempfile.mkdtemp()
    proxy, admin = free_port(), free_port()
    loop = json.dumps({"steps": {"request_headers": [["loop"]]}})
    open(f"{d}/weir.yaml", "w").write(f"""listeners: [{{ address: 127.0.0.1:{proxy} }}]
admin: {{ address: 127.0.0.1:{admin} }}
server: {{ threads: 2 }}
clusters:
  origin: {{ endpoints: ["127.0.0.1:{admin}"] }}
plugins:
  fast: {{ module: {PROBE}, limits: {{ deadline: 100ms }} }}
  slow: {{ module: {PROBE}, limits: {{ deadline: 1s }}, vm_id: slow }}
routes:
  - {{ match: {{ path: /100ms }}, cluster: origin, filters: [{{ plugin: fast, config: {loop} }}] }}
  - {{ match: {{ path: /1s }}, cluster: origin, filters: [{{ plugin: slow, config: {loop} }}] }}
""")
    weir = subprocess.Popen([WEIR, "-c", f"{d}/weir.yaml"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/weir.log", "w"))
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).read(); break
            except Exception:
                time.sleep(0.05)
        report = {}
        for load in ("idle", "busy"):
            burners = []
            if load == "busy":
                stop_at = time.time() + 120
                burners = [multiprocessing.Process(target=burn, args=(stop_at,)) for _ in range(2 * os.cpu_count())]
                for b in burners:
                    b.start()
            for deadline in ("100ms", "1s"):
                ms = sorted(timed(f"http://127.0.0.1:{proxy}/{deadline}", admin) for _ in range(RUNS))
                report[f"{load} {deadline}"] = {"min_ms": round(ms[0]), "median_ms": round(ms[len(ms) // 2]), "max_ms": round(ms[-1])}
            for b in burners:
                b.terminate()
        print(json.dumps({"cores": os.cpu_count(), "runs": RUNS, "time_to_503": report}, indent=2))
    finally:
        weir.send_signal(signal.SIGINT)
        try:
            weir.wait(30)
        except subprocess.TimeoutExpired:
            weir.kill()


if __name__ == "__main__":
    main()
