#!/usr/bin/env python3
"""Instructions per proxied request, against the limit of weir's design.

Wall-clock throughput moves ±30% between runs on the shared benchmark machine; instructions
counted by valgrind's callgrind repeat within a fraction of a percent. Each proxy runs alone
under callgrind with one worker in front of the same nginx origin; instrumentation is switched
on after start-up and a warm-up, for a fixed number of keep-alive GET requests, and the count
covers every thread of the proxy's process. Configurations:

  nginx proxy_pass        - nginx (one worker, no master, access log to a file as by default)
  bare Pingora            - bench/src/bare.rs: a ProxyHttp whose only hook is upstream_peer,
                            same Pingora version and features as weir, glibc's allocator
  bare Pingora, mimalloc  - the same with weir's global allocator: weir's ratio to this row is
                            the cost of its design, not of the allocator
  weir, no filters        - the default access log on (stderr, redirected to a file)
  weir, no filters, access log off - RUST_LOG=info,weir::access=off: the difference from the
                            row above is the access log's cost per request
  weir, 1 trivial filter
  weir, 4 built-in filters
  weir, 4 built-in filters, baseline compiler - the same with server.compiler: baseline (Winch)

Run: `python3 bench/instructions.py [NAME…]` (prints a table and JSON; with names, only the
configurations whose name contains one of them). `bench/run.py` includes it in
bench/REPORT.md. Needs valgrind and nginx (installed with apt-get when missing) and the
release build (`cargo build --release --workspace`; CARGO_TARGET_DIR is honoured). CALLGRIND_ARGS
adds options to valgrind's (`--dump-instr=yes` for per-instruction counts in callgrind_annotate).
"""
import http.client, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import FOUR, TARGET, WEIR, free_port, require_fresh, sh, wait_http, weir_config  # noqa: E402

WARMUP, MEASURED = 300, 2000
BARE = os.path.join(TARGET, "release", "bare_pingora")
BARE_MIMALLOC = BARE + "_mimalloc"
HEADERS = {"x-api-key": "bench-key-0123456789"}


def requests(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        conn.request("GET", "/", headers=HEADERS)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"unexpected status {resp.status} from port {port}")
    conn.close()


def wait_ok(url, proc, seconds=900):
    """Waits until `url` answers 200: weir's `/ready` answers 503 until every worker serves.
    Gives up at once when `proc` exits (a configuration it refused, say)."""
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the proxy exited ({proc.returncode}) before {url} answered 200")
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {seconds} s")


def total_instructions(out):
    """The instructions a callgrind output file counted, over all its parts (threads)."""
    total = 0
    for path in [out] + [f"{out}-{i:02d}" for i in range(1, 100)]:
        if not os.path.exists(path):
            continue
        for line in open(path):
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def measure(name, argv, port, ready_url, d, env=None):
    """Instructions per request of the proxy `argv` listening on `port`."""
    out = f"{d}/{re.sub(r'[^a-z0-9]+', '-', name.lower())}.callgrind"
    # Logs go beside, not into, the configuration's directory: weir watches that one, and each
    # write there would count a file-change event per request.
    os.makedirs(f"{d}/logs", exist_ok=True)
    log = open(f"{d}/logs/{os.path.basename(out)}.log", "w")
    extra = os.environ.get("CALLGRIND_ARGS", "").split()
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=no",
                             f"--callgrind-out-file={out}", *extra, *argv],
                            stdout=log, stderr=log, env=dict(os.environ, **(env or {})))
    try:
        wait_ok(ready_url, proc)
        requests(port, WARMUP)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        requests(port, MEASURED)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return total_instructions(out) / MEASURED


def main(only=()):
    require_fresh(WEIR)
    require_fresh(BARE)
    require_fresh(BARE_MIMALLOC)
    wanted = lambda name: not only or any(o in name for o in only)
    for tool, pkg in (("valgrind", "valgrind"), ("nginx", "nginx-light")):
        if not shutil.which(tool):
            sh("apt-get", "install", "-y", "-qq", pkg)
    d = tempfile.mkdtemp()
    origin = free_port()
    open(f"{d}/origin.conf", "w").write(f"""worker_processes 1; pid {d}/origin.pid; error_log {d}/origin.err;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{origin}; location / {{ return 200 "ok\\n"; }} }} }}""")
    origin_proc = subprocess.Popen(["nginx", "-c", f"{d}/origin.conf", "-g", "daemon off;"])
    results = {}
    try:
        wait_http(f"http://127.0.0.1:{origin}/")
        port = free_port()
        if wanted("nginx proxy_pass"):
            open(f"{d}/nginx.conf", "w").write(f"""worker_processes 1; master_process off; daemon off;
pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log {d}/nginx.access.log;
  upstream o {{ server 127.0.0.1:{origin}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}""")
            results["nginx proxy_pass"] = measure("nginx", ["nginx", "-c", f"{d}/nginx.conf"], port,
                                                  f"http://127.0.0.1:{port}/", d)
        port = free_port()
        for name, binary in (("bare Pingora", BARE), ("bare Pingora, mimalloc", BARE_MIMALLOC)):
            if wanted(name):
                port = free_port()
                results[name] = measure(name, [binary, f"127.0.0.1:{port}", f"127.0.0.1:{origin}", "1"], port,
                                        f"http://127.0.0.1:{port}/", d)
        # The access log's own cost is the first two rows' difference.
        for name, filters, env, server in (
                ("weir, no filters", "[]", None, ""),
                ("weir, no filters, access log off", "[]", {"RUST_LOG": "info,weir::access=off"}, ""),
                ("weir, 1 trivial filter", "[{ plugin: t }]", None, ""),
                ("weir, 4 built-in filters", FOUR, None, ""),
                # The filters' code from the baseline compiler (server.compiler: baseline).
                ("weir, 4 built-in filters, baseline compiler", FOUR, None, ", compiler: baseline")):
            if not wanted(name):
                continue
            port, admin = free_port(), free_port()
            # valgrind cannot map the pooling allocator's reservation: instances are allocated
            # on demand (only VM creation differs; requests reuse each thread's instances).
            config = weir_config(port, admin, origin, filters).replace("server: { threads: 1 }",
                                                                       f"server: {{ threads: 1, vm_slots: 0{server} }}")
            path = f"{d}/{len(results)}.yaml"
            open(path, "w").write(config)
            results[name] = measure(name, [WEIR, "-c", path], port, f"http://127.0.0.1:{admin}/ready", d, env)
    finally:
        origin_proc.terminate()
    return results


def table(results):
    ratio = lambda ir, base: f"{ir / base:.2f}" if base else "-"
    bare, nginx = results.get("bare Pingora"), results.get("nginx proxy_pass")
    same = results.get("bare Pingora, mimalloc")
    lines = ["| configuration | instructions / request | × bare Pingora | × bare Pingora, same allocator | × nginx |",
             "|---|---|---|---|---|"]
    for name, ir in results.items():
        alike = ratio(ir, same) if name.startswith("weir") else "-"
        lines.append(f"| {name} | {ir:,.0f} | {ratio(ir, bare)} | {alike} | {ratio(ir, nginx)} |")
    return lines


if __name__ == "__main__":
    started = time.time()
    r = main(sys.argv[1:])
    print("\n".join(table(r)))
    print(json.dumps(r))
    print(f"took {time.time() - started:.0f} s", file=sys.stderr)
