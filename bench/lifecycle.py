#!/usr/bin/env python3
"""Listener upload+start latency through lbagent's API, against the floor: `haproxy -c` plus
starting the same HAProxy by hand and waiting until its stats socket answers (the readiness
the agent waits for too). Loopback only; bounded: ROUNDS rounds of each.

Usage: bench/lifecycle.py [LBAGENT_BINARY] [ROUNDS]"""
import http.client, os, shutil, socket, statistics, subprocess, sys, tempfile, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/x86_64-unknown-linux-gnu/release/lbagent"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def config(port):
    return ("global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n"
            "    timeout client 5s\n    timeout server 5s\n"
            f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
            "backend be\n    server s1 127.0.0.1:9 check\n")


def answers(sock):
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sock)
        s.sendall(b"show info\n"); s.shutdown(socket.SHUT_WR)
        ok = b"Name: HAProxy" in s.recv(4096); s.close(); return ok
    except OSError:
        return False


def by_hand(work, port):
    cfg = os.path.join(work, "h.cfg")
    with open(cfg, "w") as f:
        f.write(config(port) + f"global\n    stats socket {work}/s.sock mode 600 level admin\n")
    t = time.perf_counter()
    subprocess.run([HAPROXY, "-c", "-q", "-f", cfg], check=True)
    p = subprocess.Popen([HAPROXY, "-W", "-S", f"{work}/m.sock", "-f", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not answers(f"{work}/s.sock"):
        time.sleep(0.002)
    took = time.perf_counter() - t
    p.terminate(); p.wait()
    return took


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data


def main():
    work = tempfile.mkdtemp(prefix="lbagent-bench-")
    agent_port = free_port()
    with open(f"{work}/agent.yaml", "w") as f:
        f.write(f"port: {agent_port}\nstate_dir: {work}/state\ncert_dir: {work}/certs\n"
                f"logfile: {work}/agent.log\naccesslog: {work}/access.log\nhaproxy: {HAPROXY}\n")
    agent = subprocess.Popen([BIN, "--config", f"{work}/agent.yaml"])
    try:
        for _ in range(200):
            try:
                call(agent_port, "GET", "/v0.1/listeners"); break
            except OSError:
                time.sleep(0.02)
        api, hand = [], []
        for i in range(ROUNDS):
            port = free_port()
            t = time.perf_counter()
            st1, _ = call(agent_port, "PUT", f"/v0.1/listeners/amp/L{i}/haproxy", config(port))
            st2, _ = call(agent_port, "PUT", f"/v0.1/listeners/L{i}/start")
            api.append(time.perf_counter() - t)
            assert (st1, st2) == (201, 202), (st1, st2)
            call(agent_port, "DELETE", f"/v0.1/listeners/L{i}")
            hand.append(by_hand(work, free_port()))
        a, h = statistics.median(api), statistics.median(hand)
        print(f"rounds: {ROUNDS}")
        print(f"upload+start through the API: p50 {a*1000:.1f} ms (min {min(api)*1000:.1f}, max {max(api)*1000:.1f})")
        print(f"haproxy -c + start by hand:   p50 {h*1000:.1f} ms (min {min(hand)*1000:.1f}, max {max(hand)*1000:.1f})")
        print(f"ratio: {a/h:.2f}x  (target <= 1.3x)")
    finally:
        agent.terminate(); agent.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
