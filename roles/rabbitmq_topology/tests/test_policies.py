"""Dead-letter wiring as generated policies: how they combine with the user's policies, the conflicts validation
reports, and which existing queues a converge must migrate (no broker, no playbook)."""

import copy

import pytest
from topology_cases import load_defaults, load_filter_module

topology_filters = load_filter_module()
errors_of = topology_filters.topology_errors
rendered = topology_filters.rendered
queues_to_migrate = topology_filters.queues_to_migrate


def topology(queues, policies=(), vhosts=("/",)):
    return {
        "vhosts": [{"name": name} for name in vhosts],
        "exchanges": [{"name": "dlx", "type": "direct"}],
        "queues": list(queues),
        "bindings": [],
        "policies": list(policies),
    }


def generated(definitions):
    return {p["name"]: p for p in definitions["policies"] if p["name"].startswith("warren.")}


def test_the_winning_user_policy_is_merged_one_priority_above():
    policies = [
        {"name": "low", "pattern": "^work", "priority": 1, "definition": {"max-length": 10}},
        {"name": "high", "pattern": "^work$", "priority": 5, "definition": {"message-ttl": 1000}},
        # Not for queues, or in another vhost: RabbitMQ would not apply them to /'s work queue.
        {"name": "exchanges-only", "pattern": ".*", "apply_to": "exchanges", "priority": 9, "definition": {"x": 1}},
        {"name": "elsewhere", "vhost": "other", "pattern": ".*", "priority": 9, "definition": {"max-length": 1}},
    ]
    definitions = topology([{"name": "work", "dead_letter_exchange": "dlx"}], policies, vhosts=("/", "other"))
    assert errors_of(definitions) == []
    assert generated(rendered(definitions)) == {
        "warren.work": {
            "name": "warren.work",
            "vhost": "/",
            "pattern": "^work$",
            "apply-to": "queues",
            "priority": 6,
            "definition": {"message-ttl": 1000, "dead-letter-exchange": "dlx", "dead-letter-routing-key": "work"},
        }
    }
    # The user's policies are written unchanged: they still apply to everything else they match.
    assert [p["name"] for p in rendered(definitions)["policies"]] == [
        "low",
        "high",
        "exchanges-only",
        "elsewhere",
        "warren.work",
    ]


def test_queue_without_wiring_gets_no_policy_and_names_are_escaped():
    definitions = topology(
        [
            {"name": "plain"},
            {"name": "a.b+c", "dead_letter_exchange": "", "dead_letter_routing_key": "plain"},
        ]
    )
    assert errors_of(definitions) == []
    policies = generated(rendered(definitions))
    assert list(policies) == ["warren.a.b+c"]
    assert policies["warren.a.b+c"]["pattern"] == "^a\\.b\\+c$"
    assert policies["warren.a.b+c"]["definition"] == {"dead-letter-exchange": "", "dead-letter-routing-key": "plain"}


def test_two_user_policies_tied_on_a_wired_queue_are_an_error():
    policies = [
        {"name": "caps", "pattern": "^work$", "priority": 2, "definition": {"max-length": 10}},
        {"name": "ttl", "pattern": "^w", "priority": 2, "definition": {"message-ttl": 5}},
        {"name": "lower", "pattern": ".*", "priority": 1, "definition": {"expires": 5}},
    ]
    assert errors_of(topology([{"name": "work", "dead_letter_exchange": "dlx"}], policies)) == [
        "queues[0] (work): policies[0] (caps) and policies[1] (ttl) match this queue with the same priority 2; "
        "RabbitMQ applies only one policy to a queue and which one is unspecified: give them different priorities"
    ]
    # The same two policies on a queue without wiring are RabbitMQ's business, not a conflict with Warren's.
    assert errors_of(topology([{"name": "work"}], policies)) == []


