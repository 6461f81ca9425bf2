#!/usr/bin/env bash
# `make demo`: run lbagent in front of a real HAProxy and show real calls of every API family:
# HApi on the main HAProxy, then a load balancer made through the amphora API, seen through the
# legacy API, a device registered, and the metrics.
# `make demo-stop` (scripts/demo.sh stop): stop everything the demo started.
#
# Environment:
#   LBAGENT    agent binary (default: what `make release` builds)
#   DEMO_DIR   work directory, wiped on start (default /tmp/lbagent-demo)
#   DEMO_PORT  agent port (default 6000)
# Meant for root on a fresh Debian bookworm: installs haproxy, curl, openssl
# (and python3 for the two demo web servers) when they are missing.
set -euo pipefail

# haproxy lives in /usr/sbin, which a user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

DEMO_DIR=${DEMO_DIR:-/tmp/lbagent-demo}
DEMO_DIR=${DEMO_DIR%/}
DEMO_PORT=${DEMO_PORT:-6000}
LBAGENT=${LBAGENT:-target/x86_64-unknown-linux-gnu/release/lbagent}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Fixed in conf/demo/haproxy.cfg.in.
HTTP_PORT=8080
BACKEND_PORTS=(8081 8082)
# The load balancer the demo makes through the amphora API.
LB_PORT=8090

# Marks a directory this script created, the only kind it will wipe.
MARKER=.lbagent-demo

die() {
    echo "demo: $*" >&2
    exit 1
}
say() { printf '\n== %s\n' "$*"; }

