#!/usr/bin/env python3
"""Where the time goes in the four-filter case: `python3 bench/profile.py` writes bench/PROFILE.md.

`perf` gets no samples on the benchmark machine, so this counts instructions instead: the release
weir runs under valgrind's callgrind with one worker thread and the four built-in filters in front
of an nginx origin. Instrumentation is switched on only after start-up and a warm-up, for a fixed
number of keep-alive requests, so the profile is the steady-state request path. The report splits
the instructions per request by component (the crate or library each function belongs to; Wasm
code compiled by Cranelift shows as `filter code (JIT)`, its functions named from the perf map
weir writes with WEIR_PERF_MAP=1) and lists the most expensive functions, exclusive and inclusive.

Instruction counts are not time (cache misses, syscalls and waiting are not in them), but they
rank where the CPU work is. Needs valgrind (installed with apt-get when missing).
`python3 bench/profile.py CALLGRIND_OUT` rewrites the report from an earlier run's output.
"""
import os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import FOUR, ROOT, WEIR, free_port, sh, wait_http, weir_config  # noqa: E402
from instructions import MEASURED, WARMUP, requests, wait_ok  # noqa: E402

def component(function):
    """The crate or library a callgrind function name belongs to."""
    if function.startswith(("???", "wasm: ")) or re.match(r"^0x[0-9a-f]+$", function):
        return "filter code (JIT)"
    name = function.lstrip("<").split("::")[0].split(" as ")[0]
    if "::" not in function:
        return "libc / allocator" if re.match(r"^(_?_?mem|malloc|free|realloc|calloc|_int_|_?mi_|str|__libc|pthread|epoll|__GI|sys)", function) else "other C"
    return {"weir_abi": "weir-abi (host)", "weir": "weir (proxy)"}.get(name, name)


class JitNames:
    """Names of the filters' compiled functions, from the perf map weir writes with
    WEIR_PERF_MAP=1 (docs/operations.md#profiling-filters): callgrind knows them only by address."""

    def __init__(self, path):
        self.ranges = []
        if path and os.path.exists(path):
            rows = [line.split(" ", 2) for line in open(path) if line.startswith("0x")]
            names = subprocess.run(["c++filt"], input="\n".join(r[2].strip() for r in rows), capture_output=True,
                                   text=True).stdout.splitlines() if rows else []
            self.ranges = sorted((int(r[0], 16), int(r[0], 16) + int(r[1], 16), re.sub(r"\[[0-9a-f]{16}\]", "", n))
                                 for r, n in zip(rows, names))
        self.starts = [r[0] for r in self.ranges]

    def name(self, function):
        m = re.match(r"^(?:\?\?\?:)?0x([0-9a-f]+)$", function)
        if not m or not self.ranges:
            return function
        import bisect
        addr = int(m.group(1), 16)
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ranges[i][1]:
            return f"wasm: {self.ranges[i][2]}"
        return function


