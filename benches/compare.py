#!/usr/bin/env python3
"""beamd against a direct connection, bore and rathole, in one run on 127.0.0.1.

Every path forwards to the same two local services: an iperf3 server and an
nginx answering a small body (1 worker, access log off). Each workload runs
through each path in turn, so the figures share one machine and one moment.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
# Fixed ports below Linux's ephemeral range (32768-60999 by default), where
# no outgoing connection (this run's thousands, or an earlier run's still in
# TIME_WAIT) can hold them: two runs with ports in that range failed because
# nginx or rathole never came to listen.
IPERF, NGINX = 25201, 25280
EDGE = {"tcp": 25701, "quic": 25702, "ws": 25703}
HTTP_INGRESS = 25780
# A second edge that records no RequestCaptured events: the recording cost.
BARE_EDGE, BARE_INGRESS = 25704, 25781
BORE_IPERF, BORE_WEB = 25901, 25902
RATHOLE_CTRL, RATHOLE_IPERF, RATHOLE_WEB = 25600, 25601, 25602
TOKEN = "tok_bench.0123456789abcdef0123456789abcdef"
# Seconds of each wrk workload run before the measured one.
WARM_UP = 2
# The offered rate of the UDP workload (iperf3 -u -b), the same on every path.
UDP_RATE = os.environ.get("UDP_RATE", "500M")


def log(msg):
    print(f"benches: {msg}", file=sys.stderr, flush=True)


class Procs:
    """Background processes, stopped at the end whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, env=None, **kw):
        full_env = dict(os.environ, RUST_LOG="warn", BEAMD_LOG="warn", **(env or {}))
        p = subprocess.Popen(args, env=full_env, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_port(port, timeout=30):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout}s")


def read_until(proc, needle, timeout=30):
    """Reads the process's stdout lines until one contains `needle`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if needle in line:
            return line.strip()
    raise RuntimeError(f"no line with {needle!r} from {proc.args[0]}")


def drain(proc):
    """Keeps reading a started process's stdout so that it never blocks on a full pipe."""
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def iperf(port, streams, duration, pids):
    before = cpu_seconds(pids) if pids else 0.0
    out = subprocess.run(
        ["iperf3", "-c", HOST, "-p", str(port), "-t", str(duration), "-P", str(streams), "-J"],
        capture_output=True, text=True, timeout=duration + 30,
    )
    if out.returncode != 0:
        return None
    end = json.loads(out.stdout)["end"]["sum_received"]
    cpu = (cpu_seconds(pids) - before) if pids else None
    gib = end["bytes"] / 2**30
    return {"gbit": end["bits_per_second"] / 1e9, "cpu_per_gib": (cpu / gib) if cpu is not None and gib else None}


def iperf_udp(port, duration):
    """iperf3 -u at UDP_RATE in 1,400-byte datagrams: what arrived, and the loss."""
    out = subprocess.run(
        ["iperf3", "-c", HOST, "-p", str(port), "-u", "-b", UDP_RATE, "-l", "1400",
         "-t", str(duration), "-J"],
        capture_output=True, text=True, timeout=duration + 30,
    )
    if out.returncode != 0:
        return None
    end = json.loads(out.stdout)["end"]
    got = end.get("sum_received") or end["sum"]
    return {"gbit": got["bits_per_second"] / 1e9, "loss": end["sum"].get("lost_percent", 0.0)}


