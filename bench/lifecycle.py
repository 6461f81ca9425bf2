#!/usr/bin/env python3
"""Listener lifecycle latency through lbagent's API, against the floor of doing the same by hand.

- upload+start: PUT the config + PUT start through the API, against `haproxy -c` plus starting the
  same HAProxy by hand and waiting until its stats socket answers (the readiness the agent waits for
  too);
- reload: PUT a changed config + PUT reload through the API, against `haproxy -c` plus `reload` on
  the master CLI by hand, waiting until the new worker answers on the stats socket.

Loopback only; bounded: ROUNDS rounds of each. bench/run imports measure(); standalone, this starts
its own plain-HTTP agent:

Usage: bench/lifecycle.py [LBAGENT_BINARY] [ROUNDS]"""
import http.client, os, shutil, socket, statistics, subprocess, sys, tempfile, time

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# Poll as often as the agent does (launcher::POLL), so neither side waits longer than needed.
POLL = 0.002


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def config(port, timeout_client="5s"):
    # timeout_client varies so a reload really gets a different config.
    return ("global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n"
            f"    timeout client {timeout_client}\n    timeout server 5s\n"
            f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
            "backend be\n    server s1 127.0.0.1:9 check\n")


def show_info(sock):
    """`show info` on a stats socket, or None while it does not answer."""
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sock)
        s.sendall(b"show info\n"); s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        return out.decode() if b"Name: HAProxy" in out else None
    except OSError:
        return None


def serving_pid(sock):
    info = show_info(sock) or ""
    for line in info.splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


def master_cmd(sock, cmd):
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sock)
        s.sendall(cmd.encode() + b"\n"); s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        s.close()
    except OSError:
        pass  # the master re-executes itself on reload and may drop the connection


def by_hand(work, port):
    """`haproxy -c` + start + wait for the stats socket. Returns (seconds, process, files)."""
    cfg = os.path.join(work, "h.cfg")
    stats, master = f"{work}/s.sock", f"{work}/m.sock"
    with open(cfg, "w") as f:
        f.write(config(port) + f"global\n    stats socket {stats} mode 600 level admin\n")
    t = time.perf_counter()
    subprocess.run([HAPROXY, "-c", "-q", "-f", cfg], check=True)
    p = subprocess.Popen([HAPROXY, "-W", "-S", master, "-f", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while show_info(stats) is None:
        time.sleep(POLL)
    return time.perf_counter() - t, p, (cfg, stats, master, port)


def by_hand_reload(files):
    """Changed config, `haproxy -c`, `reload` on the master CLI, wait for the new worker."""
    cfg, stats, master, port = files
    old = serving_pid(stats)
    with open(cfg, "w") as f:
        f.write(config(port, "6s") + f"global\n    stats socket {stats} mode 600 level admin\n")
    t = time.perf_counter()
    subprocess.run([HAPROXY, "-c", "-q", "-f", cfg], check=True)
    master_cmd(master, "reload")
    while serving_pid(stats) in (None, old):
        time.sleep(POLL)
    return time.perf_counter() - t


def plain_call(port, method, path, body=b""):
    """One request to the plain-HTTP agent on `port`, on a connection of its own; its body.
    Anything but a 2xx stops the measurement."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status < 300, (method, path, r.status, data)
    return data


class Api:
    """One keep-alive connection to the agent, as a controller keeps; remade if it drops."""

    def __init__(self, connect):
        self.connect, self.conn = connect, None

    def call(self, method, path, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request(method, path, body=body)
                r = self.conn.getresponse(); data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close(); self.conn = None
                return r.status, data
            except (OSError, http.client.HTTPException):
                self.conn.close(); self.conn = None
                if attempt == 2:
                    raise

    def close(self):
        if self.conn:
            self.conn.close()


def measure(api, work, rounds):
    """Interleaves API and by-hand rounds so both see the same machine. Lists of seconds."""
    res = {"api_start": [], "hand_start": [], "api_reload": [], "hand_reload": []}
    api.call("GET", "/v0.1/listeners")  # connection set up before the clock starts
    for i in range(rounds):
        lid, port = f"bench-{os.getpid()}-{i}", free_port()
        t = time.perf_counter()
        st1, b1 = api.call("PUT", f"/v0.1/listeners/amp/{lid}/haproxy", config(port))
        st2, b2 = api.call("PUT", f"/v0.1/listeners/{lid}/start")
        res["api_start"].append(time.perf_counter() - t)
        assert (st1, st2) == (201, 202), (st1, b1, st2, b2)
        t = time.perf_counter()
        st1, b1 = api.call("PUT", f"/v0.1/listeners/amp/{lid}/haproxy", config(port, "6s"))
        st2, b2 = api.call("PUT", f"/v0.1/listeners/{lid}/reload")
        res["api_reload"].append(time.perf_counter() - t)
        assert (st1, st2) == (201, 202), (st1, b1, st2, b2)
        api.call("DELETE", f"/v0.1/listeners/{lid}")

        took, proc, files = by_hand(work, free_port())
        res["hand_start"].append(took)
        res["hand_reload"].append(by_hand_reload(files))
        proc.terminate(); proc.wait()
    return res


def summary(res):
    med = {k: statistics.median(v) for k, v in res.items()}
    return {
        "rounds": len(res["api_start"]),
        "ms": {k: {"p50": med[k] * 1000, "min": min(v) * 1000, "max": max(v) * 1000}
               for k, v in res.items()},
        "start_ratio": med["api_start"] / med["hand_start"],
        "reload_ratio": med["api_reload"] / med["hand_reload"],
    }


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/x86_64-unknown-linux-gnu/release/lbagent"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    work = tempfile.mkdtemp(prefix="lbagent-bench-")
    agent_port = free_port()
    with open(f"{work}/agent.yaml", "w") as f:
        f.write(f"port: {agent_port}\nstate_dir: {work}/state\ncert_dir: {work}/certs\n"
                f"logfile: {work}/agent.log\naccesslog: {work}/access.log\nhaproxy: {HAPROXY}\n")
    agent = subprocess.Popen([binary, "--config", f"{work}/agent.yaml"])
    api = Api(lambda: http.client.HTTPConnection("127.0.0.1", agent_port, timeout=30))
    try:
        for _ in range(200):
            try:
                api.call("GET", "/v0.1/listeners"); break
            except OSError:
                time.sleep(0.02)
        s = summary(measure(api, work, rounds))
        ms = s["ms"]
        print(f"rounds: {s['rounds']}")
        for key, label in (("api_start", "upload+start through the API"),
                           ("hand_start", "haproxy -c + start by hand  "),
                           ("api_reload", "upload+reload through the API"),
                           ("hand_reload", "haproxy -c + reload by hand ")):
            m = ms[key]
            print(f"{label}: p50 {m['p50']:.1f} ms (min {m['min']:.1f}, max {m['max']:.1f})")
        print(f"start ratio: {s['start_ratio']:.2f}x  (target <= 1.3x)")
        print(f"reload ratio: {s['reload_ratio']:.2f}x")
    finally:
        api.close()
        agent.terminate(); agent.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
