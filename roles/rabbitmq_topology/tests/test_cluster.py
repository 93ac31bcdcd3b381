"""The topology on a cluster: rabbitmq_topology_queue_type's choice of quorum queues from 3 nodes, their generated
policies (at-least-once dead-lettering, the delivery limit), the refusal of quorum queues on fewer nodes, and the
stop message of a queue whose type would change (no broker; the playbook runs are the role's validation)."""

import sys

import pytest
from topology_cases import REPO_DIR, load_defaults, load_filter_module

sys.path.insert(0, str(REPO_DIR / "molecule" / "resources"))
from role_validation import failure_lines, run_role_validation

topology_filters = load_filter_module()
DEFAULTS = load_defaults()
TOPOLOGY = DEFAULTS["rabbitmq_topology_definitions"]
WORK_QUEUES = ("order.events", "jobs", "whatsapp.notifications")


def on_cluster(setting, nodes, topology=TOPOLOGY):
    queue_type = topology_filters.effective_queue_type(setting, nodes)
    return topology_filters.with_queue_type(topology, queue_type)


@pytest.mark.parametrize(
    ("setting", "nodes", "expected"),
    [
        ("auto", 1, "classic"),
        ("auto", 2, "classic"),
        ("auto", 3, "quorum"),
        ("auto", "5", "quorum"),
        ("classic", 3, "classic"),
        ("quorum", 1, "quorum"),
    ],
)
def test_auto_is_quorum_from_three_nodes(setting, nodes, expected):
    assert topology_filters.effective_queue_type(setting, nodes) == expected


def test_one_node_renders_exactly_as_before():
    # Today's single-node deployments: the same definitions, byte for byte, so a converge changes nothing.
    assert topology_filters.rendered(on_cluster("auto", 1)) == topology_filters.rendered(TOPOLOGY)


def test_three_nodes_make_every_queue_quorum_with_at_least_once_dead_lettering():
    definitions = topology_filters.rendered(on_cluster("auto", 3))
    assert {q["name"]: q["arguments"].get("x-queue-type") for q in definitions["queues"]} == {
        q["name"]: "quorum" for q in TOPOLOGY["queues"]
    }
    policies = {p["name"]: p["definition"] for p in definitions["policies"]}
    for queue in WORK_QUEUES:
        assert policies[f"warren.{queue}"] == {
            "dead-letter-exchange": "warren.dlx",
            "dead-letter-routing-key": queue,
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
            "delivery-limit": 20,
        }
        # Retries: the retry queue's expired messages go back to the work queue, at least once too.
        assert policies[f"warren.{queue}.retry"]["dead-letter-routing-key"] == queue
        assert policies[f"warren.{queue}.retry"]["dead-letter-strategy"] == "at-least-once"
    assert topology_filters.topology_errors(on_cluster("auto", 3)) == []


def test_a_users_policy_overrides_the_quorum_defaults_but_never_the_wiring():
    topology = {
        **TOPOLOGY,
        "policies": [{"name": "limit", "pattern": "^jobs$", "apply_to": "queues", "definition": {"delivery-limit": 5}}],
    }
    policies = {p["name"]: p for p in topology_filters.rendered(on_cluster("auto", 3, topology))["policies"]}
    assert policies["warren.jobs"]["definition"]["delivery-limit"] == 5
    assert policies["warren.jobs"]["definition"]["dead-letter-exchange"] == "warren.dlx"
    assert policies["warren.jobs"]["priority"] == 1


def test_queues_that_name_their_type_or_vhost_default_keep_it():
    topology = {
        "vhosts": [{"name": "/"}, {"name": "legacy", "default_queue_type": "classic"}],
        "queues": [{"name": "a", "type": "classic"}, {"name": "b", "vhost": "legacy"}, {"name": "c"}],
    }
    assert [q.get("type") for q in on_cluster("auto", 3, topology)["queues"]] == ["classic", None, "quorum"]


def test_quorum_on_fewer_than_three_nodes_is_explained_per_queue():
    errors = topology_filters.cluster_errors(on_cluster("quorum", 2), "quorum", 2)
    assert len(errors) == len(TOPOLOGY["queues"])
    assert errors[1] == (
        "queues[1] (jobs): a quorum queue, and the rabbitmq group has 2 node(s): a quorum queue keeps a copy on each "
        "node and needs a majority of them, so it needs 3 or more nodes to survive the loss of one (with 2, losing "
        "either stops it). Add nodes, make it classic (rabbitmq_topology_queue_type: auto or classic, or the "
        "queue's type), or accept it with rabbitmq_topology_quorum_min_nodes"
    )
    assert topology_filters.cluster_errors(on_cluster("quorum", 3), "quorum", 3) == []
    assert topology_filters.cluster_errors(on_cluster("quorum", 1), "quorum", 1, 1) == []
    assert topology_filters.cluster_errors(on_cluster("auto", 2), "auto", 2) == []


def test_an_unknown_queue_type_setting_is_refused():
    assert topology_filters.cluster_errors(TOPOLOGY, "qourum", 3) == [
        "rabbitmq_topology_queue_type: unknown value 'qourum' (known: auto, classic, quorum)"
    ]


def test_a_type_change_on_a_queue_holding_messages_names_both_types():
    definitions = topology_filters.rendered(on_cluster("auto", 3))
    broker = [
        {"name": "jobs", "vhost": "/", "durable": True, "auto_delete": False, "type": "classic", "arguments": {}}
        | {"messages": 7, "consumers": 0}
    ]
    (migration,) = topology_filters.queues_to_migrate(definitions, broker, [])
    assert topology_filters.migration_line(migration) == (
        "- vhost '/' queue 'jobs': type classic on the broker, quorum in the topology; 7 message(s), 0 consumer(s); "
        "arguments on the broker {}, in the topology {'x-queue-type': 'quorum'}"
    )


def run_on_group(tmp_path, hosts, **extra_vars):
    """The role's validation on localhost as the first of a rabbitmq group of `hosts` hosts (never contacted)."""
    inventory = tmp_path / "hosts.yml"
    names = ["localhost"] + [f"warren-broker-{n}" for n in range(2, hosts + 1)]
    inventory.write_text("all:\n  children:\n    rabbitmq:\n      hosts:\n" + "".join(f"        {n}:\n" for n in names))
    return run_role_validation(
        "rabbitmq_topology",
        tmp_path,
        {"rabbitmq_admin_password": "test-only-admin", "warren_amqp_password": "test-only-password", **extra_vars},
        inventory=inventory,
    )


def test_a_group_of_two_with_quorum_requested_is_refused_before_the_broker(tmp_path):
    result = run_on_group(tmp_path, 2, rabbitmq_topology_queue_type="quorum")
    lines = failure_lines(result)
    assert lines[0] == (
        f"Invalid topology (rabbitmq_topology_definitions, rabbitmq_topology_users): {len(TOPOLOGY['queues'])} error(s)"
    )
    assert lines[1].startswith("- queues[0] (order.events): a quorum queue, and the rabbitmq group has 2 node(s)")
    assert "failed=1 " in result.stdout


@pytest.mark.parametrize(("hosts", "setting"), [(2, "auto"), (3, "quorum")])
def test_auto_on_two_and_quorum_on_three_pass(tmp_path, hosts, setting):
    result = run_on_group(tmp_path, hosts, rabbitmq_topology_queue_type=setting)
    assert result.returncode == 0, result.stdout + result.stderr
