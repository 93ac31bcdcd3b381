"""Unit tests of the topology validation filter and of the definitions template (no broker, no playbook)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import add_all_plugin_dirs
from ansible.template import Templar, trust_as_template
from topology_cases import (
    ALL_AT_ONCE_ERRORS,
    BAD_INPUTS,
    ROLE_DIR,
    bad_topology,
    load_defaults,
    load_filter_module,
)

topology_filters = load_filter_module()
errors_of = topology_filters.topology_errors


@pytest.fixture(name="defaults")
def fixture_defaults():
    return load_defaults()


def minimal(**sections):
    topology = {"vhosts": [{"name": "/"}], "exchanges": [], "queues": [], "bindings": [], "policies": []}
    topology.update(sections)
    return topology


def test_defaults_are_valid(defaults):
    assert errors_of(defaults["rabbitmq_topology_definitions"], defaults["rabbitmq_topology_users"]) == []


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_of_the_issue_is_reported(name):
    topology, users = bad_topology(name)
    assert errors_of(topology, users) == BAD_INPUTS[name][1]


def test_every_bad_input_is_reported_at_once():
    topology, users = bad_topology(*BAD_INPUTS)
    assert errors_of(topology, users) == ALL_AT_ONCE_ERRORS


def test_quorum_queue_rejects_auto_delete_and_exclusive():
    topology = minimal(queues=[{"name": "q", "type": "quorum", "auto_delete": True, "exclusive": True}])
    assert errors_of(topology) == [
        (
            "queues[0] (q): 'exclusive' is not supported: exclusive queues belong to one connection and cannot be "
            "declared in definitions"
        ),
        "queues[0] (q): quorum queues cannot be auto_delete",
    ]


def test_unknown_queue_type_and_contradicting_x_queue_type():
    topology = minimal(
        queues=[
            {"name": "a", "type": "stream"},
            {"name": "b", "type": "classic", "arguments": {"x-queue-type": "quorum"}},
        ]
    )
    assert errors_of(topology) == [
        "queues[0] (a): unknown queue type 'stream' (known: classic, quorum)",
        "queues[1] (b): arguments x-queue-type 'quorum' contradicts type 'classic' (set type only)",
    ]


def test_duplicates_of_every_kind():
    topology = minimal(
        vhosts=[{"name": "/"}, {"name": "/"}],
        exchanges=[{"name": "e", "type": "topic"}, {"name": "e", "type": "direct"}],
        queues=[{"name": "q"}, {"name": "q"}],
        bindings=[{"source": "e", "destination": "q", "routing_key": "k"}] * 2,
        policies=[{"name": "p", "pattern": ".*", "definition": {"max-length": 1}}] * 2,
    )
    users = [{"name": "u", "password": "x"}, {"name": "u", "password": "y"}]
    assert errors_of(topology, users) == [
        "vhosts[1] (/): duplicate vhost '/' (also vhosts[0])",
        "exchanges[1] (e): duplicate exchange 'e' in vhost '/' (also exchanges[0])",
        "queues[1] (q): duplicate queue 'q' in vhost '/' (also queues[0])",
        "bindings[1] (e -> q): duplicate binding (same as bindings[0])",
        "policies[1] (p): duplicate policy 'p' in vhost '/' (also policies[0])",
        "users[1] (u): duplicate user 'u' (also users[0])",
    ]


def test_same_names_in_different_vhosts_are_fine():
    topology = minimal(
        vhosts=[{"name": "/"}, {"name": "staging"}],
        exchanges=[{"name": "e", "type": "topic"}, {"name": "e", "type": "topic", "vhost": "staging"}],
        queues=[{"name": "q"}, {"name": "q", "vhost": "staging"}],
        bindings=[{"source": "e", "destination": "q"}, {"source": "e", "destination": "q", "vhost": "staging"}],
    )
    assert errors_of(topology) == []


def test_entities_in_undeclared_vhost_and_cross_vhost_references():
    topology = minimal(
        exchanges=[{"name": "e", "type": "topic", "vhost": "other"}],
        queues=[{"name": "q", "vhost": "other"}],
        bindings=[{"source": "e", "destination": "q"}],
        policies=[{"name": "p", "vhost": "other", "pattern": ".*", "definition": {"max-length": 1}}],
    )
    assert errors_of(topology) == [
        "exchanges[0] (e): vhost 'other' is not declared in vhosts",
        "queues[0] (q): vhost 'other' is not declared in vhosts",
        "bindings[0] (e -> q): source exchange 'e' is not declared in vhost '/'",
        "bindings[0] (e -> q): destination queue 'q' is not declared in vhost '/'",
        "policies[0] (p): vhost 'other' is not declared in vhosts",
    ]


def test_exchange_to_exchange_bindings_and_builtin_exchanges():
    topology = minimal(
        exchanges=[{"name": "e", "type": "fanout"}],
        queues=[{"name": "q"}],
        bindings=[
            {"source": "amq.topic", "destination": "e", "destination_type": "exchange"},
            {"source": "e", "destination": "missing", "destination_type": "exchange"},
            {"source": "e", "destination": "q", "destination_type": "queues"},
            {"source": "", "destination": "q"},
        ],
    )
    assert errors_of(topology) == [
        "bindings[1] (e -> missing): destination exchange 'missing' is not declared in vhost '/'",
        "bindings[2] (e -> q): unknown destination_type 'queues' (known: queue, exchange)",
        (
            "bindings[3] ( -> q): the default exchange '' cannot be bound (it routes to the queue named by the "
            "routing key already)"
        ),
    ]


def test_dead_letter_exchanges_must_be_declared():
    topology = minimal(
        exchanges=[{"name": "dlx", "type": "direct"}],
        queues=[
            {"name": "ok1", "dead_letter_exchange": "dlx"},
            {"name": "ok2", "arguments": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "ok1"}},
            {"name": "bad1", "dead_letter_exchange": "dlxx"},
            {"name": "bad2", "arguments": {"x-dead-letter-exchange": "nowhere"}},
            {"name": "bad3", "dead_letter_exchange": "dlx", "arguments": {"x-dead-letter-exchange": "amq.direct"}},
            {"name": "bad4", "dead_letter_routing_key": "x"},
        ],
    )
    assert errors_of(topology) == [
        "queues[2] (bad1): dead-letter exchange 'dlxx' (dead_letter_exchange) is not declared in vhost '/'",
        (
            "queues[3] (bad2): dead-letter exchange 'nowhere' (arguments x-dead-letter-exchange) is not declared "
            "in vhost '/'"
        ),
        "queues[4] (bad3): dead_letter_exchange 'dlx' contradicts arguments x-dead-letter-exchange 'amq.direct'",
        "queues[5] (bad4): dead_letter_routing_key needs dead_letter_exchange",
    ]


def test_missing_keys_wrong_types_and_unknown_keys():
    topology = minimal(
        vhosts=[{"name": "/"}, "staging"],
        exchanges=[{"name": 42, "type": "topic"}, {"name": "e"}],
        queues=[{"name": "q", "durable": "yes", "duarble": True}],
        bindings=[{"destination": "q"}],
        policies=[{"name": "p", "pattern": "(", "definition": {}, "priority": "1"}],
    )
    topology["extra"] = []
    assert errors_of(topology) == [
        "rabbitmq_topology_definitions: unknown key 'extra' (allowed: vhosts, exchanges, queues, bindings, policies)",
        "vhosts[1]: must be a mapping, got 'staging'",
        "exchanges[0]: 'name' must be a string, got 42",
        "exchanges[1] (e): 'type' is required",
        (
            "queues[0] (q): unknown key 'duarble' (allowed: name, vhost, type, durable, auto_delete, arguments, "
            "dead_letter_exchange, dead_letter_routing_key)"
        ),
        "queues[0] (q): 'durable' must be a boolean, got 'yes'",
        "bindings[0] (? -> q): 'source' is required",
        "policies[0] (p): 'priority' must be an integer, got '1'",
        (
            "policies[0] (p): pattern '(' is not a valid regular expression (missing ), unterminated subpattern at "
            "position 0)"
        ),
        "policies[0] (p): definition must not be empty",
    ]


def test_not_a_mapping_and_sections_not_lists():
    assert errors_of(["queues"]) == [
        (
            "rabbitmq_topology_definitions must be a mapping with keys vhosts, exchanges, queues, bindings, policies, "
            "got ['queues']"
        )
    ]
    assert errors_of({"vhosts": [{"name": "/"}], "queues": {"name": "q"}}) == [
        "queues: must be a list, got {'name': 'q'}"
    ]
    # An empty YAML key (None) is an empty section.
    assert errors_of({"vhosts": [{"name": "/"}], "queues": None}) == []


def test_reserved_names():
    topology = minimal(exchanges=[{"name": "amq.mine", "type": "direct"}], queues=[{"name": "amq.q"}])
    assert errors_of(topology) == [
        "exchanges[0] (amq.mine): exchange name 'amq.mine' is reserved by RabbitMQ (the default exchange or 'amq.*')",
        "queues[0] (amq.q): queue name 'amq.q' is reserved by RabbitMQ (empty or 'amq.*')",
    ]


def test_extra_exchange_types_from_plugins():
    topology = minimal(exchanges=[{"name": "delayed", "type": "x-delayed-message"}])
    assert errors_of(topology) != []
    assert errors_of(topology, None, ["x-delayed-message"]) == []


def test_user_errors_never_echo_the_password():
    users = [
        {"name": "a", "password": "", "tags": "administrator"},
        {"name": "b", "state": "absent"},
        {
            "name": "c",
            "password": "hunter2-secret",
            "permisions": [],
            "permissions": [
                {"vhost": "/", "configure": "^$", "write": ".*", "read": ".*"},
                {"vhost": "/", "write": "a b"},
            ],
        },
        {"password": "other-secret"},
    ]
    errors = errors_of(minimal(), users)
    assert errors == [
        (
            "users[0] (a): password is empty or not a string: set it from Ansible Vault (the default user 'warren' "
            "takes rabbitmq_topology_app_password, which defaults to warren_amqp_password)"
        ),
        "users[0] (a): 'tags' must be a list of strings",
        "users[2] (c): unknown key 'permisions' (allowed: name, password, tags, permissions, state)",
        "users[2] (c).permissions[1]: duplicate permissions for vhost '/' (also permissions[0])",
        "users[2] (c).permissions[1]: write regex 'a b' contains a space, which rabbitmq_user cannot pass",
        "users[3]: 'name' is required and must be a non-empty string",
    ]
    assert not any("secret" in error for error in errors)


def test_module_permissions():
    assert topology_filters.module_permissions([{"vhost": "v", "write": ".*"}, {"read": "x"}]) == [
        {"vhost": "v", "configure_priv": "^$", "write_priv": ".*", "read_priv": "^$"},
        {"vhost": "/", "configure_priv": "^$", "write_priv": "^$", "read_priv": "x"},
    ]


def render_text(topology, queue_type="auto", cluster_size=1):
    """Render templates/definitions.json.j2 with Ansible's templating engine, the role's filters and its
    vars/main.yml (the queue type applied to the topology), as the template module does."""
    add_all_plugin_dirs(str(ROLE_DIR))
    source = (ROLE_DIR / "templates" / "definitions.json.j2").read_text(encoding="utf-8")
    role_vars = yaml.safe_load((ROLE_DIR / "vars" / "main.yml").read_text(encoding="utf-8"))
    variables = {
        "rabbitmq_topology_definitions": topology,
        "rabbitmq_topology_queue_type": queue_type,
        "rabbitmq_topology_cluster_size": cluster_size,
        **{name: trust_as_template(value) for name, value in role_vars.items()},
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(source))


def render(topology, **settings):
    return json.loads(render_text(topology, **settings))


def test_template_renders_the_default_topology(defaults):
    definitions = render(defaults["rabbitmq_topology_definitions"])
    assert set(definitions) == {"warren_managed", "vhosts", "exchanges", "queues", "bindings", "policies"}
    assert definitions["vhosts"] == [{"name": "/"}]

    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    assert {name: e["type"] for name, e in exchanges.items()} == {
        "events": "topic",
        "notifications": "direct",
        "warren.retry": "direct",
        "warren.dlx": "direct",
    }
    for exchange in exchanges.values():
        assert exchange == {
            **exchange,
            "vhost": "/",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }

    queues = {q["name"]: q for q in definitions["queues"]}
    work_queues = ["order.events", "jobs", "whatsapp.notifications"]
    assert set(queues) == {f"{q}{suffix}" for q in work_queues for suffix in ("", ".retry", ".dlq")}
    for queue in queues.values():
        assert (queue["vhost"], queue["durable"], queue["auto_delete"]) == ("/", True, False)
        assert "x-queue-type" not in queue["arguments"]
        # No arguments at all: the learning path's plain `declare queue name=order.events durable=true` is equivalent.
        assert queue["arguments"] == {}

    # The dead-letter wiring is in one generated policy per queue, matching that queue's name only.
    policies = {p["name"]: p for p in definitions["policies"]}
    expected = {f"warren.{q}": ("warren.dlx", q) for q in work_queues} | {
        f"warren.{q}.retry": ("", q) for q in work_queues
    }
    assert set(policies) == set(expected)
    for name, (exchange, routing_key) in expected.items():
        queue = name.removeprefix("warren.")
        assert policies[name] == {
            "name": name,
            "vhost": "/",
            "pattern": "^" + queue.replace(".", "\\.") + "$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {"dead-letter-exchange": exchange, "dead-letter-routing-key": routing_key},
        }

    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}
    assert bindings == {
        ("events", "order.events", "order.*"),
        ("notifications", "whatsapp.notifications", "whatsapp"),
        *{("warren.retry", f"{q}.retry", q) for q in work_queues},
        *{("warren.dlx", f"{q}.dlq", q) for q in work_queues},
    }
    assert len(definitions["bindings"]) == len(bindings)
    for binding in definitions["bindings"]:
        assert (binding["vhost"], binding["destination_type"], binding["arguments"]) == ("/", "queue", {})


def test_template_renders_quorum_queues_policies_and_overrides():
    topology = minimal(
        vhosts=[{"name": "/"}, {"name": "staging"}],
        exchanges=[
            {
                "name": "dlx",
                "type": "direct",
                "vhost": "staging",
                "durable": False,
                "internal": True,
                "arguments": {"alternate-exchange": "amq.fanout"},
            }
        ],
        queues=[
            {
                "name": "qq",
                "vhost": "staging",
                "type": "quorum",
                "dead_letter_exchange": "dlx",
                "dead_letter_routing_key": "dead",
                "arguments": {"x-delivery-limit": 5},
            },
            {"name": "tmp", "durable": False, "auto_delete": True},
        ],
        bindings=[
            {
                "source": "amq.topic",
                "destination": "dlx",
                "destination_type": "exchange",
                "vhost": "staging",
                "routing_key": "#",
                "arguments": {"x-match": "any"},
            }
        ],
        policies=[
            {
                "name": "cap",
                "vhost": "staging",
                "pattern": "^qq$",
                "apply_to": "queues",
                "priority": 3,
                "definition": {"max-length": 1000, "overflow": "reject-publish"},
            }
        ],
    )
    assert errors_of(topology) == []
    definitions = render(topology)
    assert definitions["vhosts"] == [{"name": "/"}, {"name": "staging"}]
    assert definitions["exchanges"] == [
        {
            "name": "dlx",
            "vhost": "staging",
            "type": "direct",
            "durable": False,
            "auto_delete": False,
            "internal": True,
            "arguments": {"alternate-exchange": "amq.fanout"},
        }
    ]
    assert definitions["queues"] == [
        {
            "name": "qq",
            "vhost": "staging",
            "durable": True,
            "auto_delete": False,
            # Quorum queues keep x-queue-type: RabbitMQ has no other way to choose the type on 3.10.
            "arguments": {"x-delivery-limit": 5, "x-queue-type": "quorum"},
        },
        {"name": "tmp", "vhost": "/", "durable": False, "auto_delete": True, "arguments": {}},
    ]
    assert definitions["bindings"] == [
        {
            "source": "amq.topic",
            "vhost": "staging",
            "destination": "dlx",
            "destination_type": "exchange",
            "routing_key": "#",
            "arguments": {"x-match": "any"},
        }
    ]
    assert definitions["policies"] == [
        {
            "name": "cap",
            "vhost": "staging",
            "pattern": "^qq$",
            "apply-to": "queues",
            "priority": 3,
            "definition": {"max-length": 1000, "overflow": "reject-publish"},
        },
        # The user's policy that matches qq, merged with qq's wiring one priority above it, over the quorum
        # queue's own defaults (at-least-once dead-lettering and the delivery limit backstop).
        {
            "name": "warren.qq",
            "vhost": "staging",
            "pattern": "^qq$",
            "apply-to": "queues",
            "priority": 4,
            "definition": {
                "dead-letter-strategy": "at-least-once",
                "delivery-limit": 20,
                "max-length": 1000,
                "overflow": "reject-publish",
                "dead-letter-exchange": "dlx",
                "dead-letter-routing-key": "dead",
            },
        },
    ]


# Renders the default topology in a fresh interpreter and writes the bytes to stdout.
RENDER_IN_A_NEW_PROCESS = """
import sys
sys.path.insert(0, sys.argv[1])
import test_filter, topology_cases
topology = topology_cases.load_defaults()["rabbitmq_topology_definitions"]
sys.stdout.buffer.write(test_filter.render_text(topology).encode("utf-8"))
"""


def test_template_renders_the_same_bytes_in_every_process(defaults):
    """Same input, same bytes, in this process and across processes: the template task (and so the import) must not
    change on a second run. Each ansible-playbook run is a new interpreter with its own string hash seed, so
    anything ordered by hash (a set, a filter built on one) would differ between runs but not within one."""
    topology = defaults["rabbitmq_topology_definitions"]
    assert render_text(copy.deepcopy(topology)) == render_text(copy.deepcopy(topology))
    rendered = {}
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", RENDER_IN_A_NEW_PROCESS, str(Path(__file__).resolve().parent)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        rendered[seed] = result.stdout
    assert rendered["1"] == rendered["2"]
    assert rendered["1"] == render_text(copy.deepcopy(topology)).encode("utf-8")
