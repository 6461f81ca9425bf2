#!/usr/bin/env python3
"""An ACTIVE_STANDBY pair that fails over, driven by Octavia's own controller code (issue 19).

Two agents, each in its own network namespace (an amphora), reached on a management network; the
VIP network (203.0.113.0/24) joins them to the client namespace this script runs in, which is also
the gateway and holds the member (203.0.113.100). Octavia's classes throughout:
  * the agent config rendered by AgentJinjaTemplater (ACTIVE_STANDBY) and pushed by the driver;
  * the VIP plugged by the driver's post_vip_plug, with amphorae_network_config built as the
    controller's GetAmphoraeNetworkConfigs builds it (network data models, to_dict) and the
    arguments as AmphoraPostVIPPlug passes them;
  * keepalived's config rendered by KeepalivedJinjaTemplater through update_vrrp_conf on the
    interface get_interface_from_ip names for the vrrp_ip, started by start_vrrp_service;
  * a load balancer (HTTP listener on the VIP, a pool with SOURCE_IP persistence, so the config
    has a stick table synced through a `peers` section) rendered by the JinjaTemplater and
    uploaded and started by update_amphora_listeners, the MASTER's first (Octavia updates the
    two at once; one after the other makes the first holder certain);
  * get_interface_from_ip(VIP), which the controller's failover order relies on.
Then the failovers: the MASTER's keepalived stopped (stop_vrrp_service_on_amphora), and, with
it started again, the new holder's HAProxy hung (SIGSTOP).

Prints PASS/FAIL lines; exits 1 on any failure.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings

warnings.filterwarnings('ignore')
FAILED = []

VIP = '203.0.113.50'
SUBNET = '203.0.113.0/24'
GATEWAY = '203.0.113.1'
CLIENT = '203.0.113.1'  # the client is the gateway
MEMBER = '203.0.113.100'
MEMBER_PORT = 8080
VRRP_IPS = ('203.0.113.11', '203.0.113.12')
FAILOVER_WITHIN = 10  # seconds: "within a few seconds"


def step(name, fn, *a):
    try:
        detail = fn(*a)
        print(f'PASS  {name}' + (f'  -- {detail}' if detail else ''), flush=True)
    except Exception as e:  # noqa
        FAILED.append(name)
        print(f'FAIL  {name}  -- {type(e).__name__}: {e}'.replace('\n', '\\n'), flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_until(what, fn, within):
    """Seconds until fn() is true; AssertionError after `within` seconds."""
    start = time.time()
    while not fn():
        check(time.time() - start < within, f'{what}: not within {within} s')
        time.sleep(0.1)
    return time.time() - start


def ip(*args):
    return subprocess.run(['ip', *args], check=True, capture_output=True, text=True).stdout


def start_member():
    import http.server
    import socketserver

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Length', '6')
            self.end_headers()
            self.wfile.write(b'member')

        def log_message(self, *a):
            pass

    class Quiet(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request, client_address):
            pass  # health checks that hang up early
    srv = Quiet((MEMBER, MEMBER_PORT), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def get_vip():
    """The member's answer through the VIP, or None."""
    try:
        with urllib.request.urlopen(f'http://{VIP}/', timeout=2) as r:
            return r.status, r.read().decode()
    except Exception:  # noqa
        return None


def served():
    return get_vip() == (200, 'member')


def neighbour_mac():
    """The client's neighbour entry for the VIP: the MAC its packets go to."""
    words = ip('neigh', 'show', VIP).split()
    return words[words.index('lladdr') + 1].lower() if 'lladdr' in words else None


