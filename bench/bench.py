#!/usr/bin/env python3
"""The measurements behind `make bench` (bench/run installs and builds, then runs this).

On loopback, in one run: lbagent's footprint; request cost against the direct-socket floor, HApi's
fork-per-request way (bench/hapi_socat.py) and the real Octavia amphora agent; new connections
against the handshake floor (a bare rustls server, `loadgen floor-server`); listener lifecycle
against doing it by hand (bench/lifecycle.py); 64 concurrent clients; the heartbeat of a large
load balancer (bench/heartbeat.py); a Prometheus scrape of 10 HAProxies (bench/metrics.py). Every
HTTP(S) request comes from bench/loadgen, a separate process. Writes bench/results.md and
bench/results.json.

Usage: bench/bench.py [--quick] [--strict] [--no-octavia]
  --quick       small counts, to check the harness itself (numbers are not meaningful)
  --strict      exit 1 when a target FAILs
  --no-octavia  skip the Octavia agent (its rows say SKIP)"""
import http.client, json, math, os, platform, re, shutil, signal, socket, ssl, statistics
import subprocess
import sys, tempfile, time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ from the import below
BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import heartbeat  # noqa: E402
import lifecycle  # noqa: E402
import metrics as scrape  # noqa: E402

AGENT_BIN = os.path.join(TOP, "target/x86_64-unknown-linux-gnu/release/lbagent")
LOADGEN = os.path.join(BENCH, "loadgen/target/release/loadgen")
CACHE = os.environ.get("BENCH_CACHE", os.path.join(BENCH, ".cache"))
OCTAVIA_RUN = os.environ.get("OCTAVIA_AGENT_RUN", os.path.join(
    os.path.dirname(TOP), "shared/peers/octavia-agent/run"))
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
AMPHORA_ID = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce"
MiB = 1024 * 1024

QUICK = "--quick" in sys.argv
# Bounded counts per case: enough for a stable p99, small enough for a few minutes in all.
N_KEEPALIVE = 200 if QUICK else 2000  # lbagent and the floor, keep-alive
N_NEWCONN = 50 if QUICK else 300      # a TLS handshake per request
N_HAPI = 50 if QUICK else 500         # fork per request: ~10 ms each
N_OCTAVIA = 20 if QUICK else 200      # ~30-45 ms each for /info and /details
N_WARMUP = 10 if QUICK else 50
N_FOOTPRINT = 1000 if QUICK else 10000
N_SCRAPES = 20 if QUICK else 200
CONC_CLIENTS, CONC_SECS = 64, (3 if QUICK else 20)
LIFECYCLE_ROUNDS = 3 if QUICK else 20
CASE_CAP_SECS = 120  # no single case runs longer, whatever its count


def log(msg):
    print(f"bench: {msg}", flush=True)


