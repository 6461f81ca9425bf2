#!/usr/bin/env python3
"""HApi's way of answering GET /loadBalancer/status, reproduced for bench/run: every request runs
`echo "show info" | socat stdio unix-connect:SOCK` through a shell (a fork + exec of sh, echo's
pipe and socat per request) and turns the `Key: value` lines into the same JSON lbagent returns.

It is served the way lbagent is in the bench: HTTPS with a client certificate required, a thread
per connection, HTTP/1.1 keep-alive. Python's stdlib server stands in for HApi's Flask, which only
makes this a generous floor for HApi.

Usage: hapi_socat.py PORT HAPROXY_SOCKET SERVER_CERT SERVER_KEY CLIENT_CA"""
import http.server
import json
import shlex
import socketserver
import ssl
import subprocess
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like lbagent
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    socket_path = ""

    def do_GET(self):
        if self.path != "/loadBalancer/status":
            return self.reply(404, {"message": "Not Found"})
        # The fork-per-request HApi does: a shell pipeline, its output parsed afterwards.
        cmd = f'echo "show info" | socat stdio unix-connect:{shlex.quote(self.socket_path)}'
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout:
            return self.reply(503, {"message": "HAProxy socket unavailable", "details": out.stderr})
        info = {}
        for line in out.stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        self.reply(200, [info])

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # no per-request logging: it would only add noise to the timing


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    port, sock, cert, key, ca = sys.argv[1:6]
    Handler.socket_path = sock
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = Server(("127.0.0.1", int(port)), Handler)
    # The handshake happens in the connection's own thread (on first read), not in accept.
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    srv.serve_forever()


if __name__ == "__main__":
    main()