def wrk(port, duration, close, host=None):
    args = ["wrk", "-t2", "-c50", f"-d{duration}s", "--latency"]
    if close:
        args += ["-H", "Connection: close"]
    if host:
        args += ["-H", f"Host: {host}"]
    args.append(f"http://{HOST}:{port}/")
    # A warm-up of the same workload, not counted, for every path alike:
    # what is measured is a tunnel in use, not its first second.
    warm = [a if not a.startswith("-d") else f"-d{WARM_UP}s" for a in args]
    subprocess.run(warm, capture_output=True, text=True, timeout=WARM_UP + 30)
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30)
    text = out.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {
        "rps": float(rate.group(1)) if rate else 0.0,
        "p50": pct(50),
        "p99": pct(99),
        "bad": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


def nginx_conf(dir):
    conf = os.path.join(dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  server {{
    listen {HOST}:{NGINX} reuseport backlog=4096;
    location / {{ return 200 "hello from nginx\\n"; }}
  }}
}}
""")
    return conf


def start_beamd(procs, beamd, dir):
    data = os.path.join(dir, "beamd")
    args = [beamd, "edge", "--data-dir", data, "--public-host", HOST, "--tcp-ports", "25800-25899",
            "--udp-ports", "25800-25899",
            "--http-listen", f"{HOST}:{HTTP_INGRESS}", "--api-listen", f"{HOST}:0"]
    for t, port in EDGE.items():
        args += ["--transport", t, "--listen", f"{HOST}:{port}"]
    edge = procs.start(args, env={"BEAMD_ADMIN_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
    fp = read_until(edge, "fingerprint").split()[4]
    read_until(edge, " up; ")
    drain(edge)
    agents = {}
    for i, t in enumerate(EDGE):
        for j, (local, kind) in enumerate([(IPERF, "tcp"), (NGINX, "tcp")]):
            remote = 25810 + i * 10 + j
            a = procs.start([beamd, "tcp", str(local), "--edge", f"{HOST}:{EDGE[t]}", "--transport", t,
                             "--remote-port", str(remote), "--fingerprint", fp],
                            env={"BEAMD_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
            read_until(a, "tunnel tcp://")
            drain(a)
            agents[(t, local)] = (a, remote)
        # iperf3 -u: control over TCP, datagrams over UDP, on one port number.
        remote = 25810 + i * 10
        u = procs.start([beamd, "udp", str(IPERF), "--edge", f"{HOST}:{EDGE[t]}", "--transport", t,
                         "--remote-port", str(remote), "--fingerprint", fp],
                        env={"BEAMD_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
        read_until(u, "tunnel udp://")
        drain(u)
    web = procs.start([beamd, "http", str(NGINX), "--name", "web", "--edge", f"{HOST}:{EDGE['tcp']}",
                       "--transport", "tcp", "--fingerprint", fp],
                      env={"BEAMD_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
    read_until(web, "tunnel http")
    drain(web)
    return edge, agents


def start_bare_http(procs, beamd, dir):
    """An edge with `--no-capture` and one HTTP tunnel to nginx."""
    data = os.path.join(dir, "beamd-bare")
    edge = procs.start([beamd, "edge", "--data-dir", data, "--public-host", HOST, "--tcp-ports", "25700-25700",
                        "--transport", "tcp", "--listen", f"{HOST}:{BARE_EDGE}", "--no-capture",
                        "--http-listen", f"{HOST}:{BARE_INGRESS}", "--api-listen", f"{HOST}:0"],
                       env={"BEAMD_ADMIN_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
    fp = read_until(edge, "fingerprint").split()[4]
    read_until(edge, " up; ")
    drain(edge)
    web = procs.start([beamd, "http", str(NGINX), "--name", "web", "--edge", f"{HOST}:{BARE_EDGE}",
                       "--transport", "tcp", "--fingerprint", fp],
                      env={"BEAMD_TOKEN": TOKEN}, stdout=subprocess.PIPE, text=True)
    read_until(web, "tunnel http")
    drain(web)


def start_bore(procs, tools):
    server = procs.start([os.path.join(tools, "bore"), "server", "--min-port", "25900", "--max-port", "25999"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(7835)
    clients = []
    for local, remote in [(IPERF, BORE_IPERF), (NGINX, BORE_WEB)]:
        clients.append(procs.start([os.path.join(tools, "bore"), "local", str(local), "--to", HOST, "--port", str(remote)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(remote)
    return server, clients


def start_rathole(procs, tools, dir):
    s, c = os.path.join(dir, "rathole-server.toml"), os.path.join(dir, "rathole-client.toml")
    with open(s, "w") as f:
        f.write(f"""[server]
