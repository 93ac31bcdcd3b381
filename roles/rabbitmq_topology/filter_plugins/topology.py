"""Filters of the rabbitmq_topology role: validation of the topology variables, and the users' permissions in
the shape community.rabbitmq.rabbitmq_user expects.

Pure Python on purpose: the unit tests import this file directly, without Ansible.

`rabbitmq_topology_errors` returns *every* problem it finds (an empty list means valid), each message naming the
offending entry, e.g. "bindings[2] (events -> order.evnts): destination queue 'order.evnts' is not declared in
vhost '/'", so one failed run shows everything an operator has to fix.

`rabbitmq_topology_rendered` turns the validated variable into RabbitMQ definitions. A queue's dead-letter wiring
(`dead_letter_exchange`, `dead_letter_routing_key`) becomes a generated policy, never a queue argument: a client
that declares the queue the ordinary way (`durable=true`, no arguments) then declares an equivalent queue.
`rabbitmq_topology_queues_to_migrate` compares the rendered queues with the broker's, for queues declared
before that (with the wiring in their arguments) or whose arguments changed since.
"""

import re
from collections.abc import Mapping, Sequence

EXCHANGE_TYPES = ("direct", "topic", "fanout", "headers")
QUEUE_TYPES = ("classic", "quorum")
DESTINATION_TYPES = ("queue", "exchange")
# RabbitMQ 3.10 policies apply to these (classic_queues/quorum_queues/streams arrived in 3.12).
POLICY_APPLY_TO = ("all", "exchanges", "queues")
USER_STATES = ("present", "absent")
# Exchanges every vhost has. They can be bound from and dead-lettered to, never declared ("amq." is reserved).
BUILTIN_EXCHANGES = ("amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.rabbitmq.trace", "amq.topic")
SECTIONS = ("vhosts", "exchanges", "queues", "bindings", "policies")
# Policies the role writes itself, one per queue with dead-letter wiring: warren.<queue name>.
GENERATED_POLICY_PREFIX = "warren."
WIRING_KEYS = ("dead-letter-exchange", "dead-letter-routing-key")
# Where a migration keeps a queue's messages while the queue is deleted and declared again.
MIGRATION_SUFFIX = ".warren-migration"
# rabbitmq_topology_queue_type: the type of the queues that name none (auto: quorum from 3 nodes, else classic).
QUEUE_TYPE_SETTINGS = ("auto", "classic", "quorum")
# What the generated policy of a wired quorum queue adds, under the user's matching policy (which may override it):
# dead-lettering at least once (RabbitMQ 3.10+; it needs overflow reject-publish, else the broker falls back to at
# most once), and a delivery limit as the backstop for a message that keeps crashing or being requeued.
QUORUM_POLICY_DEFAULTS = {"dead-letter-strategy": "at-least-once", "overflow": "reject-publish", "delivery-limit": 20}

# Allowed keys per kind: key -> (type description, type check, required).
_STR = ("a string", lambda v: isinstance(v, str))
_BOOL = ("a boolean", lambda v: isinstance(v, bool))
_DICT = ("a mapping", lambda v: isinstance(v, Mapping))
_INT = ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
_LIST = ("a list", lambda v: _is_list(v))

SCHEMAS = {
    "vhosts": {"name": (*_STR, True), "default_queue_type": (*_STR, False)},
    "exchanges": {
        "name": (*_STR, True),
        "vhost": (*_STR, False),
        "type": (*_STR, True),
        "durable": (*_BOOL, False),
        "auto_delete": (*_BOOL, False),
        "internal": (*_BOOL, False),
        "arguments": (*_DICT, False),
    },
    "queues": {
        "name": (*_STR, True),
        "vhost": (*_STR, False),
        "type": (*_STR, False),
        "durable": (*_BOOL, False),
        "auto_delete": (*_BOOL, False),
        "arguments": (*_DICT, False),
        "dead_letter_exchange": (*_STR, False),
        "dead_letter_routing_key": (*_STR, False),
    },
    "bindings": {
        "source": (*_STR, True),
        "destination": (*_STR, True),
        "destination_type": (*_STR, False),
        "routing_key": (*_STR, False),
        "vhost": (*_STR, False),
        "arguments": (*_DICT, False),
    },
    "policies": {
        "name": (*_STR, True),
        "vhost": (*_STR, False),
        "pattern": (*_STR, True),
        "apply_to": (*_STR, False),
        "priority": (*_INT, False),
        "definition": (*_DICT, True),
    },
    "users": {
        "name": (*_STR, True),
        "password": (*_STR, False),
        "tags": (*_LIST, False),
        "permissions": (*_LIST, False),
        "state": (*_STR, False),
    },
    "permissions": {
        "vhost": (*_STR, False),
        "configure": (*_STR, False),
        "write": (*_STR, False),
        "read": (*_STR, False),
    },
}

