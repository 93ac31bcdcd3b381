"""The profile template rendered as the role renders it, then read by the worker's own config loader: the role's
broker settings arrive in the worker's [broker] table."""

import json
import sys
from pathlib import Path

import jinja2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "worker" / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from certificates import cert_pem, issue, key_pem
from warren.config import load_config

ROLE_DIR = Path(__file__).resolve().parents[1]


def render_profile(tmp_path, **overrides):
    defaults = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())
    # What Ansible makes of the default when the inventory has no warren_tls_verify_peer.
    settings = {**defaults, "warren_worker_tls_client_cert": False, **overrides}
    settings["warren_worker_amqp_endpoints"] = ["amqp://127.0.0.1:5672", "amqp://mq-2:5672"]
    (tmp_path / "amqp-password").write_text("test-only\n")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE_DIR / "templates"), undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.get_template("profile.toml.j2").render(
        ansible_managed="managed by Ansible",
        item=settings["warren_worker_profiles"][0],
        __warren_worker_credentials_dir=str(tmp_path),
        __warren_worker_ca_file="",  # no amqps:// endpoint
        __warren_worker_client_cert_file=str(tmp_path / "client.crt"),
        __warren_worker_client_key_file=str(tmp_path / "client.key"),
        **settings,
    )
    path = tmp_path / "orders.toml"
    path.write_text(text)
    return load_config(path, environ={})


def test_the_broker_settings_reach_the_worker(tmp_path):
    broker = render_profile(tmp_path, warren_worker_vhost="/orders", warren_worker_amqp_heartbeat=30).broker
    assert broker.endpoints == ("amqp://127.0.0.1:5672", "amqp://mq-2:5672")
    assert (broker.vhost, broker.username, broker.password) == ("/orders", "warren", "test-only")
    assert broker.heartbeat == 30


def test_the_default_heartbeat_is_the_workers_and_zero_turns_it_off(tmp_path):
    assert render_profile(tmp_path).broker.heartbeat == 10
    assert render_profile(tmp_path, warren_worker_amqp_heartbeat=0).broker.heartbeat == 0


def test_without_mutual_tls_the_profile_names_no_client_certificate(tmp_path):
    broker = render_profile(tmp_path).broker
    assert (broker.cert_file, broker.key_file) == (None, None)


def test_with_mutual_tls_the_profile_names_the_hosts_client_certificate_and_key(tmp_path):
    # The worker's loader opens them: they must be a real pair.
    key, cert = issue("w1", issue("Deployment CA"))
    (tmp_path / "client.crt").write_text(cert_pem(cert))
    (tmp_path / "client.key").write_text(key_pem(key))
    broker = render_profile(tmp_path, warren_worker_tls_client_cert=True).broker
    assert (broker.cert_file, broker.key_file) == (str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