bind_addr = "{HOST}:{RATHOLE_CTRL}"
default_token = "bench"
[server.services.iperf]
bind_addr = "{HOST}:{RATHOLE_IPERF}"
[server.services.web]
bind_addr = "{HOST}:{RATHOLE_WEB}"
""")
    with open(c, "w") as f:
        f.write(f"""[client]
remote_addr = "{HOST}:{RATHOLE_CTRL}"
default_token = "bench"
[client.services.iperf]
local_addr = "{HOST}:{IPERF}"
[client.services.web]
local_addr = "{HOST}:{NGINX}"
""")
    server = procs.start([os.path.join(tools, "rathole"), "-s", s], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = procs.start([os.path.join(tools, "rathole"), "-c", c], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(RATHOLE_IPERF)
    wait_port(RATHOLE_WEB)
    time.sleep(1)  # the client connects its services after the server binds
    return server, client


def fmt_req(r):
    if not r or not r["rps"]:
        return "failed"
    lat = f" ({r['p50']:.2f}, {r['p99']:.2f} ms)" if r["p50"] is not None and r["p99"] is not None else ""
    bad = f" [{r['bad']} non-2xx]" if r["bad"] else ""
    return f"{r['rps']:,.0f}{lat}{bad}"


def memory(beamd):
    """`beamd bench idle`'s table: edge and agent memory per idle tunnel and per open connection."""
    log("memory: 1,000 idle tunnels, then 10,000 open connections, per transport …")
    out = subprocess.run([beamd, "bench", "idle"], capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, BEAMD_LOG="warn"))
    if out.returncode != 0:
        raise RuntimeError(f"beamd bench idle failed: {out.stderr.strip()[-800:]}")
    return [line for line in out.stdout.splitlines() if line.startswith("|")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--beamd", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--out", default="benches/results.md")
    args = ap.parse_args()
    duration = int(os.environ.get("DURATION", "5"))
    dir = tempfile.mkdtemp(prefix="beamd-bench-")
    procs = Procs()
    rows = {}
    try:
        procs.start(["iperf3", "-s", "-p", str(IPERF), "-B", HOST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.start(["nginx", "-e", "stderr", "-c", nginx_conf(dir), "-p", dir], stderr=subprocess.DEVNULL)
        wait_port(IPERF)
        wait_port(NGINX)
        edge, agents = start_beamd(procs, args.beamd, dir)
        start_bare_http(procs, args.beamd, dir)
        bore_server, bore_clients = start_bore(procs, args.tools)
        rat_server, rat_client = start_rathole(procs, args.tools, dir)
        paths = [("direct", IPERF, NGINX, [], None)]
        for t in EDGE:
            a_iperf, port_iperf = agents[(t, IPERF)]
            _, port_web = agents[(t, NGINX)]
            paths.append((f"beamd {t} (TCP tunnel)", port_iperf, port_web, [edge.pid, a_iperf.pid], None))
        paths.append(("beamd tcp (HTTP tunnel)", None, HTTP_INGRESS, [], "web.localhost"))
        paths.append(("beamd tcp (HTTP tunnel, --no-capture)", None, BARE_INGRESS, [], "web.localhost"))
        paths.append(("bore 0.6.0", BORE_IPERF, BORE_WEB, [bore_server.pid, bore_clients[0].pid], None))
        paths.append(("rathole 0.5.0", RATHOLE_IPERF, RATHOLE_WEB, [rat_server.pid, rat_client.pid], None))
        for name, p_iperf, p_web, pids, host in paths:
            log(f"{name} …")
            row = {}
            if p_iperf:
                row["one"] = iperf(p_iperf, 1, duration, pids)
                row["eight"] = iperf(p_iperf, 8, duration, [])
            if p_iperf and (name == "direct" or name.startswith("beamd")):
                row["udp"] = iperf_udp(p_iperf, duration)
            row["keep"] = wrk(p_web, duration, close=False, host=host)
            row["close"] = wrk(p_web, duration, close=True, host=host)
            rows[name] = row
    finally:
        procs.stop_all()
        shutil.rmtree(dir, ignore_errors=True)
    # After the other paths have stopped, so that their memory and CPU stay out of it.
    mem = memory(args.beamd)

    peers = [n for n in rows if n.startswith(("bore", "rathole"))]

    def best(key, field):
        vals = [rows[p][key][field] for p in peers if rows[p].get(key) and rows[p][key].get(field)]
        return max(vals) if vals else None

    lines = [
        f"| path | 1 stream Gbit/s | 8 streams Gbit/s | CPU s/GiB (1 stream) | keep-alive req/s (p50, p99) | `Connection: close` req/s (p50, p99) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        one, eight = r.get("one"), r.get("eight")
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            name,
            f"{one['gbit']:.2f}" if one else "–",
            f"{eight['gbit']:.2f}" if eight else "–",
            f"{one['cpu_per_gib']:.2f}" if one and one.get("cpu_per_gib") is not None else "–",
            fmt_req(r["keep"]), fmt_req(r["close"])))
    lines += ["", "| beamd path | 1 stream vs direct / best peer | keep-alive vs direct / best peer | close vs direct / best peer |", "|---|---|---|---|"]
    direct = rows["direct"]
    for name, r in rows.items():
        if not name.startswith("beamd"):
            continue

        def ratio(key, field):
            mine = r.get(key) and r[key].get(field)
            d = direct.get(key) and direct[key].get(field)
            b = best(key, field)
            if not mine:
                return "–"
            return f"{mine / d:.2f}× / {mine / b:.2f}×" if d and b else "–"

        lines.append(f"| {name} | {ratio('one', 'gbit')} | {ratio('keep', 'rps')} | {ratio('close', 'rps')} |")
    lines += ["", f"| UDP (iperf3 -u, {UDP_RATE}bit/s offered, 1,400-byte datagrams) | received Gbit/s | lost | vs direct |",
              "|---|---|---|---|"]
    for name, r in rows.items():
        u, du = r.get("udp"), direct.get("udp")
        if name in ("direct",) or (u is not None and name.startswith("beamd")):
            if u is None:
                lines.append(f"| {name} | – | – | – |")
                continue
            vs = f"{u['gbit'] / du['gbit']:.2f}×" if du and du["gbit"] else "–"
            label = name.replace("(TCP tunnel)", "(UDP tunnel)")
            lines.append(f"| {label} | {u['gbit']:.3f} | {u['loss']:.2f}% | {vs} |")
    on, off = rows.get("beamd tcp (HTTP tunnel)"), rows.get("beamd tcp (HTTP tunnel, --no-capture)")
    if on and off and off["keep"]["rps"] and off["close"]["rps"]:
        lines += ["", "| recording cost, HTTP tunnel | capture on / off |", "|---|---|",
                  f"| keep-alive req/s | {on['keep']['rps'] / off['keep']['rps']:.2f}× |",
                  f"| `Connection: close` req/s | {on['close']['rps'] / off['close']['rps']:.2f}× |"]
    lines += ["", "Resident memory, beamd only (1,000 idle tunnels, one agent connection each, then 10,000 "
              "open public connections; goal at the edge: under 64 KiB per idle tunnel, under 32 KiB per "
              "open connection):", ""] + mem
    table = "\n".join(lines)
    header = (f"One run on {os.uname().nodename} ({os.cpu_count()} cores), {duration} s per figure, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; wrk -t2 -c50 after a {WARM_UP} s warm-up; beamd records every byte "
              "and request (event log and inspector on).\n\n")
    with open(args.out, "w") as f:
        f.write(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