# Keys people try that definitions cannot express, with the reason instead of a bare "unknown key".
_UNSUPPORTED = {
    ("queues", "exclusive"): "exclusive queues belong to one connection and cannot be declared in definitions",
}


def _is_list(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _names(values):
    return ", ".join(values)


def _label(section, index, entry, name_key="name"):
    if section == "bindings" and isinstance(entry, Mapping):
        return f"{section}[{index}] ({entry.get('source', '?')} -> {entry.get('destination', '?')})"
    if isinstance(entry, Mapping) and isinstance(entry.get(name_key), str):
        return f"{section}[{index}] ({entry[name_key]})"
    return f"{section}[{index}]"


def _check_keys(kind, label, entry, errors):
    """Type-check one entry against its schema. Returns False when it is not a mapping at all."""
    if not isinstance(entry, Mapping):
        errors.append(f"{label}: must be a mapping, got {entry!r}")
        return False
    schema = SCHEMAS[kind]
    for key in entry:
        if (kind, key) in _UNSUPPORTED:
            errors.append(f"{label}: '{key}' is not supported: {_UNSUPPORTED[(kind, key)]}")
        elif key not in schema:
            errors.append(f"{label}: unknown key '{key}' (allowed: {_names(schema)})")
    for key, (description, check, required) in schema.items():
        if key not in entry:
            if required:
                errors.append(f"{label}: '{key}' is required")
        elif not check(entry[key]):
            errors.append(f"{label}: '{key}' must be {description}, got {entry[key]!r}")
    return True


def _get(entry, key, default, kind):
    """The entry's value if it has the right type, else the default (its type error is already reported)."""
    value = entry.get(key, default)
    return value if SCHEMAS[kind][key][1](value) else default


def _vhost(entry, kind):
    return _get(entry, "vhost", "/", kind)


def _declared_exchange(name, vhost, exchanges):
    return name == "" or name in BUILTIN_EXCHANGES or (vhost, name) in exchanges


class _Checked:
    """What the per-entity checks have seen so far: the errors, and the names declared by earlier entries, so that
    a reference is checked against everything declared before it."""

    def __init__(self, exchange_types):
        self.errors = []
        self.exchange_types = exchange_types
        self.vhosts = {}
        self.default_types = {}
        self.exchanges = {}
        self.queues = {}
        self.bindings = {}
        self.policies = {}

    def declare(self, table, key, index, label, duplicate, relation="also"):
        """Record a declaration at `index` (e.g. "queues[3]"), or report it as a duplicate of the earlier one."""
        if key in table:
            self.errors.append(f"{label}: {duplicate} ({relation} {table[key]})")
        else:
            table[key] = index

    def check_vhost(self, label, entry, kind):
        vhost = _vhost(entry, kind)
        if vhost not in self.vhosts:
            self.errors.append(f"{label}: vhost '{vhost}' is not declared in vhosts")


def _check_vhost(checked, index, label, entry):
    name = _get(entry, "name", None, "vhosts")
    default_type = _get(entry, "default_queue_type", "classic", "vhosts")
    if default_type not in QUEUE_TYPES:
        checked.errors.append(f"{label}: unknown default_queue_type '{default_type}' (known: {_names(QUEUE_TYPES)})")
        default_type = "classic"
    if name is None:
        return
    checked.default_types.setdefault(name, default_type)
    if name == "":
        checked.errors.append(f"{label}: name must not be empty")
    else:
        checked.declare(checked.vhosts, name, f"vhosts[{index}]", label, f"duplicate vhost '{name}'")


def _check_exchange(checked, index, label, entry):
    checked.check_vhost(label, entry, "exchanges")
    name = _get(entry, "name", None, "exchanges")
    vhost = _vhost(entry, "exchanges")
    exchange_type = _get(entry, "type", None, "exchanges")
    if exchange_type is not None and exchange_type not in checked.exchange_types:
        checked.errors.append(
            f"{label}: unknown exchange type '{exchange_type}' (known: {_names(checked.exchange_types)})"
        )
    if name is None:
        return
    if name == "" or name.startswith("amq."):
        checked.errors.append(
            f"{label}: exchange name '{name}' is reserved by RabbitMQ (the default exchange or 'amq.*')"
        )
    else:
        checked.declare(
            checked.exchanges,
            (vhost, name),
            f"exchanges[{index}]",
            label,
            f"duplicate exchange '{name}' in vhost '{vhost}'",
        )


def _queue_type(checked, entry):
    return _get(entry, "type", checked.default_types.get(_vhost(entry, "queues"), "classic"), "queues")


def _check_queue_type(checked, index, label, entry):
    checked.check_vhost(label, entry, "queues")
    queue_type = _queue_type(checked, entry)
    arguments = _get(entry, "arguments", {}, "queues")
    if queue_type not in QUEUE_TYPES:
        checked.errors.append(f"{label}: unknown queue type '{queue_type}' (known: {_names(QUEUE_TYPES)})")
    if "x-queue-type" in arguments and arguments["x-queue-type"] != queue_type:
        checked.errors.append(
            f"{label}: arguments x-queue-type '{arguments['x-queue-type']}' contradicts type '{queue_type}' "
            "(set type only)"
        )


def _check_quorum_queue(checked, index, label, entry):
    if _queue_type(checked, entry) != "quorum":
        return
    if entry.get("durable", True) is False:
        checked.errors.append(f"{label}: quorum queues must be durable (durable: false)")
    if entry.get("auto_delete", False) is True:
        checked.errors.append(f"{label}: quorum queues cannot be auto_delete")


def _check_queue_dead_lettering(checked, index, label, entry):
    vhost = _vhost(entry, "queues")
    dlx = _get(entry, "dead_letter_exchange", None, "queues")
    dlx_argument = _get(entry, "arguments", {}, "queues").get("x-dead-letter-exchange")
    if dlx is not None and dlx_argument is not None and dlx_argument != dlx:
        checked.errors.append(
            f"{label}: dead_letter_exchange '{dlx}' contradicts arguments x-dead-letter-exchange '{dlx_argument}'"
        )
    if "dead_letter_routing_key" in entry and dlx is None:
        checked.errors.append(f"{label}: dead_letter_routing_key needs dead_letter_exchange")
    for source, value in (("dead_letter_exchange", dlx), ("arguments x-dead-letter-exchange", dlx_argument)):
        if value is None:
            continue
        if not isinstance(value, str):
            checked.errors.append(f"{label}: {source} must be a string, got {value!r}")
        elif not _declared_exchange(value, vhost, checked.exchanges):
            checked.errors.append(
                f"{label}: dead-letter exchange '{value}' ({source}) is not declared in vhost '{vhost}'"
            )


def _check_queue_name(checked, index, label, entry):
    name = _get(entry, "name", None, "queues")
    vhost = _vhost(entry, "queues")
    if name is None:
        return
    if name == "" or name.startswith("amq."):
        checked.errors.append(f"{label}: queue name '{name}' is reserved by RabbitMQ (empty or 'amq.*')")
    else:
        checked.declare(
            checked.queues,
            (vhost, name),
            f"queues[{index}]",
            label,
            f"duplicate queue '{name}' in vhost '{vhost}'",
        )


def _check_binding(checked, index, label, entry):
    checked.check_vhost(label, entry, "bindings")
    vhost = _vhost(entry, "bindings")
    source = _get(entry, "source", None, "bindings")
    destination = _get(entry, "destination", None, "bindings")
    destination_type = _get(entry, "destination_type", "queue", "bindings")
    if source == "":
        checked.errors.append(
            f"{label}: the default exchange '' cannot be bound (it routes to the queue named by the "
            "routing key already)"
        )
    elif source is not None and not _declared_exchange(source, vhost, checked.exchanges):
        checked.errors.append(f"{label}: source exchange '{source}' is not declared in vhost '{vhost}'")
    if destination_type not in DESTINATION_TYPES:
        checked.errors.append(
            f"{label}: unknown destination_type '{destination_type}' (known: {_names(DESTINATION_TYPES)})"
        )
    elif destination is not None:
        declared = checked.queues if destination_type == "queue" else checked.exchanges
        builtin = destination_type == "exchange" and destination in BUILTIN_EXCHANGES
        if not builtin and (vhost, destination) not in declared:
            checked.errors.append(
                f"{label}: destination {destination_type} '{destination}' is not declared in vhost '{vhost}'"
            )
    key = (
        vhost,
        source,
        destination_type,
        destination,
        _get(entry, "routing_key", "", "bindings"),
        repr(sorted(_get(entry, "arguments", {}, "bindings").items())),
    )
    checked.declare(checked.bindings, key, f"bindings[{index}]", label, "duplicate binding", "same as")


def _check_policy(checked, index, label, entry):
    checked.check_vhost(label, entry, "policies")
    name = _get(entry, "name", None, "policies")
    vhost = _vhost(entry, "policies")
    apply_to = _get(entry, "apply_to", "all", "policies")
    if apply_to not in POLICY_APPLY_TO:
        checked.errors.append(f"{label}: unknown apply_to '{apply_to}' (known: {_names(POLICY_APPLY_TO)})")
    pattern = _get(entry, "pattern", None, "policies")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            checked.errors.append(f"{label}: pattern {pattern!r} is not a valid regular expression ({exc})")
    if _get(entry, "definition", None, "policies") == {}:
        checked.errors.append(f"{label}: definition must not be empty")
    if name is None:
        return
    if name.startswith(GENERATED_POLICY_PREFIX):
        checked.errors.append(
            f"{label}: policy names starting with '{GENERATED_POLICY_PREFIX}' are reserved for the policies "
            "Warren generates from the queues' dead_letter_exchange"
        )
    else:
        checked.declare(
            checked.policies,
            (vhost, name),
            f"policies[{index}]",
            label,
            f"duplicate policy '{name}' in vhost '{vhost}'",
        )


# Each entry of a section goes through its section's checks in this order; sections in the order of SECTIONS,
# so that references are checked against the names declared before. A new rule is one more function here.
ENTITY_CHECKS = {
    "vhosts": (_check_vhost,),
    "exchanges": (_check_exchange,),
    "queues": (_check_queue_type, _check_quorum_queue, _check_queue_dead_lettering, _check_queue_name),
    "bindings": (_check_binding,),
    "policies": (_check_policy,),
}


def _entries(definitions, errors):
    """Each section's entries that are mappings, as (index, label, entry); type errors of their keys reported."""
    for key in definitions:
        if key not in SECTIONS:
            errors.append(f"rabbitmq_topology_definitions: unknown key '{key}' (allowed: {_names(SECTIONS)})")
    sections = {}
    for section in SECTIONS:
        value = definitions.get(section)
        if value is None:
            value = []
        if not _is_list(value):
            errors.append(f"{section}: must be a list, got {value!r}")
            value = []
        sections[section] = [
            (index, _label(section, index, entry), entry)
            for index, entry in enumerate(value)
            if _check_keys(section, _label(section, index, entry), entry, errors)
        ]
    return sections


def topology_errors(definitions, users=None, extra_exchange_types=None):
    """All problems in the topology definitions and users, as a list of messages (empty when valid)."""
    if not isinstance(definitions, Mapping):
        return [f"rabbitmq_topology_definitions must be a mapping with keys {_names(SECTIONS)}, got {definitions!r}"]
    checked = _Checked(tuple(EXCHANGE_TYPES) + tuple(extra_exchange_types or ()))
    sections = _entries(definitions, checked.errors)
    for section in SECTIONS:
        for index, label, entry in sections[section]:
            for check in ENTITY_CHECKS[section]:
                check(checked, index, label, entry)
    if not checked.errors:
        checked.errors.extend(_policy_conflicts(sections["queues"], sections["policies"]))
    checked.errors.extend(_user_errors(users, checked.vhosts))
    return checked.errors


def _wiring(queue):
    """A queue's dead-letter wiring as a policy definition ({} without dead_letter_exchange)."""
    if "dead_letter_exchange" not in queue:
        return {}
    return {
        "dead-letter-exchange": queue["dead_letter_exchange"],
        "dead-letter-routing-key": queue.get("dead_letter_routing_key", queue["name"]),
    }


def _policies_on(queue, policies):
    """The (label, policy) pairs that would apply to this queue on their own, highest priority first."""
    vhost = queue.get("vhost", "/")
    matching = [
        (label, policy)
        for label, policy in policies
        if policy.get("vhost", "/") == vhost
        and policy.get("apply_to", "all") in ("all", "queues")
        and re.search(policy["pattern"], queue["name"])
    ]
    return sorted(matching, key=lambda pair: -pair[1].get("priority", 0))


def _policy_conflicts(queues, policies):
    """Only one policy applies to a queue: the user's policies that match a wired queue must leave one winner whose
    definition Warren can merge with the wiring. Runs on an otherwise valid topology."""
    errors = []
    labelled = [(label, policy) for _, label, policy in policies]
    for _, label, queue in queues:
        if "dead_letter_exchange" not in queue:
            continue
        matching = _policies_on(queue, labelled)
        if not matching:
            continue
        (winner_label, winner), *others = matching
        priority = winner.get("priority", 0)
        tied = [other_label for other_label, other in others if other.get("priority", 0) == priority]
        if tied:
            errors.append(
                f"{label}: {winner_label} and {', '.join(tied)} match this queue with the same priority {priority}; "
                "RabbitMQ applies only one policy to a queue and which one is unspecified: give them different "
                "priorities"
            )
        wiring = sorted(set(winner["definition"]) & set(WIRING_KEYS))
        if wiring:
            errors.append(
                f"{label}: {winner_label} sets {', '.join(wiring)} on this queue, which has dead_letter_exchange: "
                "set dead-lettering in one place (the queue's dead_letter_exchange, or the policy alone)"
            )
    return errors


def effective_queue_type(setting, cluster_size):
    """The type rabbitmq_topology_queue_type gives queues that name none: auto is quorum on 3 or more nodes."""
    if setting == "auto":
        return "quorum" if int(cluster_size) >= 3 else "classic"
    return setting


def with_queue_type(definitions, queue_type):
    """The definitions with `queue_type` as the type of every queue that names none in a vhost without a
    default_queue_type. Classic changes nothing (it is what such a queue is anyway), so single-node deployments
    render exactly as before. Malformed input is passed through for topology_errors to report."""
    if queue_type != "quorum" or not isinstance(definitions, Mapping):
        return definitions
    queues, vhosts = definitions.get("queues"), definitions.get("vhosts") or []
    if not _is_list(queues) or not _is_list(vhosts):
        return definitions
    typed_vhosts = {v.get("name") for v in vhosts if isinstance(v, Mapping) and "default_queue_type" in v}
    typed = [
        {**queue, "type": queue_type}
        if isinstance(queue, Mapping) and "type" not in queue and queue.get("vhost", "/") not in typed_vhosts
        else queue
        for queue in queues
    ]
    return {**definitions, "queues": typed}


def cluster_errors(definitions, queue_type_setting, cluster_size, quorum_min_nodes=3):
    """Problems of the topology on this cluster: an unknown rabbitmq_topology_queue_type, and quorum queues on
    fewer nodes than quorum_min_nodes. `definitions` is the topology after with_queue_type."""
    if queue_type_setting not in QUEUE_TYPE_SETTINGS:
        return [
            f"rabbitmq_topology_queue_type: unknown value {queue_type_setting!r} (known: {_names(QUEUE_TYPE_SETTINGS)})"
        ]
    if not isinstance(definitions, Mapping) or int(cluster_size) >= int(quorum_min_nodes):
        return []
    queues, vhosts = definitions.get("queues") or [], definitions.get("vhosts") or []
    if not _is_list(queues) or not _is_list(vhosts):
        return []
    default_types = {v.get("name"): v.get("default_queue_type", "classic") for v in vhosts if isinstance(v, Mapping)}
    quorum = [
        _label("queues", index, queue)
        for index, queue in enumerate(queues)
        if isinstance(queue, Mapping)
        and queue.get("type", default_types.get(queue.get("vhost", "/"), "classic")) == "quorum"
    ]
    if not quorum:
        return []
    return [
        f"{label}: a quorum queue, and the rabbitmq group has {cluster_size} node(s): a quorum queue keeps a copy "
        f"on each node and needs a majority of them, so it needs {quorum_min_nodes} or more nodes to survive the "
        "loss of one (with 2, losing either stops it). Add nodes, make it classic (rabbitmq_topology_queue_type: "
        "auto or classic, or the queue's type), or accept it with rabbitmq_topology_quorum_min_nodes"
        for label in quorum
    ]


def _queue_arguments(queue, default_type):
    """The queue's arguments, with x-queue-type unless it is classic in a vhost whose default is classic: omitting
    it keeps a plain declaration equivalent. Quorum always gets it: RabbitMQ 3.10 imports definitions without the
    vhost's default queue type (rabbitmq-server#5399), and a plain declaration is still equivalent where the
    vhost's default is quorum."""
    arguments = dict(queue.get("arguments", {}))
    queue_type = queue.get("type", default_type)
    if queue_type != "classic" or default_type != "classic":
        arguments["x-queue-type"] = queue_type
    return arguments


def rendered(definitions):
    """RabbitMQ definitions of a valid topology: optional keys defaulted, one generated policy per queue with
    dead-letter wiring. The generated policy carries the wiring merged with the definition of the user's policy
    that would otherwise apply to the queue (the highest priority match), at one priority above it, so that the
    one policy RabbitMQ applies has both."""
    sections = {section: definitions.get(section) or [] for section in SECTIONS}
    default_types = {vhost["name"]: vhost.get("default_queue_type", "classic") for vhost in sections["vhosts"]}
    user_policies = [(policy["name"], policy) for policy in sections["policies"]]
    generated = []
    for queue in sections["queues"]:
        wiring = _wiring(queue)
        if not wiring:
            continue
        matching = _policies_on(queue, user_policies)
        vhost_type = default_types.get(queue.get("vhost", "/"), "classic")
        base = dict(QUORUM_POLICY_DEFAULTS) if queue.get("type", vhost_type) == "quorum" else {}
        priority = 0
        if matching:
            base, priority = {**base, **matching[0][1]["definition"]}, matching[0][1].get("priority", 0) + 1
        generated.append(
            {
                "name": GENERATED_POLICY_PREFIX + queue["name"],
                "vhost": queue.get("vhost", "/"),
                "pattern": "^" + re.escape(queue["name"]) + "$",
                "apply-to": "queues",
                "priority": priority,
                "definition": {**base, **wiring},
            }
        )
    return {
        "vhosts": [
            {
                "name": vhost["name"],
                **({"default_queue_type": vhost["default_queue_type"]} if "default_queue_type" in vhost else {}),
            }
            for vhost in sections["vhosts"]
        ],
        "exchanges": [
            {
                "name": exchange["name"],
                "vhost": exchange.get("vhost", "/"),
                "type": exchange["type"],
                "durable": exchange.get("durable", True),
                "auto_delete": exchange.get("auto_delete", False),
                "internal": exchange.get("internal", False),
                "arguments": dict(exchange.get("arguments", {})),
            }
            for exchange in sections["exchanges"]
        ],
        "queues": [
            {
                "name": queue["name"],
                "vhost": queue.get("vhost", "/"),
                "durable": queue.get("durable", True),
                "auto_delete": queue.get("auto_delete", False),
                "arguments": _queue_arguments(queue, default_types.get(queue.get("vhost", "/"), "classic")),
            }
            for queue in sections["queues"]
        ],
        "bindings": [
            {
                "source": binding["source"],
                "vhost": binding.get("vhost", "/"),
                "destination": binding["destination"],
                "destination_type": binding.get("destination_type", "queue"),
                "routing_key": binding.get("routing_key", ""),
                "arguments": dict(binding.get("arguments", {})),
            }
            for binding in sections["bindings"]
        ],
        "policies": [
            {
                "name": policy["name"],
                "vhost": policy.get("vhost", "/"),
                "pattern": policy["pattern"],
                "apply-to": policy.get("apply_to", "all"),
                "priority": policy.get("priority", 0),
                "definition": dict(policy["definition"]),
            }
            for policy in sections["policies"]
        ]
        + generated,
    }


def _declaration(queue):
    """What cannot change on an existing queue: durable, auto_delete, type and the other arguments."""
    arguments = dict(queue.get("arguments") or {})
    queue_type = arguments.pop("x-queue-type", None) or queue.get("type") or "classic"
    return {
        "durable": queue.get("durable", True),
        "auto_delete": queue.get("auto_delete", False),
        "type": queue_type,
        "arguments": arguments,
    }


def queues_to_migrate(definitions, broker_queues, broker_bindings):
    """The rendered queues that must be deleted and declared again to match: they exist on the broker (from the
    management API's /api/queues) with other arguments, durability or type, or a migration left their messages
    in the temporary queue. Each entry has what the migration module needs, including the bindings to carry over
    (from /api/bindings: the queue's and the temporary queue's, which has the queue's once a migration began)."""
    existing = {(queue["vhost"], queue["name"]): queue for queue in broker_queues}
    migrations = []
    for queue in definitions["queues"]:
        key = (queue["vhost"], queue["name"])
        temporary = existing.get((queue["vhost"], queue["name"] + MIGRATION_SUFFIX))
        current = existing.get(key)
        differs = current is not None and _declaration(current) != _declaration(queue)
        if not differs and temporary is None:
            continue
        bindings = []
        for binding in broker_bindings:
            carried = {
                "source": binding["source"],
                "routing_key": binding["routing_key"],
                "arguments": binding.get("arguments") or {},
            }
            if (
                binding["vhost"] == queue["vhost"]
                and binding["destination_type"] == "queue"
                and binding["destination"] in (queue["name"], queue["name"] + MIGRATION_SUFFIX)
                and binding["source"] != ""
                and carried not in bindings
            ):
                bindings.append(carried)
        migrations.append(
            {
                "name": queue["name"],
                "vhost": queue["vhost"],
                "durable": queue["durable"],
                "auto_delete": queue["auto_delete"],
                "arguments": queue["arguments"],
                "current_arguments": None if current is None else current.get("arguments") or {},
                "current_type": None if current is None else _declaration(current)["type"],
                "recreate": differs,
                "messages": (current or {}).get("messages", 0) or 0,
                "consumers": (current or {}).get("consumers", 0) or 0,
                "temporary": queue["name"] + MIGRATION_SUFFIX,
                "bindings": bindings,
            }
        )
    return migrations


def vhosts_to_create(definitions, broker_vhosts):
    """Vhosts of the rendered definitions with a default queue type: those to create before the import (RabbitMQ
    3.10's import ignores the setting, `rabbitmqctl add_vhost --default-queue-type` does not), and one message per
    existing vhost whose default differs, which RabbitMQ 3.10 cannot change."""
    existing = {vhost["name"]: vhost.get("default_queue_type") or "classic" for vhost in broker_vhosts}
    create, conflicts = [], []
    for vhost in definitions["vhosts"]:
        wanted = vhost.get("default_queue_type")
        if wanted is None:
            continue
        if vhost["name"] not in existing:
            create.append(vhost)
        elif existing[vhost["name"]] != wanted:
            conflicts.append(
                f"vhost {vhost['name']!r} exists with default queue type {existing[vhost['name']]!r}, the topology "
                f"says {wanted!r}: RabbitMQ 3.10 cannot change it (newer releases: rabbitmqctl "
                f"update_vhost_metadata {vhost['name']} --default-queue-type {wanted}); or remove "
                "default_queue_type and give the queues their type"
            )
    return {"create": create, "conflicts": conflicts}


def migration_line(migration):
    """One line of the play's stop message about a queue to migrate."""
    where = f"- vhost {migration['vhost']!r} queue {migration['name']!r}: "
    if not migration["recreate"]:
        return where + f"an earlier migration left messages in {migration['temporary']!r}"
    wanted_type = _declaration(migration)["type"]
    if migration.get("current_type") not in (None, wanted_type):
        where += f"type {migration['current_type']} on the broker, {wanted_type} in the topology; "
    return where + (
        f"{migration['messages']} message(s), {migration['consumers']} consumer(s); arguments on the broker "
        f"{migration['current_arguments']}, in the topology {migration['arguments']}"
    )


def _user_errors(users, vhosts):
    errors = []
    if users is None:
        return errors
    if not _is_list(users):
        return [f"rabbitmq_topology_users must be a list, got {type(users).__name__!r}"]
    names = {}
    for index, user in enumerate(users):
        # Never echo a user entry: it holds a password.
        label = _label("users", index, user)
        if not isinstance(user, Mapping):
            errors.append(f"{label}: must be a mapping")
            continue
        for key in user:
            if key not in SCHEMAS["users"]:
                errors.append(f"{label}: unknown key '{key}' (allowed: {_names(SCHEMAS['users'])})")
        name = user.get("name")
        if not isinstance(name, str) or name == "":
            errors.append(f"{label}: 'name' is required and must be a non-empty string")
        elif name in names:
            errors.append(f"{label}: duplicate user '{name}' (also users[{names[name]}])")
        else:
            names[name] = index
        state = user.get("state", "present")
        if state not in USER_STATES:
            errors.append(f"{label}: unknown state {state!r} (known: {_names(USER_STATES)})")
        password = user.get("password")
        if state != "absent" and (not isinstance(password, str) or password == ""):
            errors.append(
                f"{label}: password is empty or not a string: set it from Ansible Vault (the default user "
                "'warren' takes rabbitmq_topology_app_password, which defaults to warren_amqp_password)"
            )
        tags = user.get("tags", [])
        if not _is_list(tags) or not all(isinstance(tag, str) for tag in tags):
            errors.append(f"{label}: 'tags' must be a list of strings")
        permissions = user.get("permissions", [])
        if not _is_list(permissions):
            errors.append(f"{label}: 'permissions' must be a list")
            continue
        seen = {}
        for p_index, permission in enumerate(permissions):
            p_label = f"{label}.permissions[{p_index}]"
            if not _check_keys("permissions", p_label, permission, errors):
                continue
            vhost = _vhost(permission, "permissions")
            if vhost not in vhosts:
                errors.append(f"{p_label}: vhost '{vhost}' is not declared in vhosts")
            if vhost in seen:
                errors.append(f"{p_label}: duplicate permissions for vhost '{vhost}' (also permissions[{seen[vhost]}])")
            seen[vhost] = p_index
            for key in ("configure", "write", "read"):
                value = permission.get(key)
                if isinstance(value, str) and " " in value:
                    # rabbitmq_user splits its rabbitmqctl command line on spaces.
                    errors.append(f"{p_label}: {key} regex {value!r} contains a space, which rabbitmq_user cannot pass")
    return errors


def module_permissions(permissions):
    """Permissions as rabbitmq_user's `permissions` option wants them; a missing regex denies ('^$')."""
    return [
        {
            "vhost": permission.get("vhost", "/"),
            "configure_priv": permission.get("configure", "^$"),
            "write_priv": permission.get("write", "^$"),
            "read_priv": permission.get("read", "^$"),
        }
        for permission in permissions or []
    ]


class FilterModule:
    """rabbitmq_topology filters."""

    def filters(self):
        return {
            "rabbitmq_topology_errors": topology_errors,
            "rabbitmq_topology_rendered": rendered,
            "rabbitmq_topology_effective_queue_type": effective_queue_type,
            "rabbitmq_topology_with_queue_type": with_queue_type,
            "rabbitmq_topology_cluster_errors": cluster_errors,
            "rabbitmq_topology_queues_to_migrate": queues_to_migrate,
            "rabbitmq_topology_migration_line": migration_line,
            "rabbitmq_topology_vhosts_to_create": vhosts_to_create,
            "rabbitmq_topology_module_permissions": module_permissions,
        }
