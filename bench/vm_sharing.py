#!/usr/bin/env python3
"""VM sharing figures for weir (release build, loopback, bounded runs).

Measures:
  * resident memory per plugin when 100 plugins share one VM key (same vm_id, module and VM
    settings: one VM per worker, 100 root contexts in it) versus 100 distinct keys (100 VMs per
    worker), each plugin on a route of its own and every route requested once;
  * time from a reload that only changes one plugin's `config` (its VM is kept, the new
    configuration is a new root context) to the first response under it, against a reload that
    swaps the module (new VM).

Run: cargo build --release && cargo test --workspace --no-run && python3 bench/vm_sharing.py
(CARGO_TARGET_DIR is honoured, as the build uses it.)
"""
import json, os, shutil, signal, socket, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.path.join(TARGET, "release", "weir")
PROBE = os.path.join(TARGET, "wasm", "wasm32-wasip1", "release", "probe.wasm")
PLUGINS = 100


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(weir):
    # SIGINT: Pingora's fast shutdown (SIGTERM waits out the grace period).
    weir.send_signal(signal.SIGINT)
    try:
        weir.wait(30)
    except subprocess.TimeoutExpired:
        weir.kill(); weir.wait()


def start(d, text, proxy, admin):
    cfg = f"{d}/weir.yaml"
    open(cfg, "w").write(text)
    weir = subprocess.Popen([WEIR, "-c", cfg], stdout=subprocess.DEVNULL, stderr=open(f"{d}/weir.log", "w"))
    for _ in range(400):
        try:
            get(f"http://127.0.0.1:{admin}/ready"); get(f"http://127.0.0.1:{proxy}/"); return weir
        except Exception:
            time.sleep(0.05)
    weir.kill()
    raise SystemExit("weir did not start: " + open(f"{d}/weir.log").read()[-2000:])


def head(proxy, admin, origin):
    return f"""listeners: [{{ address: 127.0.0.1:{proxy} }}]
admin: {{ address: 127.0.0.1:{admin} }}
server: {{ threads: 2 }}
clusters:
  origin: {{ endpoints: ["127.0.0.1:{origin}"] }}
"""


def memory(origin, plugins, shared):
    d = tempfile.mkdtemp()
    proxy, admin = free_port(), free_port()
    text = head(proxy, admin, origin) + "plugins:\n"
    for i in range(plugins):
        vm_id = "shared" if shared else f"p{i}"
        text += f"  p{i}: {{ module: {PROBE}, vm_id: {vm_id} }}\n"
    text += "routes:\n"
    for i in range(plugins):
        text += f"  - {{ match: {{ path: /p{i} }}, cluster: origin, filters: [{{ plugin: p{i}, config: {{ steps: {{}} }} }}] }}\n"
    text += "  - { cluster: origin }\n"
    weir = start(d, text, proxy, admin)
    try:
        for i in range(plugins):
            get(f"http://127.0.0.1:{proxy}/p{i}")
        time.sleep(1)
        return rss_kib(weir.pid)
    finally:
        stop(weir); shutil.rmtree(d, ignore_errors=True)


def reload_times(origin):
    d = tempfile.mkdtemp()
    proxy, admin = free_port(), free_port()
    shutil.copy(PROBE, f"{d}/a.wasm")
    # Another module: the probe with a custom section appended (same code, new sha256).
    name, payload = b"weir-bench", b"b"
    body = bytes([len(name)]) + name + payload
    open(f"{d}/b.wasm", "wb").write(open(PROBE, "rb").read() + bytes([0, len(body)]) + body)

    def config(module, version):
        return head(proxy, admin, origin) + f"""plugins:
  v: {{ module: {module}, vm_id: bench }}
routes:
  - cluster: origin
    filters: [{{ plugin: v, config: {{ steps: {{ response_headers: [[add_header, 2, x-version, "{version}"]] }} }} }}]
"""
    weir = start(d, config(f"{d}/a.wasm", "v0"), proxy, admin)

    def swap(module, version):
        cfg = f"{d}/weir.yaml"
        open(cfg + ".tmp", "w").write(config(module, version)); os.rename(cfg + ".tmp", cfg)
        t0 = time.perf_counter()
        status, _, body = get(f"http://127.0.0.1:{admin}/reload", "POST")
        assert status == 200, body
        while get(f"http://127.0.0.1:{proxy}/")[1].get("x-version") != version:
            pass
        return (time.perf_counter() - t0) * 1000

    try:
        swap(f"{d}/b.wasm", "warm"); swap(f"{d}/a.wasm", "warm2")  # both modules compiled and cached
        config_only = [swap(f"{d}/a.wasm", f"c{i}") for i in range(20)]
        module_swap = [swap(f"{d}/b.wasm" if i % 2 == 0 else f"{d}/a.wasm", f"m{i}") for i in range(20)]
        return config_only, module_swap
    finally:
        stop(weir); shutil.rmtree(d, ignore_errors=True)


def main():
    if not shutil.which("nginx"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True)
    d = tempfile.mkdtemp()
    origin = free_port()
    open(f"{d}/nginx.conf", "w").write(f"worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{origin}; location / {{ return 200 'ok'; }} }} }}")
    nginx = subprocess.Popen(["nginx", "-c", f"{d}/nginx.conf", "-g", "daemon off;"])
    try:
        time.sleep(0.3)
        base = memory(origin, 0, True)
        shared = memory(origin, PLUGINS, True)
        distinct = memory(origin, PLUGINS, False)
        config_only, module_swap = reload_times(origin)
    finally:
        nginx.terminate()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    per = lambda kib: round((kib - base) / PLUGINS, 1)
    print(json.dumps({
        "workers": 2,
        "rss_kib": {"no_plugins": base, f"{PLUGINS}_plugins_one_vm_key": shared, f"{PLUGINS}_plugins_distinct_keys": distinct},
        "rss_kib_per_plugin": {"one_vm_key": per(shared), "distinct_keys": per(distinct)},
        "reload_to_first_response_ms": {
            "config_change_median": round(med(config_only), 1), "config_change_max": round(max(config_only), 1),
            "module_swap_median": round(med(module_swap), 1), "module_swap_max": round(max(module_swap), 1),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
