#!/usr/bin/env python3
"""Post a large body to fiscald with the standard library's http.client, as an ordinary
POS client would, and print what the client saw as one JSON object:

    {"status": 413, "body": {...}, "error": null, "reused": null}

or {"status": null, "error": "BrokenPipeError: ..."} when the request or the response failed.
Used by tests/e2e_early_answers.rs; stdlib only.
"""

import argparse
import http.client
import json
import socket
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: only `connect` differs."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unix", help="the API's Unix socket")
    p.add_argument("--tcp", help="HOST:PORT of the API's loopback listener")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--size", type=int, required=True, help="body size in bytes")
    p.add_argument("--path", default="/v1/receipts")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument(
        "--then-get",
        help="after the answer, GET this path on the same connection (keep-alive check)",
    )
    a = p.parse_args()
    if a.unix:
        conn = UnixHTTPConnection(a.unix, a.timeout)
    else:
        host, port = a.tcp.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=a.timeout)
    headers = {"Content-Type": "application/json", "Idempotency-Key": "early-answers-1"}
    if a.token:
        headers["Authorization"] = "Bearer " + a.token
    # Valid JSON of the given size: a long name in one line.
    head, tail = b'{"lines": [{"name": "', b'"}]}'
    body = head + b"x" * max(0, a.size - len(head) - len(tail)) + tail
    out = {"status": None, "body": None, "error": None, "reused": None}
    try:
        conn.request("POST", a.path, body=body, headers=headers)
        resp = conn.getresponse()
        out["status"] = resp.status
        raw = resp.read()
        try:
            out["body"] = json.loads(raw)
        except ValueError:
            out["body"] = raw.decode("utf-8", "replace")
        if a.then_get:
            # http.client reconnects on its own when the server closed; detect that.
            before = conn.sock
            get_headers = {"Authorization": "Bearer " + a.token} if a.token else {}
            conn.request("GET", a.then_get, headers=get_headers)
            again = conn.getresponse()
            again.read()
            out["reused"] = {"status": again.status, "same_socket": conn.sock is before}
    except (OSError, http.client.HTTPException) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
