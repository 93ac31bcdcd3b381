"""warren_rabbitmq_users: the comparison of declared users with the broker's, and the module run as Ansible runs
it (arguments file, check mode, diff) against a management API served on loopback."""

import base64
import hashlib
import importlib.util
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parents[1] / "warren_rabbitmq_users.py"
_spec = importlib.util.spec_from_file_location("warren_rabbitmq_users", MODULE_PATH)
users_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_module)
compare = users_module.compare
password_matches = users_module.password_matches


def rabbit_hash(password, salt=b"\x01\x02\x03\x04"):
    """What RabbitMQ stores for rabbit_password_hashing_sha256."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


WARREN = {
    "name": "warren",
    "password": "s3cret",
    "tags": [],
    "permissions": [{"vhost": "/", "configure": "^$", "write": ".*", "read": ".*"}],
}
BROKER_USERS = [
    {"name": "admin", "password_hash": rabbit_hash("admin-pass"), "hashing_algorithm": "rabbit_password_hashing_sha256",
     "tags": ["administrator"]},
    {"name": "warren", "password_hash": rabbit_hash("s3cret"), "hashing_algorithm": "rabbit_password_hashing_sha256",
     "tags": []},
]  # fmt: skip
BROKER_PERMISSIONS = [
    {"user": "admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
    {"user": "warren", "vhost": "/", "configure": "^$", "write": ".*", "read": ".*"},
]


def differing(users, current_users=BROKER_USERS, current_permissions=BROKER_PERMISSIONS):
    return compare(users, current_users, current_permissions)[0]


def test_password_matches_rabbitmq_hashes():
    assert password_matches("s3cret", rabbit_hash("s3cret"), "rabbit_password_hashing_sha256")
    assert not password_matches("other", rabbit_hash("s3cret"), "rabbit_password_hashing_sha256")
    assert not password_matches("s3cret", rabbit_hash("s3cret"), "unknown_algorithm")
    assert not password_matches("s3cret", "not base64!", "rabbit_password_hashing_sha256")
    assert not password_matches("s3cret", "", "rabbit_password_hashing_sha256")


def test_user_in_sync_needs_nothing():
    assert differing([WARREN]) == []


@pytest.mark.parametrize(
    "change",
    [
        {"password": "rotated"},
        {"tags": ["monitoring"]},
        {"permissions": [{"vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]},
        {"permissions": [*WARREN["permissions"], {"vhost": "other", "read": ".*"}]},
        {"name": "newcomer"},
    ],
)
def test_any_difference_names_the_user(change):
    wanted = {**WARREN, **change}
    assert differing([wanted]) == [wanted["name"]]


def test_extra_permission_on_the_broker_is_a_difference():
    extra = [*BROKER_PERMISSIONS, {"user": "warren", "vhost": "other", "configure": "", "write": "", "read": ""}]
    assert differing([WARREN], current_permissions=extra) == ["warren"]


def test_absent_users_only_when_they_exist():
    assert differing([{"name": "warren", "state": "absent"}, {"name": "ghost", "state": "absent"}]) == ["warren"]


def test_tags_as_a_comma_string_from_older_brokers():
    older = [{**BROKER_USERS[1], "tags": "monitoring,management"}]
    assert differing([{**WARREN, "tags": ["management", "monitoring"]}], current_users=older) == []


def test_the_administrator_as_the_rabbitmq_role_declares_it():
    admin = {
        "name": "admin",
        "password": "admin-pass",
        "tags": ["administrator"],
        "permissions": [{"vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
    }
    assert differing([admin]) == []
    assert differing([{**admin, "tags": ["management"]}]) == ["admin"]


class ManagementApi(BaseHTTPRequestHandler):
    """/api/users and /api/permissions for the administrator admin:admin-pass; 401 for any other login."""

    def do_GET(self):
        expected = "Basic " + base64.b64encode(b"admin:admin-pass").decode()
        answers = {"/api/users": BROKER_USERS, "/api/permissions": BROKER_PERMISSIONS}
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(answers[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ManagementApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join(timeout=10)


def run_module(tmp_path, port, users, login_password="admin-pass"):
    """The module as Ansible runs it: its arguments in a file, in check mode with --diff."""
    args = {
        "users": users,
        "login_port": port,
        "login_user": "admin",
        "login_password": login_password,
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(MODULE_PATH), str(args_file)], capture_output=True, text=True, timeout=60, check=False
    )
    return json.loads(result.stdout)


def test_module_names_only_the_users_that_differ_and_shows_the_diff(tmp_path, api_port):
    rotated = {**WARREN, "password": "rotated", "tags": ["monitoring"]}
    result = run_module(tmp_path, api_port, [rotated, {"name": "ghost", "state": "absent"}])
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["users"] == ["warren"]
    assert result["diff"]["before"]["warren"]["tags"] == []
    assert result["diff"]["after"]["warren"] == {
        "state": "present",
        "password": "(changed)",
        "tags": ["monitoring"],
        "permissions": [{"vhost": "/", "configure": "^$", "write": ".*", "read": ".*"}],
    }
    assert "rotated" not in json.dumps(result)


def test_module_in_sync_has_no_diff(tmp_path, api_port):
    result = run_module(tmp_path, api_port, [WARREN])
    assert result["users"] == [] and "diff" not in result


def test_refused_login_applies_every_user(tmp_path, api_port):
    result = run_module(tmp_path, api_port, [WARREN, {"name": "guest", "state": "absent"}], login_password="wrong")
    assert not result.get("failed"), result
    assert result["users"] == ["warren", "guest"]


def test_unreachable_api_fails_with_the_url(tmp_path):
    # A loopback port nothing listens on once the socket is closed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_module(tmp_path, port, [WARREN])
    assert result["failed"] is True
    assert f"GET http://127.0.0.1:{port}/api/users" in result["msg"]
