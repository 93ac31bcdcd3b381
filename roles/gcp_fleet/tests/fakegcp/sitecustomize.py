"""Loaded by every Python process the tests start (PYTHONPATH points here): cut the network, fake Google.

1. Sockets: any connect or name lookup for something other than loopback raises, and is recorded.
2. requests: HTTPAdapter.send records every request in $FAKEGCP_LOG (one JSON line each) and answers
   Google's OAuth token endpoint, the Compute Engine aggregatedList of instances (from the JSON file in
   $FAKEGCP_INSTANCES) and any other Compute GET with 404; anything else (a create, a delete) raises, so a
   playbook stops at its first write. Nothing reaches a real server.
3. With $FAKEGCP_STATE (a directory) set, Compute Engine keeps resources there instead: a POST to a collection
   stores the body (an instance gets status RUNNING and internal/external IPs), a GET returns what is stored,
   a DELETE removes it, an action (setLabels, ...) is accepted; each write answers with a finished operation.
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
            if os.environ.get("FAKEGCP_STATE") and url.path.startswith("/compute/v1/projects/"):
                return _stateful(request, url, body)
            if request.method == "GET" and url.path.startswith("/compute/v1/projects/"):
                # Any single resource: "not found", so a module goes on to create it (and is stopped below).
                return _respond(request, 404, {"error": {"code": 404, "message": "fakegcp: not found"}})
            raise OSError(f"fakegcp: no fake for {request.method} {request.url}")

        _KINDS = {"networks": "network", "subnetworks": "subnetwork", "firewalls": "firewall", "instances": "instance"}

        def _stored(path):
            return os.path.join(os.environ["FAKEGCP_STATE"], path.strip("/").replace("/", "__") + ".json")

        def _operation(request, path):
            link = f"https://compute.googleapis.com{path}"
            return _respond(
                request, 200, {"kind": "compute#operation", "name": "op", "status": "DONE", "targetLink": link}
            )

        def _stateful(request, url, body):
            path = url.path.rstrip("/")
            segments = path.split("/")
            if request.method == "POST" and segments[-1] in _KINDS:
                resource = dict(body or {})
                resource_path = f"{path}/{resource['name']}"
                resource.update(
                    kind=f"compute#{_KINDS[segments[-1]]}", selfLink=f"https://compute.googleapis.com{resource_path}"
                )
                if segments[-1] == "instances":
                    number = len([n for n in os.listdir(os.environ["FAKEGCP_STATE"]) if "__instances__" in n])
                    resource["status"] = "RUNNING"
                    for interface in resource.get("networkInterfaces", []):
                        interface["networkIP"] = f"10.42.0.{2 + number}"
                        for config in interface.get("accessConfigs", []):
                            config["natIP"] = f"203.0.113.{10 + number}"
                with open(_stored(resource_path), "w", encoding="utf-8") as handle:
                    json.dump(resource, handle)
                return _operation(request, resource_path)
            if request.method == "POST":  # an action on a resource: .../instances/<name>/setLabels
                return _operation(request, "/".join(segments[:-1]))
            if request.method == "DELETE":
                if os.path.exists(_stored(path)):
                    os.remove(_stored(path))
                return _operation(request, path)
            if request.method == "GET" and segments[-1] in _KINDS:  # a list (gcp_compute_instance_info)
                prefix = path.strip("/").replace("/", "__") + "__"
                items = []
                for name in sorted(os.listdir(os.environ["FAKEGCP_STATE"])):
                    if name.startswith(prefix) and "__" not in name[len(prefix) :]:
                        with open(os.path.join(os.environ["FAKEGCP_STATE"], name), encoding="utf-8") as handle:
                            items.append(json.load(handle))
                return _respond(request, 200, {"items": items})
            if request.method == "GET" and os.path.exists(_stored(path)):
                with open(_stored(path), encoding="utf-8") as handle:
                    return _respond(request, 200, json.load(handle))
            if request.method == "GET":
                return _respond(request, 404, {"error": {"code": 404, "message": "fakegcp: not found"}})
            raise OSError(f"fakegcp: no fake for {request.method} {request.url}")

        HTTPAdapter.send = send
