"""Shared helpers of the rabbitmq_topology tests: the role's paths, its defaults, and the bad inputs of the issue.

Not a conftest.py: other roles' test directories have one, and `pytest roles/*/tests` imports them all.
"""

import copy
import importlib.util
from pathlib import Path

import yaml

ROLE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = ROLE_DIR.parent.parent


def load_defaults():
    with open(ROLE_DIR / "defaults" / "main.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_filter_module():
    spec = importlib.util.spec_from_file_location("topology_filters", ROLE_DIR / "filter_plugins" / "topology.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _binding_to_undeclared_exchange(topology, users):
    topology["bindings"].append({"source": "evnts", "destination": "order.events", "routing_key": "order.*"})


def _binding_to_undeclared_queue(topology, users):
    topology["bindings"].append({"source": "events", "destination": "order.evnts", "routing_key": "order.*"})


def _unknown_exchange_type(topology, users):
    topology["exchanges"][1]["type"] = "drect"


def _duplicate_name(topology, users):
    topology["queues"].append({"name": "jobs", "durable": True})


def _non_durable_quorum_queue(topology, users):
    topology["queues"].append({"name": "payments", "type": "quorum", "durable": False})


def _user_granted_unknown_vhost(topology, users):
    users[0]["permissions"].append({"vhost": "staging", "configure": "^$", "write": ".*", "read": ".*"})


# The bad inputs, each applied to the defaults, with the exact messages expected (defaults have 4
# exchanges, 9 queues and 8 bindings, so appended entries get index 4, 9 and 8).
BAD_INPUTS = {
    "binding_to_undeclared_exchange": (
        _binding_to_undeclared_exchange,
        ["bindings[8] (evnts -> order.events): source exchange 'evnts' is not declared in vhost '/'"],
    ),
    "binding_to_undeclared_queue": (
        _binding_to_undeclared_queue,
        ["bindings[8] (events -> order.evnts): destination queue 'order.evnts' is not declared in vhost '/'"],
    ),
    "unknown_exchange_type": (
        _unknown_exchange_type,
        ["exchanges[1] (notifications): unknown exchange type 'drect' (known: direct, topic, fanout, headers)"],
    ),
    "duplicate_name": (
        _duplicate_name,
        ["queues[9] (jobs): duplicate queue 'jobs' in vhost '/' (also queues[1])"],
    ),
    "non_durable_quorum_queue": (
        _non_durable_quorum_queue,
        ["queues[9] (payments): quorum queues must be durable (durable: false)"],
    ),
    "user_granted_unknown_vhost": (
        _user_granted_unknown_vhost,
        ["users[0] (warren).permissions[1]: vhost 'staging' is not declared in vhosts"],
    ),
}

# Everything at once: the appended bindings become [8] and [9], the appended queues [9] and [10].
ALL_AT_ONCE_ERRORS = [
    "exchanges[1] (notifications): unknown exchange type 'drect' (known: direct, topic, fanout, headers)",
    "queues[9] (jobs): duplicate queue 'jobs' in vhost '/' (also queues[1])",
    "queues[10] (payments): quorum queues must be durable (durable: false)",
    "bindings[8] (evnts -> order.events): source exchange 'evnts' is not declared in vhost '/'",
    "bindings[9] (events -> order.evnts): destination queue 'order.evnts' is not declared in vhost '/'",
    "users[0] (warren).permissions[1]: vhost 'staging' is not declared in vhosts",
]


def bad_topology(*names):
    """Defaults with the named bad inputs applied: (topology, users)."""
    defaults = load_defaults()
    topology = copy.deepcopy(defaults["rabbitmq_topology_definitions"])
    users = copy.deepcopy(defaults["rabbitmq_topology_users"])
    for name in names:
        BAD_INPUTS[name][0](topology, users)
    return topology, users
