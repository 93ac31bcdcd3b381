"""Loaded by every Python process the tests start (PYTHONPATH points here): cut the network, fake Google.

1. Sockets: any connect or name lookup for something other than loopback raises, and is recorded.
2. requests: HTTPAdapter.send records every request in $FAKEGCP_LOG (one JSON line each) and answers
   Google's OAuth token endpoint, the Compute Engine aggregatedList of instances (from the JSON file in
   $FAKEGCP_INSTANCES) and any other Compute GET with 404; anything else (a create, a delete) raises, so a
   playbook stops at its first write. Nothing reaches a real server.
Inactive unless FAKEGCP_LOG is set, so it cannot change anything outside the tests.
"""

import contextlib
import json
import os
import socket

_LOG = os.environ.get("FAKEGCP_LOG")
_LOOPBACK = ("127.", "::1", "localhost")


def _record(entry):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


if _LOG:
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _host(address):
        return str(address[0]) if isinstance(address, tuple) else str(address)

    def _guard(host):
        if not host.startswith(_LOOPBACK) and not host.startswith("/"):
            _record({"blocked": host})
            raise OSError(f"fakegcp: network access to {host} blocked by the test")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _guard(_host(address))
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _guard(_host(address))
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        _guard(str(host))
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo

    try:
        from urllib.parse import parse_qs, urlsplit

        import requests
        from requests.adapters import HTTPAdapter
        from requests.models import Response
    except ImportError:  # a Python without requests (not the controller venv): only the guard applies
        requests = None

    if requests is not None:

        def _respond(request, status, body):
            response = Response()
            response.status_code = status
            response._content = json.dumps(body).encode()
            response.headers["Content-Type"] = "application/json"
            response.url = request.url
            response.request = request
            return response

        def send(self, request, **kwargs):
            url = urlsplit(request.url)
            body = request.body
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            # A form-encoded body (the token request) is not JSON: keep the text.
            with contextlib.suppress(ValueError):
                body = json.loads(body) if body else None
            _record(
                {
                    "method": request.method,
                    "host": url.hostname,
                    "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "body": body,
                }
            )
            if url.hostname == "oauth2.googleapis.com" and url.path == "/token":
                return _respond(
                    request, 200, {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
                )
            if url.hostname == "www.googleapis.com" and url.path.endswith("/aggregated/instances"):
                with open(os.environ["FAKEGCP_INSTANCES"], encoding="utf-8") as handle:
                    return _respond(request, 200, json.load(handle))
            if request.method == "GET" and url.path.startswith("/compute/v1/projects/"):
                # Any single resource: "not found", so a module goes on to create it (and is stopped below).
                return _respond(request, 404, {"error": {"code": 404, "message": "fakegcp: not found"}})
            raise OSError(f"fakegcp: no fake for {request.method} {request.url}")

        HTTPAdapter.send = send
