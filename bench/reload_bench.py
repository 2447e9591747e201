#!/usr/bin/env python3
"""Live-reload figures for weir (release build, loopback, bounded runs).

Measures, with an nginx origin:
  * time from `POST /reload` to the first response served by the new version,
    for a module already in the cache and for a new module (compiled on reload);
  * p50/p99 latency (wrk) in steady state and while reloading every 100 ms.

weir runs with the default `server.compiler: tiered`, where a never-seen module serves on
Winch's code while Cranelift compiles it in the background: each new-module swap also reports
when the optimized code was ready (`/plugins` says `code: optimized`). With `--compiler
optimizing` or `--compiler baseline`, only the module swaps are measured (no wrk runs).

Run: cargo build --release && cargo test -p weir-test-fixtures --no-run && python3 bench/reload_bench.py
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request, re, socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.path.join(TARGET, "release", "weir")
PROBE = os.path.join(TARGET, "wasm", "wasm32-wasip1", "release", "probe.wasm")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def variant(tag):
    wasm = open(PROBE, "rb").read()
    name, payload = b"weir-bench", tag.encode()
    body = bytes([len(name)]) + name + payload
    return wasm + bytes([0, len(body)]) + body

COMPILER = sys.argv[sys.argv.index("--compiler") + 1] if "--compiler" in sys.argv else "tiered"

def config(origin, proxy, admin, module, version):
    # A module cache of this run's own: the "new module" swaps compile what it has not seen.
    cache = os.path.join(os.path.dirname(module), "module-cache")
    return f"""listeners: [{{ address: 127.0.0.1:{proxy} }}]
admin: {{ address: 127.0.0.1:{admin} }}
server: {{ threads: 1, module_cache: {cache}, compiler: {COMPILER} }}
clusters:
  origin: {{ endpoints: ["127.0.0.1:{origin}"] }}
plugins:
  v: {{ module: {module}, vm_id: bench }}
routes:
  - cluster: origin
    filters: [{{ plugin: v, config: {{ steps: {{ response_headers: [[add_header, 2, x-version, "{version}"]] }} }} }}]
"""

def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()

def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url], capture_output=True, text=True).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1); p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    rps = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
    # Failed requests: non-2xx answers plus socket errors (connect, read, write, timeout).
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return p50, p99, rps, errors

def main():
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            subprocess.run(["apt-get", "install", "-y", "-qq", tool if tool != "nginx" else "nginx-light"], check=True)
    d = tempfile.mkdtemp()
    origin, proxy, admin = free_port(), free_port(), free_port()
    open(f"{d}/nginx.conf", "w").write(f"worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{origin}; location / {{ return 200 'ok'; }} }} }}")
    # The origin must not outlive this script: it holds the stdout a caller reads to its end.
    nginx = subprocess.Popen(["nginx", "-c", f"{d}/nginx.conf", "-g", "daemon off;"], stdout=subprocess.DEVNULL)
    try:
        measure(d, origin, proxy, admin)
    finally:
        nginx.terminate()


def measure(d, origin, proxy, admin):
    open(f"{d}/a.wasm", "wb").write(variant("a")); open(f"{d}/b.wasm", "wb").write(variant("b"))
    cfg = f"{d}/weir.yaml"
    open(cfg, "w").write(config(origin, proxy, admin, f"{d}/a.wasm", "A"))
    weir = subprocess.Popen([WEIR, "-c", cfg], stdout=subprocess.DEVNULL, stderr=open(f"{d}/weir.log", "w"))
    base = f"http://127.0.0.1:{proxy}/"
    for _ in range(100):
        try: get(f"http://127.0.0.1:{admin}/ready"); get(base); break
        except Exception: time.sleep(0.05)

    def swap(module, version):
        open(cfg + ".tmp", "w").write(config(origin, proxy, admin, module, version)); os.rename(cfg + ".tmp", cfg)
        t0 = time.perf_counter()
        status, _, body = get(f"http://127.0.0.1:{admin}/reload", "POST")
        assert status == 200, body
        while get(base)[1].get("x-version") != version: pass
        return (time.perf_counter() - t0) * 1000

    def optimized_after(t0):
        # The next swap is measured once the background compile is over (bounded).
        while time.perf_counter() - t0 < 30:
            plugins = json.loads(get(f"http://127.0.0.1:{admin}/plugins")[2])["plugins"]
            if plugins["v"]["code"] == "optimized":
                return (time.perf_counter() - t0) * 1000
            time.sleep(0.01)
        return float("nan")

    cached, fresh, optimized = [], [], []
    for i in range(10):
        cached.append(swap(f"{d}/b.wasm" if i % 2 == 0 else f"{d}/a.wasm", "B" if i % 2 == 0 else "A"))
    for i in range(10):
        path = f"{d}/fresh{i}.wasm"; open(path, "wb").write(variant(f"fresh{i}"))
        t0 = time.perf_counter()
        fresh.append(swap(path, f"F{i}"))
        optimized.append(optimized_after(t0))
    swap(f"{d}/a.wasm", "A")
    med = lambda xs: sorted(xs)[len(xs) // 2]
    swap_ms = {"cached_module_median": round(med(cached), 1), "cached_module_max": round(max(cached), 1),
             "new_module_median": round(med(fresh), 1), "new_module_max": round(max(fresh), 1)}
    if COMPILER == "tiered":
        swap_ms["new_module_optimized_median"] = round(med(optimized), 1)
    if COMPILER != "tiered":
        weir.terminate()
        print(json.dumps({"compiler": COMPILER, "reload_to_first_new_response_ms": swap_ms}, indent=2))
        return
    steady = wrk(base, 8)
    stop = time.time() + 8
    swapper = subprocess.Popen([sys.executable, "-c", f"""
import time, urllib.request
n = 0
while time.time() < {stop}:
    urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:{admin}/reload', method='POST')).read(); n += 1; time.sleep(0.1)
print(n)
"""], stdout=subprocess.PIPE, text=True)
    swapping = wrk(base, 8)
    swaps = swapper.communicate()[0].strip()
    weir.terminate()
    print(json.dumps({
        "compiler": COMPILER,
        "reload_to_first_new_response_ms": swap_ms,
        "steady": {"p50": steady[0], "p99": steady[1], "rps": steady[2], "errors": steady[3]},
        "during_reloads_every_100ms": {"p50": swapping[0], "p99": swapping[1], "rps": swapping[2], "reloads": swaps,
                                       "errors": swapping[3]},
    }, indent=2))

if __name__ == "__main__":
    main()