def cli(sock_path, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(cmd.encode() + b'\n')
    data = b''
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data.decode()


class Amp:
    """One amphora: its record, its namespace, where its agent keeps state."""

    def __init__(self, spec, index, role, priority):
        from octavia.common import constants as consts
        from octavia.common import data_models as dm
        self.id, self.mgmt_ip, self.base, self.ns, self.mac = spec
        self.mac = self.mac.lower()
        self.name = role
        self.rec = dm.Amphora(
            id=self.id, compute_id=str(uuid.uuid4()), status=consts.AMPHORA_ALLOCATED,
            lb_network_ip=self.mgmt_ip, vrrp_ip=VRRP_IPS[index], ha_ip=VIP,
            vrrp_port_id=str(uuid.uuid4()), ha_port_id=None, role=role, vrrp_id=1,
            vrrp_priority=priority)
        self.driver = None

    def addresses(self):
        return ip('-n', self.ns, '-br', 'addr').split()

    def holds_vip(self):
        return any(w.startswith(VIP + '/') for w in self.addresses())

    def haproxy_pids(self):
        pids = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    argv = f.read().decode(errors='replace').split('\0')
            except OSError:
                continue
            if os.path.basename(argv[0]) == 'haproxy' and any(
                    a.startswith(self.base + '/') for a in argv):
                pids.append(int(pid))
        return pids


def main():
    ap = argparse.ArgumentParser()
    for a in ('--ca', '--cert', '--key', '--server-cert'):
        ap.add_argument(a, required=True)
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--amphora', nargs=5, action='append', required=True,
                    metavar=('ID', 'MGMT_IP', 'BASE_PATH', 'NETNS', 'VIP_PORT_MAC'),
                    help='twice: the MASTER, then the BACKUP')
    args = ap.parse_args()
    check(len(args.amphora) == 2, 'two amphorae')

    from oslo_config import cfg
    from octavia.common import config  # noqa: F401  (registers Octavia's options)
    from octavia.common import constants as consts
    from octavia.common import data_models as dm
    from octavia.network import data_models as n_dm
    from oslo_log import log as oslo_log
    CONF = cfg.CONF
    oslo_log.register_options(CONF)  # [DEFAULT] debug, which the agent config template names
    CONF([], project='octavia', default_config_files=[], default_config_dirs=[])
    over = {
        'haproxy_amphora': dict(bind_port=args.port, client_cert=args.cert, server_ca=args.ca,
                                rest_request_conn_timeout=3, connection_max_retries=3,
                                connection_retry_interval=1),
        'amphora_agent': dict(agent_server_ca=args.ca, agent_server_cert=args.server_cert),
        'certificates': dict(cert_manager='noop_cert_manager'),
        # An operator's choice that makes a hung HAProxy fail over in seconds (default 5 s).
        'keepalived_vrrp': dict(vrrp_check_interval=1),
        'health_manager': dict(controller_ip_port_list=['198.51.100.1:5555'],
                               heartbeat_interval=1, heartbeat_key='ha-key'),
    }
    for group, opts in over.items():
        for k, v in opts.items():
            CONF.set_override(k, v, group)

    from octavia.amphorae.backends.agent import agent_jinja_cfg
    from octavia.amphorae.drivers.haproxy import exceptions as exc
    from octavia.amphorae.drivers.haproxy import rest_api_driver as rad

    master = Amp(args.amphora[0], 0, consts.ROLE_MASTER, consts.ROLE_MASTER_PRIORITY)
    backup = Amp(args.amphora[1], 1, consts.ROLE_BACKUP, consts.ROLE_BACKUP_PRIORITY)
    amps = (master, backup)

    def on(amp):
        """The controller's settings for this amphora: the two agents share one filesystem, so
        each has its own base_path (an amphora's /var/lib/octavia); the templates read it."""
        CONF.set_override('base_path', amp.base, 'haproxy_amphora')
        CONF.set_override('base_cert_dir', amp.base + '/certs', 'haproxy_amphora')
        CONF.set_override('bind_host', amp.mgmt_ip, 'haproxy_amphora')
        return amp.driver

    for amp in amps:
        on(amp)
        amp.driver = rad.HaproxyAmphoraLoadBalancerDriver()  # its JinjaTemplater keeps base_path
        for c in amp.driver.clients.values():
            c.session.cert = (args.cert, args.key)
        amp.driver.check(amp.rec)

    # ---- the records the controller's database and Neutron hold --------------------------------
    lb_id = str(uuid.uuid4())
    network = n_dm.Network(id=str(uuid.uuid4()), mtu=1500)
    subnet = n_dm.Subnet(id=str(uuid.uuid4()), network_id=network.id, cidr=SUBNET,
                         gateway_ip=GATEWAY, ip_version=4, host_routes=[])

    def port(port_id, mac, address):
        return n_dm.Port(id=port_id, mac_address=mac, network_id=network.id, network=network,
                         fixed_ips=[n_dm.FixedIP(subnet_id=subnet.id, ip_address=address)])
    vip_port = port(str(uuid.uuid4()), 'fa:16:3e:00:00:50', VIP)
    for amp in amps:
        amp.rec.ha_port_id = vip_port.id
        amp.rec.load_balancer_id = lb_id
    lb = dm.LoadBalancer(
        id=lb_id, project_id='p', enabled=True, topology=consts.TOPOLOGY_ACTIVE_STANDBY,
        vip=dm.Vip(load_balancer_id=lb_id, ip_address=VIP, subnet_id=subnet.id,
                   network_id=network.id, port_id=vip_port.id,
                   vnic_type=consts.VNIC_TYPE_NORMAL),
        amphorae=[a.rec for a in amps], provisioning_status=consts.ACTIVE, additional_vips=[],
        # As CreateVRRPGroupForLB makes it.
        vrrp_group=dm.VRRPGroup(load_balancer_id=lb_id, vrrp_group_name=lb_id.replace('-', ''),
                                vrrp_auth_type=consts.VRRP_AUTH_DEFAULT,
                                vrrp_auth_pass=uuid.uuid4().hex[0:7],
                                advert_int=CONF.keepalived_vrrp.vrrp_advert_int))
    # GetAmphoraeNetworkConfigs: the network driver's AmphoraNetworkConfig per amphora, as dicts.
    amphorae_network_config = {
        a.id: n_dm.AmphoraNetworkConfig(
            amphora=a.rec, vip_subnet=subnet, vip_port=vip_port, vrrp_subnet=subnet,
            vrrp_port=port(a.rec.vrrp_port_id, a.mac, a.rec.vrrp_ip), ha_subnet=subnet,
            ha_port=vip_port, additional_vip_data=[],
        ).to_dict(recurse=True, calling_classes=[dm.LoadBalancer])
        for a in amps}

    # ---- the pair ------------------------------------------------------------------------------
    def push_config():
        for amp in amps:
            conf = agent_jinja_cfg.AgentJinjaTemplater().build_agent_config(
                amp.id, consts.TOPOLOGY_ACTIVE_STANDBY)
            check('loadbalancer_topology = ACTIVE_STANDBY' in conf, conf)
            on(amp).update_amphora_agent_config(amp.rec, conf.encode())
        return 'loadbalancer_topology = ACTIVE_STANDBY on both'
    step('D01 update_amphora_agent_config (AgentJinjaTemplater, ACTIVE_STANDBY)', push_config)

    def plug():
        for amp in amps:
            # AmphoraPostVIPPlug's arguments, from the network config dicts.
            net = amphorae_network_config[amp.id]
            vrrp_port = n_dm.Port(**net[consts.VRRP_PORT])
            vip_subnet = n_dm.Subnet(**net[consts.VIP_SUBNET])
            on(amp).post_vip_plug(amp.rec, lb, amphorae_network_config, vrrp_port, vip_subnet,
                                  additional_vip_data=[])
        for amp in amps:
            link = ip('-n', amp.ns, '-br', 'link')
            addrs = amp.addresses()
            check(f'{amp.rec.vrrp_ip}/24' in addrs, f'{amp.name}: no vrrp_ip: {addrs}')
            check(not amp.holds_vip(), f'{amp.name}: the VIP is static (keepalived must own '
                  f'it): {addrs}')
            up = [line for line in link.splitlines() if amp.mac in line.lower()]
            check(up and ' UP ' in f' {up[0]} ', f'{amp.name}: the port is not up: {link}')
            rules = ip('-n', amp.ns, 'rule')
            check(VIP not in rules, f'{amp.name}: a rule for the VIP (keepalived adds its own): '
                  f'{rules}')
        return 'vrrp_ip only, link up, no VIP and no rule for it on either'
    step('D02 post_vip_plug on both: only the vrrp_ip on the port', plug)

    def vrrp():
        for amp in amps:
            # AmphoraUpdateVRRPInterface, then AmphoraVRRPUpdate and AmphoraVRRPStart.
            amp.rec.vrrp_interface = on(amp).get_interface_from_ip(amp.rec, amp.rec.vrrp_ip)
            check(amp.rec.vrrp_interface, f'{amp.name}: no interface for the vrrp_ip')
            amp.driver.update_vrrp_conf(lb, amphorae_network_config, amp.rec)
            amp.driver.start_vrrp_service(amp.rec)
        for amp in amps:
            script = amp.base + '/vrrp/check_script.sh'
            check(os.access(script, os.X_OK), f'{amp.name}: {script} is not executable')
        return f'keepalived on {master.rec.vrrp_interface} and {backup.rec.vrrp_interface}'
    step('D03 update_vrrp_conf and start_vrrp_service on both (KeepalivedJinjaTemplater)', vrrp)

    # ---- the load balancer ---------------------------------------------------------------------
    start_member()
    pool = dm.Pool(id=str(uuid.uuid4()), protocol=consts.PROTOCOL_HTTP,
                   lb_algorithm=consts.LB_ALGORITHM_ROUND_ROBIN, enabled=True,
                   provisioning_status=consts.ACTIVE, load_balancer=lb)
    pool.session_persistence = dm.SessionPersistence(
        pool_id=pool.id, type=consts.SESSION_PERSISTENCE_SOURCE_IP, pool=pool)
    pool.members = [dm.Member(id=str(uuid.uuid4()), ip_address=MEMBER, protocol_port=MEMBER_PORT,
                              weight=1, enabled=True, provisioning_status=consts.ACTIVE,
                              pool=pool, operating_status=consts.ONLINE)]
    listener = dm.Listener(id=str(uuid.uuid4()), project_id='p', protocol=consts.PROTOCOL_HTTP,
                           protocol_port=80, enabled=True, connection_limit=1000,
                           load_balancer=lb, pools=[pool], default_pool=pool, peer_port=1025,
                           provisioning_status=consts.ACTIVE)
    pool.listeners = [listener]
    lb.listeners, lb.pools = [listener], [pool]
    configs = {}

    def start_lb(amp):
        """update_amphora_listeners, keeping the config it rendered."""
        client = on(amp).clients['1.0']
        upload = client.upload_config

        def keep(a, lb_id_, config, **kw):
            configs[amp.id] = config if isinstance(config, str) else config.decode()
            return upload(a, lb_id_, config, **kw)
        client.upload_config = keep
        try:
            amp.driver.update_amphora_listeners(lb, amp.rec)
        finally:
            client.upload_config = upload

    def start_master():
        start_lb(master)
        text = configs[master.id]
        peers = f'peers {lb_id.replace("-", "")}_peers'
        check(peers in text, f'no peers section in the rendered config:\n{text}')
        check('stick-table type ipv6' in text and 'stick on src' in text, 'no stick table')
        took = wait_until('the VIP on the MASTER', master.holds_vip, FAILOVER_WITHIN + 5)
        check(not backup.holds_vip(), 'the BACKUP holds the VIP too')
        return f'VIP on the MASTER {took:.1f} s after its load balancer started'
    step('D04 update_amphora_listeners on the MASTER (a peers section): it takes the VIP',
         start_master)

    def start_backup():
        start_lb(backup)
        time.sleep(2)  # two of the BACKUP's checks pass: it must not take the VIP
        check(master.holds_vip() and not backup.holds_vip(),
              f'MASTER {master.addresses()}, BACKUP {backup.addresses()}')
        return 'the VIP on the MASTER only'
    step('D05 update_amphora_listeners on the BACKUP: the VIP stays on the MASTER only',
         start_backup)

    def interface(holder, other):
        name = on(holder).get_interface_from_ip(holder.rec, VIP)
        check(name, f'{holder.name}: no interface named for the VIP')
        try:
            on(other).get_interface_from_ip(other.rec, VIP)
        except exc.NotFound:
            return f'{holder.name} 200 ({name}), {other.name} 404'
        raise AssertionError(f'{other.name} does not hold the VIP and did not answer 404')

    def served_by(holder):
        took = wait_until('an answer through the VIP', served, FAILOVER_WITHIN)
        wait_until(f"the client's neighbour entry on {holder.name}'s MAC {holder.mac} "
                   f'(it is {neighbour_mac()})', lambda: neighbour_mac() == holder.mac,
                   FAILOVER_WITHIN)
        return took

    def first_holder():
        served_by(master)
        return f'served; neighbour entry on {master.mac}; ' + interface(master, backup)
    step('D06 the client is served through the VIP; GET /1.0/interface/<VIP> 200/404',
         first_holder)

    def synced():
        key = f'::ffff:{CLIENT}'

        def used(amp):
            """Octavia's stats socket (level user): each table's name and how many entries."""
            text = cli(f'{amp.base}/{lb_id}.sock', 'show table')
            return {w[2].rstrip(','): int(w[-1].split(':')[1])
                    for w in map(str.split, text.splitlines()) if w[:2] == ['#', 'table:']}

        def entries(amp):
            """The keys, through the agent's admin socket: a user-level socket shows none."""
            sock = f'{amp.base}/listeners/{lb_id}/run/stats.sock'
            return ''.join(cli(sock, f'show table {t}') for t in used(amp))
        check(served(), 'not served')
        check(f'key={key} ' in entries(master), f'no entry on the MASTER: {entries(master)}')
        took = wait_until(f'the entry for {key} on the BACKUP',
                          lambda: f'key={key} ' in entries(backup), 5)
        check(list(used(backup).values()) == [1], f'BACKUP: {used(backup)}')
        return f'key={key} on the BACKUP after {took:.1f} s'
    step('D07 a stick-table entry made through the MASTER is on the BACKUP (peers)', synced)

    def keepalived_stopped():
        start = time.time()
        on(master).stop_vrrp_service_on_amphora(master.rec)
        wait_until('the VIP on the BACKUP', backup.holds_vip, FAILOVER_WITHIN)
        check(not master.holds_vip(), f'the MASTER still holds it: {master.addresses()}')
        served_by(backup)
        took = time.time() - start
        return f'moved and served in {took:.1f} s; ' + interface(backup, master)
    step("D08 the MASTER's keepalived stopped: the VIP moves to the BACKUP", keepalived_stopped)

    def restarted():
        on(master).start_vrrp_service(master.rec)
        time.sleep(5)  # past the restarted keepalived's master-down interval
        check(backup.holds_vip() and not master.holds_vip(),
              f'MASTER {master.addresses()}, BACKUP {backup.addresses()}')
        return 'nopreempt: the BACKUP keeps the VIP'
    step("D09 the old MASTER's keepalived started again", restarted)

    def hung():
        pids = backup.haproxy_pids()
        check(pids, f'no HAProxy under {backup.base}')
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            start = time.time()
            wait_until('the VIP back on the MASTER', master.holds_vip, FAILOVER_WITHIN)
            check(not backup.holds_vip(), f'the BACKUP still holds it: {backup.addresses()}')
            served_by(master)
            took = time.time() - start
            return (f'{len(pids)} HAProxy processes stopped; moved and served in {took:.1f} s; '
                    + interface(master, backup))
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
    step("D10 the holder's HAProxy hung (SIGSTOP): the VIP moves back", hung)

    print(f'# {len(FAILED)} failed', flush=True)
    return 1 if FAILED else 0


if __name__ == '__main__':
    sys.exit(main())
