#!/usr/bin/env python3
"""The heartbeat's cost: one API-1.0 load balancer with LISTENERS listeners and MEMBERS members,
heartbeats every second to a UDP socket here; the heartbeat thread's own CPU time per heartbeat
(from /proc/<pid>/task/<tid>/schedstat: time on a CPU, in ns), the datagram's size, and the agent's
RSS while it sends. bench/bench.py imports measure()."""
import os, random, socket, uuid

from lifecycle import plain_call

LISTENERS, MEMBERS = 10, 2000


def config(ports, member_port):
    """Octavia's shape: a frontend per listener named by its id, its backend `pool:listener`,
    servers named by member id (UUIDs, which compress as badly as real ones; seeded, so every
    run sends the same); no health checks (their traffic is HAProxy's, not the agent's)."""
    rng = random.Random(1)

    def ids():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    lines = ["global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n"
             "    timeout client 5s\n    timeout server 5s\n"]
    per = MEMBERS // LISTENERS
    for port in ports:
        lid, pid = ids(), ids()
        lines.append(f"frontend {lid}\n    bind 127.0.0.1:{port}\n    default_backend {pid}:{lid}\n")
        lines.append(f"backend {pid}:{lid}\n")
        for m in range(per):
            lines.append(f"    server {ids()} 127.0.0.1:{member_port} weight {1 + m % 3}\n")
    return "".join(lines)


def thread_ns(pid, name):
    """Time on a CPU of the agent's thread called `name`, in ns."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    return int(f.read().split()[0])
    raise RuntimeError(f"no thread {name} in {pid}")


def cli(sock, command):
    """One command on an HAProxy admin socket; its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def measure(pid, port, free_port, status, state_dir, beats=20):
    """Against the plain-HTTP agent `pid` listening on `port`, its state in `state_dir`;
    `status(pid)` is its VmRSS etc. Steady beats first (no member changes, as most are), then
    beats that each report a member changed (drained and made ready in turn: DRAIN, then
    "no check" again), which cost the sender a compression of the whole member list."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)

    def call(method, path, body=b""):
        plain_call(port, method, path, body)

    ports = [free_port() for _ in range(LISTENERS)]
    cfg = config(ports, free_port())
    call("PUT", "/1.0/loadbalancer/amp/bench-lb/haproxy", cfg.encode())
    call("PUT", "/1.0/loadbalancer/bench-lb/start")
    conf = (f"[health_manager]\ncontroller_ip_port_list = 127.0.0.1:{rx.getsockname()[1]}\n"
            "heartbeat_interval = 1\nheartbeat_key = bench\n")
    call("PUT", "/1.0/config", conf.encode())
    sizes = []
    # From one datagram to the `beats`-th after it: the CPU of exactly that many heartbeats.
    rx.recv(65536)
    ns0 = thread_ns(pid, "heartbeat")
    for _ in range(beats):
        sizes.append(len(rx.recv(65536)))
    ns = thread_ns(pid, "heartbeat") - ns0
    rss = status(pid)
    sock = f"{state_dir}/listeners/bench-lb/run/stats.sock"
    row = cli(sock, "show stat -1 4 -1").splitlines()[1].split(",")
    rx.recv(65536)
    changing = 0
    for i in range(beats):
        cli(sock, f"set server {row[0]}/{row[1]} state {('drain', 'ready')[i % 2]}")
        ns0 = thread_ns(pid, "heartbeat")
        rx.recv(65536)
        changing += thread_ns(pid, "heartbeat") - ns0
    # Silence it again, and stop the load balancer: the other measurements run after.
    call("PUT", "/1.0/config", b"[health_manager]\n")
    call("DELETE", "/1.0/listeners/bench-lb")
    return {"listeners": LISTENERS, "members": MEMBERS, "beats": beats,
            "cpu_ms_per_beat": ns / beats / 1e6, "changing_cpu_ms_per_beat": changing / beats / 1e6,
            "max_bytes": max(sizes),
            "rss": rss["VmRSS"], "config_bytes": len(cfg)}