@pytest.mark.parametrize("key", ["dead-letter-exchange", "dead-letter-routing-key"])
def test_user_policy_setting_dead_lettering_on_a_wired_queue_is_an_error(key):
    policies = [{"name": "dl", "pattern": "^work$", "definition": {key: "x"}}]
    assert errors_of(topology([{"name": "work", "dead_letter_exchange": "dlx"}], policies)) == [
        f"queues[0] (work): policies[0] (dl) sets {key} on this queue, which has dead_letter_exchange: set "
        "dead-lettering in one place (the queue's dead_letter_exchange, or the policy alone)"
    ]
    # Without dead_letter_exchange, a policy is the way to dead-letter a queue.
    assert errors_of(topology([{"name": "work"}], policies)) == []


def test_generated_policy_names_are_reserved():
    policies = [{"name": "warren.mine", "pattern": "^x$", "definition": {"max-length": 1}}]
    assert errors_of(topology([], policies)) == [
        "policies[0] (warren.mine): policy names starting with 'warren.' are reserved for the policies Warren "
        "generates from the queues' dead_letter_exchange"
    ]


# ---- queues_to_migrate: existing queues whose declaration differs from the rendered one ----

OLD_ARGUMENTS = {"x-dead-letter-exchange": "warren.dlx", "x-dead-letter-routing-key": "jobs"}


def broker_queue(name, arguments=None, **extra):
    return {
        "name": name,
        "vhost": "/",
        "durable": True,
        "auto_delete": False,
        "type": "classic",
        "arguments": arguments or {},
        "messages": 0,
        "consumers": 0,
        **extra,
    }


def binding(source, destination, routing_key):
    return {
        "source": source,
        "vhost": "/",
        "destination": destination,
        "destination_type": "queue",
        "routing_key": routing_key,
        "arguments": {},
    }


@pytest.fixture(name="definitions")
def fixture_definitions():
    return rendered(load_defaults()["rabbitmq_topology_definitions"])


def test_todays_argument_based_queues_are_found(definitions):
    broker = [
        broker_queue("jobs", OLD_ARGUMENTS, messages=7),
        broker_queue(
            "order.events", {"x-dead-letter-exchange": "warren.dlx", "x-dead-letter-routing-key": "order.events"}
        ),
        broker_queue("jobs.dlq"),
    ]
    bindings = [
        binding("", "jobs", "jobs"),  # the default exchange's implicit binding is not carried over
        binding("events", "order.events", "order.*"),
        binding("warren.dlx", "jobs.dlq", "jobs"),
    ]
    migrations = queues_to_migrate(definitions, broker, bindings)
    assert [m["name"] for m in migrations] == ["order.events", "jobs"]
    jobs = migrations[1]
    assert jobs == {
        "name": "jobs",
        "vhost": "/",
        "durable": True,
        "auto_delete": False,
        "arguments": {},
        "current_arguments": OLD_ARGUMENTS,
        "current_type": "classic",
        "recreate": True,
        "messages": 7,
        "consumers": 0,
        "temporary": "jobs.warren-migration",
        "bindings": [],
    }
    assert migrations[0]["bindings"] == [{"source": "events", "routing_key": "order.*", "arguments": {}}]


def test_matching_queues_need_nothing_whatever_the_broker_adds(definitions):
    # Newer brokers report x-queue-type: classic for every classic queue.
    broker = [broker_queue("jobs"), broker_queue("order.events", {"x-queue-type": "classic"})]
    assert queues_to_migrate(definitions, broker, []) == []


def test_type_and_durability_changes_are_found():
    definitions = rendered(topology([{"name": "q", "type": "quorum"}, {"name": "t", "durable": False}]))
    broker = [broker_queue("q"), broker_queue("t")]
    assert [(m["name"], m["recreate"]) for m in queues_to_migrate(definitions, broker, [])] == [
        ("q", True),
        ("t", True),
    ]
    quorum = [broker_queue("q", {"x-queue-type": "quorum"}, type="quorum"), broker_queue("t", durable=False)]
    assert queues_to_migrate(definitions, quorum, []) == []


