#!/usr/bin/env python3
"""Heartbeats judged by Octavia's own controller code (AGENT.md sections 1-2).

Against an agent started on an amphora-agent.conf, with Octavia's own classes throughout:
  * the agent config rendered by AgentJinjaTemplater and pushed by the driver's
    update_amphora_agent_config (heartbeats to 127.0.0.1:<port>, interval 1 s, a key);
  * a load balancer rendered by the JinjaTemplater from data models (two HTTP listeners; a pool
    with an HTTP health monitor and members up, down and drained), uploaded and started by the
    driver's update_amphora_listeners;
  * each datagram received by the health manager's UDPStatusGetter.dorecv, then the controller's
    UpdateHealthDb._update_health and update_stats run on it against the load balancer record
    those data models make (the database mocked, as in hb_check.py).
It prints RESTART and waits for a line on stdin while the test restarts the agent.

Prints PASS/FAIL lines; exits 1 on any failure.
"""
import argparse
import json
import socket
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from unittest import mock

warnings.filterwarnings('ignore')
FAILED = []


def step(name, fn, *a):
    try:
        detail = fn(*a)
        print(f'PASS  {name}' + (f'  -- {detail}' if detail else ''), flush=True)
    except Exception as e:  # noqa
        FAILED.append(name)
        print(f'FAIL  {name}  -- {type(e).__name__}: {e}', flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_member():
    import http.server
    import socketserver

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Length', '2')
            self.end_headers()
            self.wfile.write(b'ok')

        def log_message(self, *a):
            pass
    class Quiet(socketserver.ThreadingTCPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # health checks that hang up early
    srv = Quiet(('127.0.0.1', 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def get(port):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=3) as r:
            return r.status
    except Exception:  # noqa
        return None


def show_stat(sock_path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(b'show stat\n')
    data = b''
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    lines = data.decode().splitlines()
    names = lines[0].lstrip('# ').split(',')
    return [dict(zip(names, line.split(','))) for line in lines[1:] if line]


def main():
    ap = argparse.ArgumentParser()
    for a in ('--url', '--ca', '--cert', '--key', '--amphora-id', '--base-path', '--cert-dir',
              '--server-cert'):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    port = int(args.url.rsplit(':', 1)[1])

    from oslo_config import cfg
    from octavia.common import config  # noqa: F401  (registers Octavia's options)
    from octavia.common import constants as consts
    from octavia.common import data_models as dm
    from oslo_log import log as oslo_log
    CONF = cfg.CONF
    oslo_log.register_options(CONF)  # [DEFAULT] debug, which the agent config template names
    CONF([], project='octavia', default_config_files=[], default_config_dirs=[])
    over = {
        'haproxy_amphora': dict(bind_port=port, bind_host='127.0.0.1', client_cert=args.cert,
                                server_ca=args.ca, base_path=args.base_path,
                                base_cert_dir=args.cert_dir, rest_request_conn_timeout=3,
                                connection_max_retries=2, connection_retry_interval=1),
        'amphora_agent': dict(agent_server_ca=args.ca, agent_server_cert=args.server_cert),
        'certificates': dict(cert_manager='noop_cert_manager'),
    }
    for group, opts in over.items():
        for k, v in opts.items():
            CONF.set_override(k, v, group)

    from octavia.amphorae.backends.agent import agent_jinja_cfg
    from octavia.amphorae.backends.health_daemon import status_message
    from octavia.amphorae.drivers.haproxy import rest_api_driver as rad
    from octavia.amphorae.drivers.health import heartbeat_udp as hb

    def heartbeat_settings(hb_port, key):
        for k, v in (('controller_ip_port_list', [f'127.0.0.1:{hb_port}']),
                     ('heartbeat_interval', 1), ('heartbeat_key', key),
                     ('bind_ip', '127.0.0.1'), ('bind_port', hb_port)):
            CONF.set_override(k, v, 'health_manager')

    amp = dm.Amphora(id=args.amphora_id, lb_network_ip='127.0.0.1',
                     status=consts.AMPHORA_ALLOCATED, role=consts.ROLE_STANDALONE)
    driver = rad.HaproxyAmphoraLoadBalancerDriver()
    for c in driver.clients.values():
        c.session.cert = (args.cert, args.key)
    driver.check(amp)

    hb_port, key = free_port(socket.SOCK_DGRAM), 'key-one'
    heartbeat_settings(hb_port, key)
    getter = hb.UDPStatusGetter()  # binds before anything is sent: no datagram is missed
    getter.sock.settimeout(1)

    def push_config():
        conf = agent_jinja_cfg.AgentJinjaTemplater().build_agent_config(
            args.amphora_id, consts.TOPOLOGY_SINGLE)
        driver.update_amphora_agent_config(amp, conf.encode())
        return f'heartbeats to 127.0.0.1:{hb_port}, interval 1 s'
    step('C01 update_amphora_agent_config (rendered by AgentJinjaTemplater)', push_config)

    # ---- the load balancer ---------------------------------------------------------------------
    lb_id = str(uuid.uuid4())
    lb = dm.LoadBalancer(id=lb_id, project_id='p', enabled=True, topology=consts.TOPOLOGY_SINGLE,
                         vip=dm.Vip(load_balancer_id=lb_id, ip_address='127.0.0.1'),
                         amphorae=[amp], provisioning_status=consts.ACTIVE)
    up_port, down_port = http_member(), free_port()
    members = {}

    def pool_of(weights_ports):
        pool = dm.Pool(id=str(uuid.uuid4()), protocol=consts.PROTOCOL_HTTP,
                       lb_algorithm=consts.LB_ALGORITHM_ROUND_ROBIN, enabled=True,
                       provisioning_status=consts.ACTIVE, load_balancer=lb)
        pool.health_monitor = dm.HealthMonitor(
            id=str(uuid.uuid4()), type=consts.HEALTH_MONITOR_HTTP, delay=1, timeout=1,
            fall_threshold=1, rise_threshold=1, http_method='GET', url_path='/',
            expected_codes='200', enabled=True, pool=pool, provisioning_status=consts.ACTIVE)
        pool.members = []
        for name, weight, p in weights_ports:
            m = dm.Member(id=str(uuid.uuid4()), ip_address='127.0.0.1', protocol_port=p,
                          weight=weight, enabled=True, provisioning_status=consts.ACTIVE,
                          pool=pool, operating_status=consts.OFFLINE)
            members[m.id] = name
            pool.members.append(m)
        return pool
    pool1 = pool_of([('up', 1, up_port), ('down', 1, down_port), ('drained', 0, up_port)])
    pool2 = pool_of([('up2', 1, up_port)])
    ports = [free_port(), free_port()]
    listeners = []
    for pool, p in zip((pool1, pool2), ports):
        lis = dm.Listener(id=str(uuid.uuid4()), project_id='p', protocol=consts.PROTOCOL_HTTP,
                          protocol_port=p, enabled=True, connection_limit=1000,
                          load_balancer=lb, pools=[pool], default_pool=pool, peer_port=1025,
                          provisioning_status=consts.ACTIVE)
        pool.listeners = [lis]
        listeners.append(lis)
    lb.listeners, lb.pools = listeners, [pool1, pool2]
    stats_sock = f'{args.base_path}/{lb_id}.sock'

    def start_lb():
        driver.update_amphora_listeners(lb, amp)
        check(get(ports[0]) == 200, 'no answer through listener 1')
        return f'listeners on {ports}'
    step('C02 update_amphora_listeners: two listeners, members up/down/drained', start_lb)

    # ---- the health manager --------------------------------------------------------------------
    def db_record():
        """What Octavia's database holds for this load balancer (db_3listeners.json's shape)."""
        return {'id': lb_id, 'enabled': True, 'provisioning_status': 'ACTIVE',
                'operating_status': 'ONLINE',
                'listeners': {l.id: {'operating_status': 'OFFLINE', 'protocol': 'HTTP',
                                     'enabled': True} for l in listeners},
                'pools': {p.id: {'operating_status': 'OFFLINE',
                                 'members': {m.id: {'operating_status': 'OFFLINE'}
                                             for m in p.members}} for p in (pool1, pool2)}}

    def judge():
        """One datagram through dorecv, _update_health and update_stats: what they wrote."""
        msg, src = getter.dorecv()
        upd = getter.health_updater
        for r in ('amphora_repo', 'amphora_health_repo', 'loadbalancer_repo', 'listener_repo',
                  'pool_repo', 'member_repo'):
            setattr(upd, r, mock.MagicMock(name=r))
        upd.amphora_repo.get_lb_for_health_update.return_value = db_record()
        with mock.patch.object(hb.db_api, 'get_session'), \
                mock.patch.object(hb.stats_base, 'update_stats_via_driver') as stats:
            upd._update_health(msg, src)
            hb.update_stats(msg)
        status = {c.args[1]: c.kwargs['operating_status']
                  for r in ('listener_repo', 'member_repo')
                  for c in getattr(upd, r).update.call_args_list}
        rx = {s.listener_id: s.bytes_in for s in stats.call_args.args[0]} if stats.called else {}
        return msg, upd.amphora_health_repo.replace.called, status, rx

    rx_total = {l.id: 0 for l in listeners}
    lb_seen = []  # heartbeats sent before the load balancer started report no listener

    def beats(n, until=None, within=30):
        """n judged heartbeats that refresh the amphora's health (after `until` holds)."""
        end, seen = time.time() + within, []
        while len(seen) < n:
            check(time.time() < end, f'{len(seen)} of {n} heartbeats in {within} s')
            try:
                msg, refreshed, status, rx = judge()
            except OSError:  # socket.timeout: nothing yet
                continue
            if not msg['listeners'] and not lb_seen:
                continue
            lb_seen.append(1)
            for k, v in rx.items():
                rx_total[k] = rx_total.get(k, 0) + v
            check(refreshed, f'health NOT refreshed: {status}')
            if until is None or until(status):
                seen.append(status)
        return seen

    want = {listeners[0].id: 'ONLINE', listeners[1].id: 'ONLINE'}
    by_name = {name: mid for mid, name in members.items()}
    want.update({by_name['up']: 'ONLINE', by_name['down']: 'ERROR',
                 by_name['drained']: 'DRAINING', by_name['up2']: 'ONLINE'})

    def statuses():
        for _ in range(20):
            check(get(ports[0]) == 200, 'traffic through listener 1')
        seen = beats(3, until=lambda s: all(s.get(k) == v for k, v in want.items()))
        return f'3 heartbeats: {sorted(set(seen[-1].values()))}'
    step('C03 health refreshed; listeners ONLINE, members ONLINE/ERROR/DRAINING', statuses)

    def byte_deltas():
        beats(2)  # no traffic since: the sums are final
        rows = show_stat(stats_sock)
        bin_ = {r['pxname']: int(r['bin']) for r in rows if r['svname'] == 'FRONTEND'}
        for l in listeners:
            check(rx_total[l.id] == bin_[l.id],
                  f'listener {l.id}: deltas sum {rx_total[l.id]}, HAProxy counted {bin_[l.id]}')
        return f'sum of rx deltas == HAProxy bin ({bin_[listeners[0].id]} bytes)'
    step('C04 summed byte deltas equal what HAProxy counted', byte_deltas)

    def restart():
        print('RESTART', flush=True)
        sys.stdin.readline()
        before = dict(rx_total)
        beats(2, within=40)
        check(rx_total == before, f'counted again after the restart: {before} -> {rx_total}')
        return 'no delta sent twice'
    step('C05 agent restarted: no double counting', restart)

    def new_controller():
        nonlocal hb_port, key
        old_key = key
        hb_port, key = free_port(socket.SOCK_DGRAM), 'key-two'
        heartbeat_settings(hb_port, key)
        getter.update(key, '127.0.0.1', hb_port)
        push_config()
        beats(1)
        end = time.time() + 10
        while True:
            try:
                data, _ = getter.sock.recvfrom(65536)
                break
            except OSError:
                check(time.time() < end, 'no datagram at the new port')
        status_message.unwrap_envelope(data, key)
        try:
            status_message.unwrap_envelope(data, old_key)
        except Exception:  # noqa  (InvalidHMACException)
            return f'at 127.0.0.1:{hb_port}, signed with the new key; the old key is rejected'
        raise AssertionError('the old key opened the new heartbeat')
    step('C06 another controller and key: heartbeats move', new_controller)

    def reloads():
        stop, failed, sent = threading.Event(), [], [0]

        def traffic():
            while not stop.is_set():
                sent[0] += 1
                if get(ports[0]) != 200:
                    failed.append(1)
        t = threading.Thread(target=traffic)
        t.start()
        try:
            for i in range(20):
                driver.reload(lb, amp)
                row = next(r for r in show_stat(stats_sock)
                           if r['svname'] == by_name['down'])
                check(row['status'].startswith('DOWN'), f'reload {i}: down member {row["status"]}')
        finally:
            stop.set()
            t.join()
        check(not failed, f'{len(failed)} of {sent[0]} requests failed')
        return f'20 reloads, {sent[0]} requests, none reached the down member'
    step('C07 reloads under traffic: the down member stays DOWN', reloads)

    print(f'# {len(FAILED)} failed', flush=True)
    return 1 if FAILED else 0


if __name__ == '__main__':
    sys.exit(main())
