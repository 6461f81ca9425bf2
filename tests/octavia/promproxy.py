#!/usr/bin/env python3
"""Octavia's side of the metrics proxy test (tests/octavia.rs): run with the venv's python inside
the test's network namespace.

  promproxy.py render --base-path DIR --cert-dir DIR --http-port N --prometheus-port N \
      --member-port N
      Prints the haproxy.cfg that Octavia's own templates (JinjaTemplater) render for a load
      balancer with an HTTP listener (one pool, one member on 127.0.0.1) and a PROMETHEUS
      listener, then a line `# ids <lb> <listener> <pool> <member>`.
  promproxy.py octavia --port N
      Serves Octavia's own proxy handler (octavia.cmd.prometheus_proxy.PrometheusProxy, which
      fetches http://127.0.0.1:9101/metrics) on 127.0.0.1:N; prints READY once listening.
  promproxy.py replay --port N --file F
      Answers every GET on 127.0.0.1:N with F's bytes, as an exporter that never changes;
      prints READY once listening.
"""
import argparse
import http.server
import sys
import uuid
import warnings

warnings.filterwarnings('ignore')  # oslo's deprecation noise


def render(args):
    from octavia.common.config import cfg
    from octavia.common import constants as consts
    from octavia.common import data_models as dm
    from octavia.common.jinja.haproxy.combined_listeners import jinja_cfg
    from octavia_lib.common import constants as lib_consts
    conf = cfg.CONF
    conf([], project='octavia', default_config_files=[], default_config_dirs=[])
    conf.set_override('base_path', args.base_path, 'haproxy_amphora')
    conf.set_override('base_cert_dir', args.cert_dir, 'haproxy_amphora')

    amp = dm.Amphora(id=str(uuid.uuid4()), lb_network_ip='127.0.0.1',
                     status=consts.AMPHORA_ALLOCATED, role=consts.ROLE_STANDALONE)
    lb_id, http_id, prom_id, pool_id, member_id = (str(uuid.uuid4()) for _ in range(5))
    lb = dm.LoadBalancer(id=lb_id, project_id='promproxy', enabled=True,
                         topology=consts.TOPOLOGY_SINGLE,
                         vip=dm.Vip(load_balancer_id=lb_id, ip_address='127.0.0.1'),
                         amphorae=[amp], provisioning_status=consts.ACTIVE)
    pool = dm.Pool(id=pool_id, protocol=consts.PROTOCOL_HTTP,
                   lb_algorithm=consts.LB_ALGORITHM_ROUND_ROBIN, enabled=True,
                   provisioning_status=consts.ACTIVE, load_balancer=lb)
    pool.members = [dm.Member(id=member_id, ip_address='127.0.0.1',
                              protocol_port=args.member_port, weight=1, enabled=True,
                              provisioning_status=consts.ACTIVE, pool=pool)]
    common = dict(project_id='promproxy', enabled=True, connection_limit=1000,
                  load_balancer=lb, peer_port=1025, provisioning_status=consts.ACTIVE)
    http = dm.Listener(id=http_id, protocol=consts.PROTOCOL_HTTP,
                       protocol_port=args.http_port, pools=[pool], default_pool=pool, **common)
    prom = dm.Listener(id=prom_id, protocol=lib_consts.PROTOCOL_PROMETHEUS,
                       protocol_port=args.prometheus_port, pools=[], **common)
    lb.listeners = [http, prom]
    lb.pools = [pool]
    templater = jinja_cfg.JinjaTemplater(
        base_amp_path=conf.haproxy_amphora.base_path,
        base_crt_dir=conf.haproxy_amphora.base_cert_dir,
        haproxy_template=conf.haproxy_amphora.haproxy_template,
        connection_logging=conf.haproxy_amphora.connection_logging)
    text = templater.build_config(host_amphora=amp, listeners=lb.listeners, tls_certs={},
                                  haproxy_versions=['2', '6'],
                                  amp_details={'active_tuned_profiles': '', 'cpu_count': 1})
    print(text)
    print(f'# ids {lb_id} {http_id} {pool_id} {member_id}')


def serve(port, handler):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)
    server.daemon_threads = True
    print('READY', flush=True)
    server.serve_forever()


def octavia(args):
    from octavia.cmd import prometheus_proxy
    serve(args.port, prometheus_proxy.PrometheusProxy)


def replay(args):
    with open(args.file, 'rb') as f:
        body = f.read()

    class Replay(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header('content-type', 'text/plain; version=0.0.4')
            self.send_header('content-length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    serve(args.port, Replay)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='command', required=True)
    r = sub.add_parser('render')
    for name in ('--base-path', '--cert-dir'):
        r.add_argument(name, required=True)
    for name in ('--http-port', '--prometheus-port', '--member-port'):
        r.add_argument(name, type=int, required=True)
    o = sub.add_parser('octavia')
    o.add_argument('--port', type=int, required=True)
    p = sub.add_parser('replay')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--file', required=True)
    args = ap.parse_args()
    {'render': render, 'octavia': octavia, 'replay': replay}[args.command](args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
