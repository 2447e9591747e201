#!/usr/bin/env python3
"""Start-up cost: CPU time (user + system) and wall time from exec to `/ready`, for the quick
start (`weir` without `-c`: the four built-in filters in front of demo origins), with an empty
module cache and with the cache the first start filled (`server.module_cache: auto`, pointed
at a fresh directory through XDG_CACHE_HOME).

Run: cargo build --release --workspace && python3 bench/startup.py (CARGO_TARGET_DIR is
honoured). Prints JSON.
"""
import json, os, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import WEIR, require_fresh  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
RUNS = 3


def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICKS


def start(cache_home):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, RUST_LOG="warn")
    env.pop("CACHE_DIRECTORY", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([WEIR], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        line = proc.stdout.readline()
        admin = line.split("admin ", 1)[1].split()[0]
        while True:
            try:
                if urllib.request.urlopen(f"{admin}/ready", timeout=2).status == 200:
                    break
            except Exception:
                time.sleep(0.005)
        return {"cpu_ms": cpu_ms(proc.pid), "wall_ms": (time.perf_counter() - t0) * 1000}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure():
    """CPU and wall time to `/ready`, medians, with an empty and with a filled module cache."""
    require_fresh(WEIR)
    cold, warm = [], []
    for _ in range(RUNS):
        cache = tempfile.mkdtemp()
        cold.append(start(cache))
        warm.append(start(cache))
    med = lambda runs, k: sorted(r[k] for r in runs)[len(runs) // 2]
    return {
        "empty module cache": {"cpu_ms": med(cold, "cpu_ms"), "wall_ms": round(med(cold, "wall_ms"))},
        "filled module cache": {"cpu_ms": med(warm, "cpu_ms"), "wall_ms": round(med(warm, "wall_ms"))},
    }


def main():
    print(json.dumps({"quick start to /ready (median of %d)" % RUNS: measure()}, indent=2))


if __name__ == "__main__":
    main()