def test_an_interrupted_migration_is_finished(definitions):
    # The queue was declared again, but its messages and bindings are still on the temporary queue.
    broker = [broker_queue("order.events"), broker_queue("order.events.warren-migration", messages=3)]
    bindings = [binding("events", "order.events.warren-migration", "order.*")]
    (migration,) = queues_to_migrate(definitions, broker, bindings)
    assert (migration["name"], migration["recreate"]) == ("order.events", False)
    assert migration["bindings"] == [{"source": "events", "routing_key": "order.*", "arguments": {}}]
    # Also when it stopped before the queue was declared again.
    (migration,) = queues_to_migrate(definitions, broker[1:], bindings)
    assert (migration["name"], migration["recreate"], migration["current_arguments"]) == ("order.events", False, None)


def test_defaults_do_not_change_under_the_filters():
    defaults = load_defaults()["rabbitmq_topology_definitions"]
    before = copy.deepcopy(defaults)
    rendered(defaults)
    assert defaults == before


# ---- vhosts' default queue type ----


def test_queues_take_their_vhosts_default_type():
    definitions = {
        "vhosts": [{"name": "/"}, {"name": "orders", "default_queue_type": "quorum"}],
        "queues": [
            {"name": "plain"},
            {"name": "q", "vhost": "orders"},
            {"name": "c", "vhost": "orders", "type": "classic"},
            {"name": "bad", "vhost": "orders", "durable": False},
        ],
    }
    # A queue without type in a quorum vhost is a quorum queue: the quorum rules apply to it.
    assert errors_of(definitions) == ["queues[3] (bad): quorum queues must be durable (durable: false)"]
    definitions["queues"].pop()
    result = rendered(definitions)
    assert result["vhosts"] == [{"name": "/"}, {"name": "orders", "default_queue_type": "quorum"}]
    # Quorum keeps x-queue-type (3.10's import ignores the vhost default); classic needs it where quorum is default.
    assert [q["arguments"] for q in result["queues"]] == [{}, {"x-queue-type": "quorum"}, {"x-queue-type": "classic"}]


def test_unknown_default_queue_type():
    definitions = {"vhosts": [{"name": "/", "default_queue_type": "stream"}], "queues": [{"name": "q"}]}
    assert errors_of(definitions) == ["vhosts[0] (/): unknown default_queue_type 'stream' (known: classic, quorum)"]


def test_vhosts_with_a_default_type_are_created_or_reported():
    definitions = rendered(
        {
            "vhosts": [
                {"name": "/"},
                {"name": "new", "default_queue_type": "quorum"},
                {"name": "same", "default_queue_type": "quorum"},
                {"name": "other", "default_queue_type": "quorum"},
                {"name": "unset", "default_queue_type": "classic"},
            ]
        }
    )
    broker = [
        {"name": "/"},
        {"name": "same", "default_queue_type": "quorum"},
        {"name": "other", "default_queue_type": "classic"},
        {"name": "unset"},  # 3.10 reports nothing for a vhost made without one: classic
    ]
    plan = topology_filters.vhosts_to_create(definitions, broker)
    assert plan["create"] == [{"name": "new", "default_queue_type": "quorum"}]
    assert plan["conflicts"] == [
        "vhost 'other' exists with default queue type 'classic', the topology says 'quorum': RabbitMQ 3.10 cannot "
        "change it (newer releases: rabbitmqctl update_vhost_metadata other --default-queue-type quorum); "
        "or remove default_queue_type and give the queues their type"
    ]


def test_migration_lines_of_the_stop_message(definitions):
    broker = [
        broker_queue("jobs", OLD_ARGUMENTS, messages=7, consumers=1),
        broker_queue("order.events.warren-migration"),
    ]
    lines = [topology_filters.migration_line(m) for m in queues_to_migrate(definitions, broker, [])]
    assert lines == [
        "- vhost '/' queue 'order.events': an earlier migration left messages in 'order.events.warren-migration'",
        "- vhost '/' queue 'jobs': 7 message(s), 1 consumer(s); arguments on the broker "
        "{'x-dead-letter-exchange': 'warren.dlx', 'x-dead-letter-routing-key': 'jobs'}, in the topology {}",
    ]