class Procs:
    """Everything this run started, for cleanup on any exit."""

    def __init__(self, work):
        self.work, self.procs, self.pids = work, [], []

    def popen(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        pids = [p.pid for p in self.procs if p.poll() is None] + self.pids
        pids += [c for pid in pids for c in descendants(pid)]
        # The agent's listener HAProxies run in their own process groups and outlive it; they
        # and the by-hand HAProxies name the work directory on their command line.
        for d in os.listdir("/proc"):
            if d.isdigit() and self.work + "/" in cmdline(int(d)):
                pids.append(int(d))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in set(pids):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            end = time.time() + 5
            while time.time() < end and any(alive(p) for p in set(pids)):
                time.sleep(0.05)
        for p in self.procs:
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out += kids; todo += kids
        except OSError:
            pass
    return out


def cpu_times():
    """The machine's CPU times (/proc/stat's first line: user ... steal ...), in ticks."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon (bytes) and Threads of one process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon"):
                out[k] = int(v.split()[0]) * 1024
            elif k == "Threads":
                out[k] = int(v)
    return out


def tree_rss(pid):
    return sum(proc_status(p).get("VmRSS", 0) for p in [pid] + descendants(pid) if alive(p))


def tcp_counters():
    """Listen-queue drops and SYN retransmits: a connection that had to retry shows up here."""
    rows = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    c = dict(zip(rows[0][1:], map(int, rows[1][1:])))
    return {k: c.get(k, 0) for k in ("ListenOverflows", "ListenDrops", "TCPSynRetrans")}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl, EC P-256)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=lbagent bench CA",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem"])
    for name, subj, ext in (
            ("server", "/CN=127.0.0.1",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "/O=lbagent bench/CN=controller", "extendedKeyUsage=clientAuth\n")):
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        run(["openssl", "req", "-new", *ec, "-subj", subj,
             "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr"])
        run(["openssl", "x509", "-req", "-days", "2", "-in", f"{d}/{name}.csr",
             "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-set_serial", str(int(time.time())),
             "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem"])
    # Octavia's agent takes key + certificate in one file.
    with open(f"{d}/server-bundle.pem", "w") as out:
        for part in ("server.key", "server.pem"):
            with open(f"{d}/{part}") as f:
                out.write(f.read())
    for k in ("ca.key", "server.key", "client.key", "server-bundle.pem"):
        os.chmod(f"{d}/{k}", 0o600)


def wait_for(what, secs, check, proc=None):
    end = time.time() + secs
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up (status {proc.returncode})")
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, ssl.SSLError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {secs}s")


def start_haproxy(procs, work):
    sock = f"{work}/haproxy.stat"
    port = lifecycle.free_port()
    cfg = f"{work}/haproxy.cfg"
    with open(cfg, "w") as f:
        f.write(f"global\n    stats socket {sock} mode 600 level admin\n    maxconn 1024\n"
                "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n"
                "    timeout server 10s\n"
                f"frontend http-frontend\n    bind 127.0.0.1:{port}\n    default_backend wwwbackend\n"
                "backend wwwbackend\n    server lamp1 127.0.0.1:9\n    server lamp2 127.0.0.1:9\n")
    run([HAPROXY, "-c", "-q", "-f", cfg])
    p = procs.popen([HAPROXY, "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                    stderr=open(f"{work}/haproxy.err", "w"))
    wait_for("HAProxy", 10, lambda: lifecycle.show_info(sock) is not None, p)
    return sock


def start_agent(procs, work, name, sock, pki=None):
    """lbagent with its own state; HTTPS + client certificates when pki is given."""
    d = f"{work}/{name}"
    os.makedirs(d)
    lines = [
        "bind: 127.0.0.1", "port: 0", f"socat: {sock}", "server: lamp",
        "http-frontend: ['wwwbackend']", f"accesslog: {d}/access.log",
        f"logfile: {d}/lbagent.log", f"state_dir: {d}/state", f"cert_dir: {d}/certs",
        f"haproxy: {HAPROXY}", f"amphora_id: {AMPHORA_ID}",
    ]
    if pki:
        lines += [f"sslcrt: {pki}/server.pem", f"sslkey: {pki}/server.key",
                  f"client_ca: {pki}/ca.pem"]
    with open(f"{d}/lbagent.yaml", "w") as f:
        f.write("\n".join(lines) + "\n")
    p = procs.popen([AGENT_BIN, "--config", f"{d}/lbagent.yaml"],
                    stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr.log", "w"))
    port = []

    def listening():
        with open(f"{d}/lbagent.log") as f:
            m = re.search(r" listening on https?://[^ ]*:(\d+)", f.read())
        if m:
            port.append(int(m.group(1)))
        return bool(m)
    wait_for(f"lbagent ({name})", 10, listening, p)
    return p, port[0]


def tls_context(pki):
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    return ctx


def https_status(port, path, ctx):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        c.request("GET", path); r = c.getresponse(); r.read()
        return r.status
    finally:
        c.close()


def start_hapi(procs, work, sock, pki, ctx):
    port = lifecycle.free_port()
    p = procs.popen([sys.executable, os.path.join(BENCH, "hapi_socat.py"), str(port), sock,
                     f"{pki}/server.pem", f"{pki}/server.key", f"{pki}/ca.pem"],
                    stdout=subprocess.DEVNULL, stderr=open(f"{work}/hapi.err", "w"))
    wait_for("the HApi-style server", 10,
             lambda: https_status(port, "/loadBalancer/status", ctx) == 200, p)
    return p, port


def start_tls_floor(procs, work, pki):
    """The handshake floor: loadgen's bare rustls server with lbagent's certificate, key and
    client CA, answering every request with a fixed 200. It prints its port first."""
    p = procs.popen([LOADGEN, "floor-server", "--cert", f"{pki}/server.pem",
                     "--key", f"{pki}/server.key", "--client-ca", f"{pki}/ca.pem", "--port", "0"],
                    stdout=subprocess.PIPE, text=True, stderr=open(f"{work}/tls-floor.err", "w"))
    line = p.stdout.readline().strip()
    if not line.isdigit():
        raise RuntimeError(f"loadgen floor-server did not start (status {p.poll()}): "
                           + open(f"{work}/tls-floor.err").read()[-400:])
    return p, int(line)


def start_octavia(procs, pki, ctx):
    """The real Octavia agent through the peer launcher: (pid, port, version) or a SKIP reason."""
    if not os.access(OCTAVIA_RUN, os.X_OK):
        return f"launcher {OCTAVIA_RUN} not found (set OCTAVIA_AGENT_RUN)"
    d = os.path.join(CACHE, "octavia")
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(f"{d}/venv/bin/python"):
        log(f"installing the Octavia agent into {d}/venv (first run only; a few minutes)")
    port = lifecycle.free_port()
    try:
        out = run([os.path.join(BENCH, "octavia-peer"), OCTAVIA_RUN, d, str(port),
                   f"{pki}/ca.pem", f"{pki}/server-bundle.pem"],
                  timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        tail = open(f"{d}/pip.log").read()[-400:] if os.path.exists(f"{d}/pip.log") else ""
        shutil.rmtree(f"{d}/venv", ignore_errors=True)  # a half-made venv would be reused
        return f"could not set up the Octavia agent ({e}); {tail.strip()}"
    pid = int(out.stdout.split()[-1])
    procs.pids.append(pid)
    try:
        wait_for("the Octavia agent", 60, lambda: https_status(port, "/", ctx) == 200)
    except RuntimeError as e:
        err = open(f"{d}/agent.err").read()[-400:] if os.path.exists(f"{d}/agent.err") else ""
        return f"{e}; {err.strip()}"
    version = "?"
    for lib in os.listdir(f"{d}/venv/lib"):
        sp = f"{d}/venv/lib/{lib}/site-packages"
        for n in os.listdir(sp) if os.path.isdir(sp) else []:
            if m := re.fullmatch(r"octavia-([\d.]+)\.dist-info", n):
                version = m.group(1)
    return pid, port, version


def loadgen(args, secs=CASE_CAP_SECS):
    # stderr passes through: loadgen reports outliers there.
    out = subprocess.run([LOADGEN, *args, "--duration", str(secs)], check=True, text=True,
                         stdout=subprocess.PIPE, timeout=secs + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Client:
    """loadgen arguments for one server: URL prefix plus TLS files."""

    def __init__(self, base, pki=None):
        self.base = base
        self.tls = ["--cacert", f"{pki}/ca.pem", "--cert", f"{pki}/client.pem",
                    "--key", f"{pki}/client.key"] if pki else []

    def args(self, path, n, new_conn=False, conns=1, expect=None):
        a = ["--url", self.base + path, *self.tls, "--conns", str(conns), "--requests", str(n)]
        if new_conn:
            a.append("--new-conn")
        if expect:
            a += ["--expect", expect]
        return a


def case(results, key, client, path, n, new_conn=False, expect=None):
    """Warm up, then measure one (server, request, connection mode) with one client."""
    in_turns(results, (http_case(key, client, path, n, new_conn, expect),), turns=1)


def http_case(key, client, path, n, new_conn=False, expect=None):
    """One HTTP(S) case for in_turns."""
    return (key, lambda count: client.args(path, count, new_conn, expect=expect), n, path,
            "new-conn" if new_conn else "keep-alive")


def in_turns(results, cases, turns=6):
    """Cases compared with each other: each warmed up, then measured in `turns` runs of a
    `turns`-th of its count, one case after the other, and each case's runs pooled. Measured
    one after the other, the machine's drift within a minute (the handshake floor alone moved
    by a fifth between rows of one run) fell on one side of a comparison only. `cases`:
    (key, args, n, path, mode), where args(count) are loadgen's arguments."""
    pooled = {}
    for key, args, n, _, _ in cases:
        loadgen(args(max(5, min(N_WARMUP, n // 10))))
        pooled[key] = {"requests": 0, "completed": 0, "errors": 0, "connections": 0,
                       "duration_s": 0.0, "first_error": None, "lat": []}
    for _ in range(turns):
        for key, args, n, _, _ in cases:
            r = loadgen(args(-(-n // turns)) + ["--raw"])
            p = pooled[key]
            for k in ("requests", "completed", "errors", "connections"):
                p[k] += r[k]
            # From the rate rather than duration_s, which loadgen rounds to the millisecond.
            p["duration_s"] += r["completed"] / r["rps"] if r["rps"] else r["duration_s"]
            p["first_error"] = p["first_error"] or r["first_error"]
            p["lat"] += r["latencies_us"]
    for key, _, _, path, mode in cases:
        p = pooled[key]
        lat = sorted(p.pop("lat"))

        def pct(q):
            return lat[min(max(math.ceil(q * len(lat)), 1), len(lat)) - 1] / 1000 if lat else 0.0
        p.update(rps=p["completed"] / p["duration_s"] if p["duration_s"] else 0.0,
                 p50_ms=pct(0.5), p90_ms=pct(0.9), p99_ms=pct(0.99), max_ms=pct(1.0),
                 path=path, mode=mode)
        results[key] = p
        log(f"{key}: p50 {p['p50_ms']:.3f} ms, p99 {p['p99_ms']:.3f} ms, {p['rps']:.0f} req/s, "
            f"{p['errors']} errors" + (f" ({p['first_error']})" if p["errors"] else ""))


def verdict(ok):
    return "PASS" if ok else "FAIL"


def mib(b):
    return f"{b / MiB:.2f} MiB"


def main():
    strict, no_octavia = "--strict" in sys.argv, "--no-octavia" in sys.argv
    t0 = time.time()
    for f in (AGENT_BIN, LOADGEN):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} is missing: run bench/run, which builds it")
    work = tempfile.mkdtemp(prefix="lbagent-bench-")
    procs = Procs(work)
    # SIGTERM/SIGINT end the run through the finally below, which stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return measure(procs, work, t0, strict, no_octavia)
    finally:
        procs.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def measure(procs, work, t0, strict, no_octavia):
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "haproxy": run([HAPROXY, "-v"]).stdout.splitlines()[0],
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "cpu_start": cpu_times(),
        "quick": QUICK,
    }
    try:
        meta["commit"] = run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        meta["commit"] = "?"
    if float(meta["loadavg_start"][0]) > 0.7:
        log(f"load average is {meta['loadavg_start'][0]}: other work on this machine will skew "
            "the numbers")

    pki = f"{work}/pki"
    os.makedirs(pki)
    make_pki(pki)
    ctx = tls_context(pki)
    sock = start_haproxy(procs, work)
    agent, port = start_agent(procs, work, "agent-tls", sock, pki)
    plain_agent, plain_port = start_agent(procs, work, "agent-plain", sock)
    hapi, hapi_port = start_hapi(procs, work, sock, pki, ctx)
    _, tls_floor_port = start_tls_floor(procs, work, pki)
    octavia = "skipped (--no-octavia)" if no_octavia else start_octavia(procs, pki, ctx)
    if isinstance(octavia, str):
        log(f"Octavia agent: SKIP: {octavia}")
    else:
        meta["octavia"] = octavia[2]
    log(f"running: HAProxy, lbagent https :{port} and http :{plain_port}, "
        f"HApi-style :{hapi_port}, TLS floor :{tls_floor_port}"
        + ("" if isinstance(octavia, str) else f", Octavia :{octavia[1]}"))

    tls = Client(f"https://127.0.0.1:{port}", pki)
    plain = Client(f"http://127.0.0.1:{plain_port}")
    hapi_c = Client(f"https://127.0.0.1:{hapi_port}", pki)
    tls_floor = Client(f"https://127.0.0.1:{tls_floor_port}", pki)

    # 1. Footprint: idle first (one request made sure it serves), then after 10,000 requests.
    time.sleep(1)
    fp = {"binary_bytes": os.path.getsize(AGENT_BIN), "idle": proc_status(agent.pid)}
    per = N_FOOTPRINT // 10
    for path, n, conns, new in (("/loadBalancer/status", 4 * per, 4, False),
                                ("/v0.1/listeners", 2 * per, 2, False),
                                ("/v0.1/details", 2 * per, 2, False),
                                ("/info", per, 1, False),
                                ("/loadBalancer/status", per, 2, True)):
        r = loadgen(tls.args(path, n, new, conns))
        assert r["errors"] == 0, (path, r)
    fp["after_10k"] = proc_status(agent.pid)
    fp["after_10k"]["requests"] = N_FOOTPRINT
    fp["hapi_rss"] = tree_rss(hapi.pid)
    if not isinstance(octavia, str):
        fp["octavia_rss"] = tree_rss(octavia[0])
    log(f"footprint: binary {mib(fp['binary_bytes'])}, idle RSS {mib(fp['idle']['VmRSS'])}, "
        f"after {N_FOOTPRINT} requests {mib(fp['after_10k']['VmRSS'])}, "
        f"{fp['idle']['Threads']} threads idle")

    # 2. Request cost, one client, sequential requests.
    res = {}

    def floor(count):
        return ["--unix", sock, "--send", "show info\\n", "--requests", str(count)]
    # Each target's two sides are measured in turns.
    in_turns(res, (("floor", floor, N_KEEPALIVE, "show info", "unix socket"),
                   http_case("lbagent-http/status", plain, "/loadBalancer/status", N_KEEPALIVE,
                             expect="HAProxy")))
    # No HAProxy I/O: the agent's own HTTP path, to split the status cost in two.
    case(res, "lbagent-http/listeners", plain, "/v0.1/listeners", N_KEEPALIVE)
    requests = (("status", "/loadBalancer/status", "HAProxy"), ("info", "/info", "haproxy_version"),
                ("listeners", "/v0.1/listeners", None),
                ("details", "/v0.1/details", "haproxy_version"))
    for new, n in ((False, N_KEEPALIVE), (True, N_NEWCONN)):
        m = "new" if new else "ka"
        for ours, path, expect in requests:
            mine = http_case(f"lbagent/{ours}/{m}", tls, path, n, new, expect)
            if new:
                # Against the handshake floor (its answer is a fixed "ok", so no --expect).
                in_turns(res, (mine, http_case(f"tls-floor/{ours}/new", tls_floor, path, n, True)))
            elif ours == "status":
                in_turns(res, (mine, http_case("hapi/status/ka", hapi_c, path, N_HAPI, False,
                                               "HAProxy")))
            else:
                in_turns(res, (mine,), turns=1)
        if new:
            case(res, "hapi/status/new", hapi_c, "/loadBalancer/status", N_HAPI, True, "HAProxy")
        if not isinstance(octavia, str):
            oc = Client(f"https://127.0.0.1:{octavia[1]}", pki)
            case(res, f"octavia/info/{m}", oc, "/1.0/info", N_OCTAVIA, new, "haproxy_version")
            case(res, f"octavia/listeners/{m}", oc, "/1.0/listeners", N_OCTAVIA, new)
            case(res, f"octavia/details/{m}", oc, "/1.0/details", N_OCTAVIA, new,
                 "haproxy_version")
    if not isinstance(octavia, str):
        fp["octavia_rss_end"] = tree_rss(octavia[0])

    # 4 (before 3, which leaves a keep-alive connection open). 64 clients at once.
    before = tcp_counters()
    conc = loadgen(tls.args("/loadBalancer/status", 10**9, conns=CONC_CLIENTS, expect="HAProxy"),
                   secs=CONC_SECS)
    conc["tcp"] = {k: v - before[k] for k, v in tcp_counters().items()}
    conc["threads_after"] = proc_status(agent.pid)["Threads"]
    log(f"concurrency: {CONC_CLIENTS} clients {CONC_SECS}s: {conc['rps']:.0f} req/s, "
        f"p99 {conc['p99_ms']:.2f} ms, {conc['errors']} errors")

    # 3. Listener lifecycle through the HTTPS agent on one keep-alive connection.
    api = lifecycle.Api(lambda: http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                                            timeout=30))
    try:
        lc = lifecycle.summary(lifecycle.measure(api, work, LIFECYCLE_ROUNDS))
    finally:
        api.close()
    log(f"lifecycle: upload+start {lc['start_ratio']:.2f}x by hand, "
        f"reload {lc['reload_ratio']:.2f}x")
    fp["end"] = proc_status(agent.pid)

    # 5. Heartbeats of a large load balancer, from the plain-HTTP agent.
    hb = heartbeat.measure(plain_agent.pid, plain_port, lifecycle.free_port, proc_status,
                           f"{work}/agent-plain/state")
    log(f"heartbeat: {hb['cpu_ms_per_beat']:.2f} ms CPU per beat "
        f"({hb['changing_cpu_ms_per_beat']:.2f} ms with a member changed), {hb['max_bytes']} bytes, "
        f"RSS {mib(hb['rss'])}")

    # 6. GET /metrics over 10 load balancers' HAProxies, from the plain-HTTP agent.
    sc = scrape.measure(plain_agent.pid, plain_port, lifecycle.free_port, proc_status, loadgen,
                        plain, N_SCRAPES)
    log(f"metrics: p50 {sc['scrape']['p50_ms']:.2f} ms for {sc['bytes']:,} bytes, "
        f"idle RSS {mib(sc['rss_before'])} -> {mib(sc['rss_after'])}")

    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    used = [b - a for a, b in zip(meta.pop("cpu_start"), cpu_times())]
    # Of the machine's CPU time during the run, the share the hypervisor gave to other guests.
    meta["steal_share"] = used[7] / sum(used) if len(used) > 7 and sum(used) else 0.0
    meta["seconds"] = round(time.time() - t0, 1)
    report = build_report(meta, fp, res, conc, lc, octavia, hb, sc)
    with open(os.path.join(BENCH, "results.json"), "w") as f:
        json.dump({"meta": meta, "footprint": fp, "requests": res, "concurrency": conc,
                   "lifecycle": lc, "heartbeat": hb, "metrics": sc,
                   "targets": report["targets"]}, f, indent=1)
    with open(os.path.join(BENCH, "results.md"), "w") as f:
        f.write(report["md"])
    print()
    print(report["md"])
    fails = [t for t in report["targets"] if t["verdict"] == "FAIL"]
    return 1 if strict and fails else 0


def build_report(meta, fp, res, conc, lc, octavia, hb, sc):
    targets = []

    def target(name, measured, limit, ok):
        v = "SKIP" if ok is None else verdict(ok)
        targets.append({"target": name, "measured": measured, "limit": limit, "verdict": v})

    target("stripped static binary", mib(fp["binary_bytes"]), "<= 4 MiB",
           fp["binary_bytes"] <= 4 * MiB)
    target("idle RSS (VmRSS)", mib(fp["idle"]["VmRSS"]), "<= 6 MiB", fp["idle"]["VmRSS"] <= 6 * MiB)
    target(f"RSS after {fp['after_10k']['requests']:,} requests (VmRSS)",
           mib(fp["after_10k"]["VmRSS"]), "<= 10 MiB", fp["after_10k"]["VmRSS"] <= 10 * MiB)
    fl, ag = res["floor"], res["lbagent-http/status"]
    target("agent overhead: GET /loadBalancer/status p50, plain HTTP keep-alive, / direct socket",
           f"{ag['p50_ms'] / fl['p50_ms']:.2f}x ({ag['p50_ms']:.3f} / {fl['p50_ms']:.3f} ms)",
           "<= 3x", ag["p50_ms"] <= 3 * fl["p50_ms"])

    def new_conn_target(ours, peer_name, peer):
        """A new connection is bounded by the TLS 1.3 handshake with a client certificate, which
        no agent can skip: its p50 against the handshake floor's plus lbagent's keep-alive p50
        for the same request. The peer's req/s ratio is information only."""
        a, ka, fl = (res[f"lbagent/{ours}/new"], res[f"lbagent/{ours}/ka"],
                     res[f"tls-floor/{ours}/new"])
        limit = 1.2 * (fl["p50_ms"] + ka["p50_ms"])
        vs = (f"{a['rps'] / peer['rps']:.1f}x {peer_name}'s req/s ({a['rps']:.0f} / "
              f"{peer['rps']:.1f})" if peer else f"{peer_name} not run")
        target(f"new TLS conn p50 vs handshake floor + keep-alive p50: GET {a['path']}",
               f"{a['p50_ms']:.3f} ms; {vs}",
               f"<= 1.2 x ({fl['p50_ms']:.3f} + {ka['p50_ms']:.3f}) = {limit:.3f} ms",
               a["p50_ms"] <= limit)

    for ours, theirs, label in (("info", "info", "GET /info vs /1.0/info"),
                                ("listeners", "listeners", "GET /v0.1/listeners vs /1.0/listeners"),
                                ("details", "details", "GET /v0.1/details vs /1.0/details")):
        for m, mode in (("ka", "keep-alive"), ("new", "new TLS conn")):
            a, o = res[f"lbagent/{ours}/{m}"], res.get(f"octavia/{theirs}/{m}")
            name = f"req/s vs Octavia agent: {label}, {mode}"
            if m == "new":
                new_conn_target(ours, "Octavia", o)
            elif o is None:
                target(name, "-", ">= 10x", None)
            else:
                target(name, f"{a['rps'] / o['rps']:.1f}x ({a['rps']:.0f} / {o['rps']:.1f})",
                       ">= 10x", a["rps"] >= 10 * o["rps"])
    for m, mode in (("ka", "keep-alive"), ("new", "new TLS conn")):
        a, h = res[f"lbagent/status/{m}"], res[f"hapi/status/{m}"]
        if m == "new":
            new_conn_target("status", "HApi", h)
            continue
        target(f"req/s vs HApi's socat fork: GET /loadBalancer/status, {mode}",
               f"{a['rps'] / h['rps']:.1f}x ({a['rps']:.0f} / {h['rps']:.1f})", ">= 20x",
               a["rps"] >= 20 * h["rps"])
    ms = lc["ms"]
    target("listener upload+start / haproxy -c + start by hand (p50)",
           f"{lc['start_ratio']:.2f}x ({ms['api_start']['p50']:.1f} / {ms['hand_start']['p50']:.1f} ms)",
           "<= 1.3x", lc["start_ratio"] <= 1.3)
    what = f"1 load balancer, {hb['listeners']} listeners, {hb['members']:,} members"
    target(f"heartbeat CPU time (build + send), {what}",
           f"{hb['cpu_ms_per_beat']:.2f} ms ({hb['changing_cpu_ms_per_beat']:.2f} ms for a beat "
           "that reports a member changed)", "<= 2 ms", hb["cpu_ms_per_beat"] <= 2)
    target(f"heartbeat datagram, {what}", f"{hb['max_bytes']:,} bytes", "< 64 KiB",
           hb["max_bytes"] < 64 * 1024)
    target("RSS while sending those heartbeats (VmRSS)", mib(hb["rss"]), "<= 6 MiB",
           hb["rss"] <= 6 * MiB)
    what = f"{sc['loadbalancers']} load balancers x {sc['servers']} servers"
    ours, one = sc["scrape"], sc["exporter_one"]
    target(f"GET /metrics p50, {what}, plain HTTP keep-alive",
           f"{ours['p50_ms']:.2f} ms for {sc['bytes'] / 1024:,.0f} KiB (HAProxy's own exporter, "
           f"one of the {sc['loadbalancers']}: {one['p50_ms']:.2f} ms)", "<= 5 ms",
           ours["p50_ms"] <= 5 and ours["errors"] == 0)
    # VmRSS also counts the binary's own pages that the scrape's code paged in (file-backed,
    # shared, reclaimable); what the scrapes left allocated is the anonymous part.
    target(f"idle RSS after {ours['requests']} of those scrapes (anonymous, of VmRSS)",
           f"{mib(sc['anon_after'])} of {mib(sc['rss_after'])} (before: {mib(sc['anon_before'])} "
           f"of {mib(sc['rss_before'])})", "anonymous <= 6 MiB", sc["anon_after"] <= 6 * MiB)
    target(f"{CONC_CLIENTS} concurrent clients for {CONC_SECS} s: errors",
           f"{conc['errors']} of {conc['requests']:,} ({conc['slow']} took over 1 s, max "
           f"{conc['max_ms'] / 1000:.1f} s)", "= 0", conc["errors"] == 0)

    L = []
    L.append("# lbagent benchmark\n")
    L.append(f"{meta['date']} on {meta['host']}: {meta['cpus']} x {meta['cpu']}, Linux "
             f"{meta['kernel']}; {meta['haproxy']}; Octavia agent "
             f"{meta.get('octavia', 'not run')}; lbagent commit {meta['commit']}. Load average "
             f"{' '.join(meta['loadavg_start'])} at start, {' '.join(meta['loadavg_end'])} at end. "
             f"Run took {meta['seconds']:.0f} s; {meta['steal_share']:.0%} of the machine's CPU "
             "time meanwhile went to other guests (steal), which slows every thread hand-off."
             + (" QUICK RUN: small counts." if meta["quick"] else "") + "\n")
    L.append("## Targets\n")
    L.append("| Target | Measured | Limit | Result |")
    L.append("| --- | --- | --- | --- |")
    for t in targets:
        L.append(f"| {t['target']} | {t['measured']} | {t['limit']} | {t['verdict']} |")
    counts = {v: sum(t["verdict"] == v for t in targets) for v in ("PASS", "FAIL", "SKIP")}
    L.append(f"\n{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP\n")

    L.append("## Footprint\n")
    L.append("| Process | VmRSS | VmHWM | Threads |")
    L.append("| --- | --- | --- | --- |")
    for key, label in (("idle", "lbagent (HTTPS), idle"),
                       ("after_10k", f"lbagent, after {fp['after_10k']['requests']:,} requests"),
                       ("end", "lbagent, end of run (also 64 clients, lifecycle)")):
        s = fp[key]
        L.append(f"| {label} | {mib(s['VmRSS'])} | {mib(s['VmHWM'])} | {s['Threads']} |")
    L.append(f"| HApi-style server (python + threads), after its requests | {mib(fp['hapi_rss'])} | | |")
    if "octavia_rss" in fp:
        L.append(f"| Octavia agent (gunicorn master + worker), after 10k phase / end "
                 f"| {mib(fp['octavia_rss'])} / {mib(fp['octavia_rss_end'])} | | |")
    L.append(f"\nStripped static binary: {fp['binary_bytes']:,} bytes.\n")

    L.append("## Request cost\n")
    L.append("One client, one request at a time; HTTPS with a client certificate (TLS 1.3, "
             "ECDSA P-256, no session resumption) unless noted. Latency includes reconnecting "
             "when the server closes the connection.\n")
    L.append("| Server | Request | Connection | n | Errors | p50 ms | p99 ms | req/s |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    names = {"floor": "HAProxy admin socket (floor)", "lbagent-http": "lbagent, plain HTTP",
             "lbagent": "lbagent", "hapi": "HApi way (sh + socat per request)",
             "octavia": "Octavia agent (gunicorn)",
             "tls-floor": "handshake floor (bare rustls server)"}
    for key, r in res.items():
        who = names[key.split("/")[0]]
        mode = r["mode"]
        if key.startswith("octavia") and mode == "keep-alive":
            mode += f" (server closed: {r['connections']} conns)"
        L.append(f"| {who} | {r['path']} | {mode} | {r['requests']} | {r['errors']} "
                 f"| {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rps']:.1f} |")
    hs = res["lbagent/listeners/new"]["p50_ms"] - res["lbagent/listeners/ka"]["p50_ms"]
    L.append(f"\nA new connection (TCP + full TLS 1.3 handshake with a client certificate) adds "
             f"{hs:.3f} ms to an lbagent request here (GET /v0.1/listeners, p50 new-conn minus "
             "keep-alive). The handshake floor is `loadgen floor-server`: a bare rustls server "
             "(ring, the agent's settings) with the same server certificate and client-CA "
             "verification that answers every request with a fixed 2-byte 200; its new-connection "
             f"p50 here ({res['tls-floor/listeners/new']['p50_ms']:.3f} ms for GET "
             "/v0.1/listeners) is TCP + that handshake + a trivial answer. The two sides of "
             "each comparison with a target (lbagent and the handshake floor, the socket floor, "
             "HApi's way) are measured in turns (6 runs each, alternating, pooled), so that the "
             "machine's drift falls on both. Each new-connection "
             "target is p50 <= 1.2 x (the floor's new-connection p50 + lbagent's keep-alive p50 "
             "for the same request); the peers' req/s ratios there are information.")
    if isinstance(octavia, str):
        L.append(f"\nOctavia agent: SKIP ({octavia}).")

    L.append("\n## Concurrency\n")
    L.append(f"{CONC_CLIENTS} keep-alive HTTPS clients, GET /loadBalancer/status, {CONC_SECS} s: "
             f"{conc['requests']:,} requests, {conc['errors']} errors, {conc['rps']:.0f} req/s, "
             f"p50 {conc['p50_ms']:.2f} ms, p99 {conc['p99_ms']:.2f} ms, max {conc['max_ms']:.2f} ms, "
             f"{conc['slow']} requests over 1 s; "
             f"{conc['connections']} connections. Kernel TCP counters meanwhile: "
             + ", ".join(f"{k} {v}" for k, v in conc["tcp"].items())
             + f". Agent threads right after: {conc['threads_after']}.\n")

    L.append("## Listener lifecycle\n")
    L.append(f"{lc['rounds']} rounds, through the HTTPS agent on one keep-alive connection, "
             "against the same config done by hand (p50, min-max in ms):\n")
    L.append("| Step | Through the API | By hand | Ratio |")
    L.append("| --- | --- | --- | --- |")
    for a, h, label, ratio in (("api_start", "hand_start", "upload + start", lc["start_ratio"]),
                               ("api_reload", "hand_reload", "upload changed config + reload",
                                lc["reload_ratio"])):
        L.append(f"| {label} | {ms[a]['p50']:.1f} ({ms[a]['min']:.1f}-{ms[a]['max']:.1f}) "
                 f"| {ms[h]['p50']:.1f} ({ms[h]['min']:.1f}-{ms[h]['max']:.1f}) | {ratio:.2f}x |")
    L.append("\nBy hand: `haproxy -c`, then `haproxy -W -S master.sock -f cfg` and wait until the "
             "stats socket answers; reload: `haproxy -c`, `reload` on the master CLI, wait until a "
             "new worker answers on the stats socket.\n")

    L.append("## Notes\n")
    L.append("- Everything runs on loopback on the same cores: the client, the servers and "
             "HAProxy share the CPUs.")
    L.append("- The HApi way is bench/hapi_socat.py: Python's threaded HTTP server over the same "
             "HTTPS + client-certificate setup, running `echo \"show info\" | socat stdio "
             "unix-connect:SOCK` through a shell per request (HApi itself uses Flask, which is "
             "slower, so this flatters it).")
    L.append("- Octavia's gunicorn sync worker closes the connection after every response, so "
             "its keep-alive rows pay a TLS handshake per request too. Neither agent has "
             "listeners during the request measurements.")
    L.append("- lbagent writes its access log as configured in production; neither peer does.")
    return {"md": "\n".join(L) + "\n", "targets": targets}


if __name__ == "__main__":
    sys.exit(main())
