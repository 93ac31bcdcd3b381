"""The profile template rendered as the role renders it, then read by the worker's own config loader: the role's
broker settings arrive in the worker's [broker] table."""

import json
import sys
from pathlib import Path

import jinja2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "worker" / "src"))
from warren.config import load_config

ROLE_DIR = Path(__file__).resolve().parents[1]


def render_profile(tmp_path, **overrides):
    settings = {**yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text()), **overrides}
    settings["warren_worker_amqp_endpoints"] = ["amqp://127.0.0.1:5672", "amqp://mq-2:5672"]
    (tmp_path / "amqp-password").write_text("test-only\n")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE_DIR / "templates"), undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.get_template("profile.toml.j2").render(
        ansible_managed="managed by Ansible",
        item=settings["warren_worker_profiles"][0],
        __warren_worker_credentials_dir=str(tmp_path),
        __warren_worker_ca_file="",  # no amqps:// endpoint
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