# DEMO_DIR is wiped and pasted into configs: keep it a plain absolute path.
[[ $DEMO_DIR =~ ^/[A-Za-z0-9._/-]+$ && /$DEMO_DIR/ != */../* ]] ||
    die "DEMO_DIR must be a plain absolute path, got '$DEMO_DIR'"
[[ $DEMO_PORT =~ ^[0-9]{1,5}$ ]] || die "DEMO_PORT must be a port number, got '$DEMO_PORT'"
DEMO_PORT=$((10#$DEMO_PORT))
((DEMO_PORT >= 1 && DEMO_PORT <= 65535)) || die "DEMO_PORT must be 1-65535, got $DEMO_PORT"

## Stopping

STOPPED=0

# cmd_has PID TEXT: true if the live process PID has TEXT in its command line.
cmd_has() {
    local cmd
    cmd=$(tr '\0' ' ' 2>/dev/null </proc/"$1"/cmdline) || return 1
    [[ $cmd == *"$2"* ]]
}

# stop_pid NAME PID: TERM, then KILL after 10 s (the agent drains requests
# first). Only processes whose command line names DEMO_DIR are touched, so
# a recycled pid never hits an unrelated process.
stop_pid() {
    local name=$1 pid=$2 i
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    cmd_has "$pid" "$DEMO_DIR/" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        if ! cmd_has "$pid" "$DEMO_DIR/"; then
            echo "stopped $name (pid $pid)"
            STOPPED=$((STOPPED + 1))
            return 0
        fi
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "killed $name (pid $pid): it did not stop on SIGTERM"
    STOPPED=$((STOPPED + 1))
}

# stop_pidfile NAME FILE
stop_pidfile() {
    [[ -s $2 ]] || return 0
    stop_pid "$1" "$(head -n 1 "$2")"
}

stop_all() {
    local d
    # The agent first: it talks to HAProxy.
    stop_pidfile lbagent "$DEMO_DIR/agent.pid"
    stop_pidfile haproxy "$DEMO_DIR/haproxy.pid"
    stop_pidfile "backend lamp1" "$DEMO_DIR/lamp1.pid"
    stop_pidfile "backend lamp2" "$DEMO_DIR/lamp2.pid"
    # HAProxies (or keepalived) the agent may have started for listeners
    # created through its other APIs live under state/ and have no pid file
    # here; find them by command line.
    for d in /proc/[0-9]*; do
        if cmd_has "${d#/proc/}" "$DEMO_DIR/state/"; then
            stop_pid "listener process" "${d#/proc/}"
        fi
    done
}

stop_demo() {
    if [[ ! -e $DEMO_DIR/$MARKER ]]; then
        echo "no demo in $DEMO_DIR: nothing to stop"
        return 0
    fi
    stop_all
    if ((STOPPED == 0)); then
        echo "no demo process was running (files stay in $DEMO_DIR)"
    else
        echo "demo stopped (files stay in $DEMO_DIR)"
    fi
}

## Starting

# wait_until SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s.
wait_until() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "demo: $what did not answer within ${secs}s" >&2
    return 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_missing() {
    local pkgs=()
    command -v haproxy >/dev/null || pkgs+=(haproxy)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v openssl >/dev/null || pkgs+=(openssl)
    python3 -c 'import http.server' >/dev/null 2>&1 || pkgs+=(python3)
    ((${#pkgs[@]})) || return 0
    ((EUID == 0)) || die "missing ${pkgs[*]}: run as root so they can be installed"
    say "Installing ${pkgs[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

# On failure, stop whatever was started and show why the agent died.
on_exit() {
    local rc=$? f
    ((rc != 0)) || return 0
    for f in lbagent.out lbagent.log; do
        if [[ -s $DEMO_DIR/$f ]]; then
            echo "--- last lines of $DEMO_DIR/$f"
            tail -n 20 "$DEMO_DIR/$f"
        fi
    done >&2
    echo "demo: failed; stopping what it started" >&2
    stop_all >&2 || true
}

# shell_quote ARG: ARG as one would type it, for printing commands.
shell_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:@=,%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# show CURL_ARGS...: print the command line, then run it.
FAILED=0
show() {
    local a line='$ curl'
    for a in "$@"; do line+=" $(shell_quote "$a")"; done
    printf '\n%s\n' "$line"
    curl "$@" || FAILED=1
}

start_demo() {
    local port i pw cert base auth

    # make runs this from the top directory; also accept a path relative to it.
    [[ $LBAGENT == /* || -e $LBAGENT || ! -e $TOP/$LBAGENT ]] || LBAGENT=$TOP/$LBAGENT
    [[ -x $LBAGENT ]] || die "agent binary '$LBAGENT' not found: build it (make demo does) or set LBAGENT"
    LBAGENT=$(realpath "$LBAGENT")
    install_missing

    if [[ -e $DEMO_DIR/$MARKER ]]; then
        say "Stopping the previous demo in $DEMO_DIR"
        stop_all
    elif [[ -e $DEMO_DIR && -n $(ls -A "$DEMO_DIR") ]]; then
        die "$DEMO_DIR exists and is not a demo directory; remove it or set DEMO_DIR"
    fi
    rm -rf "$DEMO_DIR"
    mkdir -p "$DEMO_DIR"
    chmod 700 "$DEMO_DIR"
    touch "$DEMO_DIR/$MARKER"

    for port in "$HTTP_PORT" "${BACKEND_PORTS[@]}" "$LB_PORT" "$DEMO_PORT"; do
        ! port_busy "$port" || die "127.0.0.1:$port is in use (DEMO_PORT sets the agent's port)"
    done

    trap on_exit EXIT
    trap 'exit 130' INT TERM

    say "Self-signed certificate for 127.0.0.1/localhost"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$DEMO_DIR/server.key" -out "$DEMO_DIR/server.crt" 2>"$DEMO_DIR/openssl.log" ||
        die "openssl failed: $(cat "$DEMO_DIR/openssl.log")"
    chmod 600 "$DEMO_DIR/server.key"
    echo "$DEMO_DIR/server.crt, $DEMO_DIR/server.key"

    say "Backends lamp1 (127.0.0.1:${BACKEND_PORTS[0]}) and lamp2 (127.0.0.1:${BACKEND_PORTS[1]})"
    for i in 1 2; do
        port=${BACKEND_PORTS[i - 1]}
        mkdir "$DEMO_DIR/lamp$i"
        echo "Hello from lamp$i (127.0.0.1:$port)" >"$DEMO_DIR/lamp$i/index.html"
        nohup python3 -m http.server "$port" --bind 127.0.0.1 --directory "$DEMO_DIR/lamp$i" \
            >"$DEMO_DIR/lamp$i.log" 2>&1 </dev/null &
        echo $! >"$DEMO_DIR/lamp$i.pid"
    done
    for port in "${BACKEND_PORTS[@]}"; do
        wait_until 10 "backend on port $port" curl -sf "http://127.0.0.1:$port/"
    done
    echo "running"

    say "HAProxy: frontend http-frontend on 127.0.0.1:$HTTP_PORT, backend wwwbackend"
    sed "s|@DIR@|$DEMO_DIR|g" "$TOP/conf/demo/haproxy.cfg.in" >"$DEMO_DIR/haproxy.cfg"
    haproxy -c -f "$DEMO_DIR/haproxy.cfg" >/dev/null
    # pidfile comes from the config (haproxy.pid); -p too would be an ALERT.
    haproxy -D -f "$DEMO_DIR/haproxy.cfg"
    wait_until 10 "HAProxy" curl -sf "http://127.0.0.1:$HTTP_PORT/"
    echo "running, admin socket $DEMO_DIR/haproxy.stat"

    say "lbagent on https://127.0.0.1:$DEMO_PORT"
    pw=$(openssl rand -hex 12)
    # Quoted: an all-digit hex password would otherwise be a YAML number.
    cat >"$DEMO_DIR/lbagent.yaml" <<EOF
# lbagent config for the demo, written by scripts/demo.sh.
bind: 127.0.0.1
port: $DEMO_PORT
sslcrt: $DEMO_DIR/server.crt
sslkey: $DEMO_DIR/server.key
user: demo
password: '$pw'
socat: $DEMO_DIR/haproxy.stat
server: lamp
http-frontend: ['wwwbackend']
accesslog: $DEMO_DIR/access.log
logfile: $DEMO_DIR/lbagent.log
state_dir: $DEMO_DIR/state
cert_dir: $DEMO_DIR/certs
EOF
    chmod 600 "$DEMO_DIR/lbagent.yaml"
    echo "\$ $LBAGENT --check-config --config $DEMO_DIR/lbagent.yaml"
    "$LBAGENT" --check-config --config "$DEMO_DIR/lbagent.yaml"
    nohup "$LBAGENT" --config "$DEMO_DIR/lbagent.yaml" >"$DEMO_DIR/lbagent.out" 2>&1 </dev/null &
    echo $! >"$DEMO_DIR/agent.pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null || die "lbagent exited at start-up"
        if curl -sk -o /dev/null -u "demo:$pw" "https://127.0.0.1:$DEMO_PORT/loadBalancer/status"; then
            break
        fi
        sleep 0.2
    done
    ((i < 50)) || die "lbagent did not answer within 10s"
    echo "running (pid $(cat "$DEMO_DIR/agent.pid"))"

    say "HApi calls (TLS verified against $DEMO_DIR/server.crt)"
    cert=$DEMO_DIR/server.crt
    base=https://127.0.0.1:$DEMO_PORT/loadBalancer
    auth=demo:$pw
    # -w is expanded by curl itself: \n is a newline there.
    local c=(-sS --cacert "$cert" -w '\n(HTTP %{http_code})\n')
    show "${c[@]}" -u "$auth" "$base/status"
    show "${c[@]}" -u "$auth" "$base/nodes/up"
    show "${c[@]}" -u "$auth" -X POST "$base/poolManager/http-frontend/disable/1"
    show "${c[@]}" -u "$auth" "$base/nodes/maint"
    show "${c[@]}" -u "$auth" -X POST "$base/poolManager/http-frontend/enable/1"
    # A re-enabled server is UP again after its next health check (1 s).
    # shellcheck disable=SC2016 # expanded by the inner bash
    wait_until 5 "lamp1 back UP" \
        bash -c 'curl -sS --cacert "$1" -u "$2" "$3/nodes/up" | grep -q lamp1' _ "$cert" "$auth" "$base" ||
        true
    show "${c[@]}" -u "$auth" "$base/nodes/up"
    # No credentials: refused.
    show "${c[@]}" "$base/status"
    # Through HAProxy itself: round robin over lamp1 and lamp2.
    show -sS -w '(HTTP %{http_code})\n' "http://127.0.0.1:$HTTP_PORT/"
    show -sS -w '(HTTP %{http_code})\n' "http://127.0.0.1:$HTTP_PORT/"
    other_families "$cert" "$auth"

    trap - EXIT INT TERM
    # make passes DEMO_DIR on to `demo.sh stop`.
    local stop_cmd="make demo-stop"
    [[ $DEMO_DIR == /tmp/lbagent-demo ]] || stop_cmd="DEMO_DIR=$DEMO_DIR $stop_cmd"
    say "Demo running"
    cat <<EOF
files:     $DEMO_DIR
  agent:   lbagent.yaml, access.log, lbagent.log, lbagent.out (stdout/stderr)
  TLS:     server.crt, server.key
  HAProxy: haproxy.cfg, admin socket haproxy.stat
  lb1:     state/listeners/lb1/ (its HAProxy on 127.0.0.1:$LB_PORT)
user:      demo
password:  $pw
try:       curl --cacert $cert -u $auth $base/status
stop everything (agent, HAProxy, backends): $stop_cmd
EOF
    if ((FAILED)); then
        echo "demo: some calls failed (see above and $DEMO_DIR/lbagent.log); still running" >&2
        exit 1
    fi
}

# lb_config VERSION: a load balancer's HAProxy config, as a controller would upload it.
lb_config() {
    cat <<EOF
global
    maxconn 100
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend lb1
    bind 127.0.0.1:$LB_PORT
    http-response set-header X-Config $1
    default_backend lb1-pool
backend lb1-pool
    balance roundrobin
    server lamp1 127.0.0.1:${BACKEND_PORTS[0]} check inter 1s
    server lamp2 127.0.0.1:${BACKEND_PORTS[1]} check inter 1s
EOF
}

# other_families CERT AUTH: the amphora API (a load balancer uploaded, started, used, changed
# and reloaded), the legacy API's view of it, the device registry and the metrics.
other_families() {
    local cert=$1 auth=$2 api=https://127.0.0.1:$DEMO_PORT
    local c=(-sS --cacert "$cert" -u "$auth" -w '\n(HTTP %{http_code})\n')
    say "Amphora API 1.0: load balancer lb1 on 127.0.0.1:$LB_PORT, uploaded, started, used"
    lb_config v1 >"$DEMO_DIR/lb1.cfg"
    show "${c[@]}" -X PUT --data-binary "@$DEMO_DIR/lb1.cfg" "$api/1.0/loadbalancer/demo-amphora/lb1/haproxy"
    show "${c[@]}" -X PUT "$api/1.0/loadbalancer/lb1/start"
    wait_until 10 "lb1" curl -sf "http://127.0.0.1:$LB_PORT/"
    show -sS -i "http://127.0.0.1:$LB_PORT/"
    say "Changed (X-Config: v2) and reloaded: the next answer has the new header"
    lb_config v2 >"$DEMO_DIR/lb1.cfg"
    show "${c[@]}" -X PUT --data-binary "@$DEMO_DIR/lb1.cfg" "$api/1.0/loadbalancer/demo-amphora/lb1/haproxy"
    show "${c[@]}" -X PUT "$api/1.0/loadbalancer/lb1/reload"
    # shellcheck disable=SC2016 # expanded by the inner bash
    wait_until 10 "lb1 after the reload" \
        bash -c 'curl -sfi "$1" | grep -qi "x-config: v2"' _ "http://127.0.0.1:$LB_PORT/" || FAILED=1
    show -sS -i "http://127.0.0.1:$LB_PORT/"
    say "Its status: API 1.0, the v0.1 listener API and the legacy API agree"
    show "${c[@]}" "$api/1.0/listeners"
    show "${c[@]}" "$api/v0.1/listeners/lb1"
    show "${c[@]}" "$api/instances"
    show "${c[@]}" "$api/status"
    say "Device registry: a device registered, then listed"
    show "${c[@]}" -X POST -H 'Content-Type: application/json' \
        --data '{"name":"edge-lb-1","address":"192.0.2.10"}' "$api/v1/devices"
    show "${c[@]}" "$api/v1/devices"
    say "Metrics: some of the lines a Prometheus scrape of the agent gets"
    printf '\n$ curl -sS --cacert %s -u %s %s | grep -E ...\n' "$cert" "$auth" "$api/metrics"
    curl -sS --cacert "$cert" -u "$auth" "$api/metrics" |
        grep -E '^(haproxy_frontend_http_requests_total|haproxy_server_status\{.*state="UP"|lbagent_listener_actions_total|lbagent_haproxy_up)' ||
        FAILED=1
}

case ${1:-start} in
start) start_demo ;;
stop) stop_demo ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
