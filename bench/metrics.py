#!/usr/bin/env python3
"""The cost of a Prometheus scrape: LOADBALANCERS API-1.0 load balancers (one HAProxy each) with
SERVERS servers each, then GET /metrics over keep-alive, and the agent's idle RSS before and
after the scrapes. HAProxy's own exporter on the first of them (its 1/LOADBALANCERS share of the
same figures) is the reference. bench/bench.py imports measure()."""
import random, time, uuid

from lifecycle import plain_call

LOADBALANCERS, SERVERS = 10, 200


def config(front, exporter, member_port, rng):
    """One frontend, one backend of SERVERS servers named by UUIDs (Octavia's member ids), no
    health checks; HAProxy's exporter on `exporter` when given."""
    lines = ["global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n"
             "    timeout client 5s\n    timeout server 5s\n",
             f"frontend f\n    bind 127.0.0.1:{front}\n    default_backend pool\nbackend pool\n"]
    for m in range(SERVERS):
        member = uuid.UUID(int=rng.getrandbits(128), version=4)
        lines.append(f"    server {member} 127.0.0.1:{member_port} weight {1 + m % 3}\n")
    if exporter:
        lines.append(f"frontend exporter\n    bind 127.0.0.1:{exporter}\n"
                     "    http-request use-service prometheus-exporter\n")
    return "".join(lines)


def measure(pid, port, free_port, status, loadgen, client, n):
    """Against the plain-HTTP agent `pid` on `port`; `status(pid)` gives its VmRSS, `loadgen`
    runs bench/loadgen with `client`'s arguments (bench.py's)."""
    def call(method, path, body=b""):
        return plain_call(port, method, path, body)

    rng = random.Random(2)
    exporter = free_port()
    member_port = free_port()
    for i in range(LOADBALANCERS):
        cfg = config(free_port(), exporter if i == 0 else None, member_port, rng)
        call("PUT", f"/1.0/loadbalancer/amp/bench-m{i}/haproxy", cfg.encode())
        call("PUT", f"/1.0/loadbalancer/bench-m{i}/start")
    time.sleep(1)
    before = status(pid)
    size = len(call("GET", "/metrics"))
    expect = "haproxy_server_status"
    loadgen(client.args("/metrics", max(5, n // 10), expect=expect))
    ours = loadgen(client.args("/metrics", n, expect=expect))
    theirs_client = type(client)(f"http://127.0.0.1:{exporter}")
    loadgen(theirs_client.args("/metrics", max(5, n // 10), expect=expect))
    theirs = loadgen(theirs_client.args("/metrics", n, expect=expect))
    # Idle again: what the scrapes left resident.
    time.sleep(2)
    after = status(pid)
    for i in range(LOADBALANCERS):
        call("DELETE", f"/1.0/listeners/bench-m{i}")
    return {"loadbalancers": LOADBALANCERS, "servers": SERVERS, "bytes": size,
            "scrape": ours, "exporter_one": theirs,
            "rss_before": before["VmRSS"], "rss_after": after["VmRSS"],
            "anon_before": before["RssAnon"], "anon_after": after["RssAnon"]}
