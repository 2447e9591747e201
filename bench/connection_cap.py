#!/usr/bin/env python3
"""How many idle client connections weir holds before it refuses new ones, with its default
limits (server.max_connections: half the open-file limit, which weir raises to its hard limit)
and the line it logs. Opens idle connections on loopback until weir closes one at accept
(bounded by the open-file limit of this script).

Run: cargo build && python3 bench/connection_cap.py   (WEIR_BIN picks another binary)
"""
import os, resource, socket, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "debug", "weir"))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp()
    proxy, admin = free_port(), free_port()
    open(f"{d}/weir.yaml", "w").write(f"""listeners: [{{ address: 127.0.0.1:{proxy} }}]
admin: {{ address: 127.0.0.1:{admin} }}
server: {{ threads: 2, idle_timeout: 300s }}
clusters:
  o: {{ endpoints: ["127.0.0.1:{admin}"] }}
routes:
  - cluster: o
""")
    log = open(f"{d}/weir.log", "wb")
    p = subprocess.Popen([WEIR, "-c", f"{d}/weir.yaml"], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        held, refused_at = [], None
        while len(held) < hard - 100:
            s = socket.create_connection(("127.0.0.1", proxy))
            held.append(s)
            if len(held) % 500 == 0 or len(held) > 9990:
                # A refused connection is closed at accept: the peer reads EOF.
                s.settimeout(0.2)
                try:
                    if s.recv(1) == b"":
                        refused_at = len(held)
                        break
                except socket.timeout:
                    pass
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        gauge = [l for l in metrics.splitlines() if l.startswith("weir_downstream_connections")]
        print(f"open-file limit (hard): {hard}; connections opened: {len(held)}; first refused: {refused_at}")
        print("\n".join(gauge))
        line = [l for l in open(f"{d}/weir.log").read().splitlines() if "max_connections" in l]
        print(line[0] if line else "(no log line)")
        print(f"log lines about the cap: {len(line)}")
        for s in held:
            s.close()
    finally:
        p.terminate(); p.wait(timeout=30)


if __name__ == "__main__":
    main()