def annotate(out, inclusive, jit=None):
    text = subprocess.run(["callgrind_annotate", "--auto=no", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, where = int(m.group(1).replace(",", "")), m.group(2)
        function = where.split(":", 1)[1] if ":" in where and not where.startswith("???:") else where.split(":", 1)[-1]
        function = re.sub(r"\s*\[.*\]$", "", function).strip()
        rows.append((ir, jit.name(function) if jit else function))
    total = re.search(r"^\s*([\d,]+)\s+\(100.0%\)\s+PROGRAM TOTALS", text, re.M)
    return int(total.group(1).replace(",", "")), rows


def short(function, width=110):
    function = re.sub(r"::h[0-9a-f]{16}$", "", function)
    return function if len(function) <= width else function[: width - 1] + "…"


def main():
    if not shutil.which("valgrind"):
        sh("apt-get", "install", "-y", "-qq", "valgrind")
    subprocess.run(["cargo", "build", "--release", "-p", "weir"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp()
    origin, proxy, admin = free_port(), free_port(), free_port()
    open(f"{d}/nginx.conf", "w").write(f"""worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{origin}; location / {{ return 200 "ok\\n"; }} }} }}""")
    nginx = subprocess.Popen(["nginx", "-c", f"{d}/nginx.conf", "-g", "daemon off;"])
    # valgrind cannot map the pooling allocator's reservation: instances are allocated on demand
    # (only VM creation differs; the request path reuses each thread's instances).
    config = weir_config(proxy, admin, origin, FOUR).replace("server: { threads: 1 }", "server: { threads: 1, vm_slots: 0 }")
    assert "vm_slots: 0" in config
    open(f"{d}/weir.yaml", "w").write(config)
    out = f"{d}/callgrind.out"
    env = dict(os.environ, RUST_LOG="warn", WEIR_PERF_MAP="1")
    weir = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                             WEIR, "-c", f"{d}/weir.yaml"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/valgrind.log", "w"), env=env)
    try:
        wait_http(f"http://127.0.0.1:{origin}/")
        # Fails at once, with the exit status, if weir exits (a port taken meanwhile, say).
        wait_ok(f"http://127.0.0.1:{admin}/ready", weir, seconds=600)
        requests(proxy, WARMUP)
        subprocess.run(["callgrind_control", "-i", "on", str(weir.pid)], check=True, capture_output=True)
        started = time.time()
        requests(proxy, MEASURED)
        took = time.time() - started
        subprocess.run(["callgrind_control", "-i", "off", str(weir.pid)], check=True, capture_output=True)
    finally:
        weir.terminate()
        weir.wait()
        nginx.terminate()
        if os.path.exists(f"/tmp/perf-{weir.pid}.map"):
            shutil.move(f"/tmp/perf-{weir.pid}.map", f"{out}.perf.map")
    report(out, f"the measured requests took {took:.1f} s under valgrind")


def report(out, timing):
    """Writes bench/PROFILE.md from a callgrind output file."""
    jit = JitNames(f"{out}.perf.map")
    total, exclusive = annotate(out, inclusive=False, jit=jit)
    _, inclusive = annotate(out, inclusive=True, jit=jit)
    # One Wasm function shows under several addresses (callgrind names code by where it was
    # entered): add them up.
    merged = {}
    for ir, function in exclusive:
        merged[function] = merged.get(function, 0) + ir
    exclusive = sorted(((ir, f) for f, ir in merged.items()), reverse=True)

    by_component = {}
    for ir, function in exclusive:
        by_component[component(function)] = by_component.get(component(function), 0) + ir
    per_request = total / MEASURED
    lines = ["# Where the time goes: the four built-in filters", "",
             "Generated by `python3 bench/profile.py` (see its docstring). The release `weir` runs under valgrind's "
             f"callgrind with `server.threads: 1`, the four built-in filters (auth, rate-limit, ab-routing, header-rewrite, "
             f"as configured in `bench/run.py`) and an nginx origin; {MEASURED} keep-alive GET requests are measured "
             f"after start-up and {WARMUP} warm-up requests. Counted: instructions executed by the weir process "
             "(all threads). Wasm compiled by Cranelift is the `filter code (JIT)` row, split by function below.", "",
             f"**{per_request:,.0f} instructions per request** ({total:,} in all; {timing}).", "",
             "## By component (exclusive instructions)", "", "| component | instructions / request | share |", "|---|---|---|"]
    for name, ir in sorted(by_component.items(), key=lambda kv: -kv[1])[:16]:
        lines.append(f"| {name} | {ir / MEASURED:,.0f} | {100 * ir / total:.1f}% |")
    lines += ["", "## Most expensive functions (exclusive)", "", "| instructions / request | share | function |", "|---|---|---|"]
    for ir, function in exclusive[:25]:
        lines.append(f"| {ir / MEASURED:,.0f} | {100 * ir / total:.1f}% | `{short(function)}` |")
    filter_code = [(ir, f) for ir, f in exclusive if f.startswith("wasm: ")]
    if filter_code:
        lines += ["", "## The filters' own code, by Wasm function (exclusive)", "",
                  "Named from the perf map weir writes with `WEIR_PERF_MAP=1`; the Rust SDK's and the "
                  "built-ins' functions of all four modules together.", "",
                  "| instructions / request | share | function |", "|---|---|---|"]
        for ir, function in filter_code[:25]:
            lines.append(f"| {ir / MEASURED:,.0f} | {100 * ir / total:.1f}% | `{short(function[6:])}` |")
    lines += ["", "## Entry points (inclusive)", "", "What each request-path step costs with everything it calls.", "",
              "| instructions / request | share | function |", "|---|---|---|"]
    keys = ("FilterChain::on_", "FilterChain::new", "weir::service::", "weir::convert::", "weir::metrics::",
            "pingora_proxy::HttpProxy", "pingora_core::protocols::http::v1", "tracing_subscriber", "weir_abi::pool::", "weir_abi::vm::Vm::")
    seen = set()
    for ir, function in inclusive:
        name = short(function)
        if any(k in function for k in keys) and name not in seen and len(seen) < 30:
            seen.add(name)
            lines.append(f"| {ir / MEASURED:,.0f} | {100 * ir / total:.1f}% | `{name}` |")
    path = os.path.join(ROOT, "bench", "PROFILE.md")
    open(path, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    # `profile.py FILE` only rewrites the report from an earlier callgrind output.
    report(sys.argv[1], "from an earlier run") if len(sys.argv) > 1 else main()
