#!/usr/bin/python
"""Ansible module of the rabbitmq_topology role: declare an existing queue again with new arguments, type or
durability without losing its messages (RabbitMQ cannot change them in place)."""

from __future__ import annotations

import sys
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: rabbitmq_topology_migrate_queue
short_description: Re-declare a RabbitMQ queue with new arguments, moving its messages through a temporary queue
description:
  - Every move is a basic.get, a publish to the other queue with publisher confirms, then the ack of the original
    once the broker confirmed the copy: a failure at any point leaves each message in one queue or the other.
  - 1. Declare the temporary queue (durable classic), bind it like the queue, unbind the queue, move every message
    to it, delete the queue (if-empty, if-unused: a message published meanwhile is moved too).
    2. Declare the queue with its new declaration, bind it, unbind the temporary queue, move the messages back,
    delete the temporary queue. A run that stopped half-way is finished by the next one (recreate false).
  - Needs the queue without consumers. A message's per-message expiration (a Warren retry) is kept in a header
    while it waits in the temporary queue and restored when it moves back, so it expires where it did before;
    its time to live starts again.
  - Messages published to the queue by name through the default exchange while it is deleted are returned
    unroutable to their publisher; publishers through the queue's bindings reach the temporary queue.
  - A moved message arrives from the default exchange with the queue's name as routing key; the exchange and
    routing key it was published with are kept in the headers x-warren-exchange and x-warren-routing-key (unless
    it has them already), which Warren's workers route by.
options:
  queue:
    description: One entry of the filter rabbitmq_topology_queues_to_migrate.
    type: dict
    required: true
  pika_path:
    description: Directory that holds the pika package (copied from the controller).
    type: path
    required: true
  host: {type: str, default: 127.0.0.1, description: AMQP host.}
  port: {type: int, default: 5672, description: AMQP port.}
  user: {type: str, required: true, description: A user with configure, write and read on the vhost.}
  password: {type: str, required: true, no_log: true, description: Its password.}
  timeout: {type: int, default: 600, description: Seconds the whole migration may take.}
"""

EXPIRATION_HEADER = "x-warren-migration-expiration"
# A moved message is delivered from the default exchange with the queue's name as routing key; Warren's workers
# route by these headers when present (the retries' own), so the first move writes them if they are missing.
ORIGIN_HEADERS = ("x-warren-exchange", "x-warren-routing-key")


class MigrationError(Exception):
    pass


class Migration:
    def __init__(self, pika, params, queue, deadline):
        self.pika = pika
        self.params = params
        self.queue = queue
        self.deadline = deadline
        self.connection = pika.BlockingConnection(params)
        self.channel = self._open()
        self.moved = {"out": 0, "back": 0}

    def _open(self):
        channel = self.connection.channel()
        channel.confirm_delivery()
        return channel

    def probe(self, name):
        """(messages, consumers) of a queue, or None when it does not exist (a 404 closes only its own channel)."""
        channel = self.connection.channel()
        try:
            ok = channel.queue_declare(name, passive=True).method
        except self.pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        channel.close()
        return ok.message_count, ok.consumer_count

    def bind(self, name, bindings, bound):
        for binding in bindings:
            method = self.channel.queue_bind if bound else self.channel.queue_unbind
            method(name, binding["source"], routing_key=binding["routing_key"], arguments=binding["arguments"])

    def move(self, source, target, back):
        moved = 0
        while True:
            self._check_time(f"moving messages from {source} to {target}")
            method, properties, body = self.channel.basic_get(source, auto_ack=False)
            if method is None:
                return moved
            headers = dict(properties.headers or {})
            if not back and not all(key in headers for key in ORIGIN_HEADERS):
                headers.update(zip(ORIGIN_HEADERS, (method.exchange, method.routing_key), strict=True))
            if back:
                if EXPIRATION_HEADER in headers:
                    properties.expiration = headers.pop(EXPIRATION_HEADER)
            elif properties.expiration is not None:
                headers[EXPIRATION_HEADER] = properties.expiration
                properties.expiration = None
            properties.headers = headers or None
            # Confirm mode: returns once the broker has the copy; raises (and the original stays) if it has not.
            self.channel.basic_publish("", target, body, properties, mandatory=True)
            self.channel.basic_ack(method.delivery_tag)
            moved += 1

    def delete_when_empty(self, source, target, back):
        """Move then delete with if-empty and if-unused, again while messages keep arriving (bounded in time)."""
        while True:
            self.moved["back" if back else "out"] += self.move(source, target, back)
            try:
                self.channel.queue_delete(source, if_unused=True, if_empty=True)
                return
            except self.pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:
                    raise
                self.channel = self._open()
                counts = self.probe(source)
                if counts is not None and counts[1]:
                    raise MigrationError(f"queue {source} has {counts[1]} consumer(s): stop them first") from exc
                time.sleep(0.2)

    def _check_time(self, what):
        if time.monotonic() > self.deadline:
            raise MigrationError(f"timed out {what}; run again to finish (no message is lost)")

    def run(self, check_mode):
        q = self.queue
        name, temporary = q["name"], q["temporary"]
        current, parked = self.probe(name), self.probe(temporary)
        if current is not None and current[1]:
            raise MigrationError(
                f"queue {name} in vhost {q['vhost']} has {current[1]} consumer(s): stop them first "
                "(Warren's workers: systemctl stop warren-workers.target on the worker hosts)"
            )
        if check_mode:
            return
        if q["recreate"] and current is not None:
            self.channel.queue_declare(temporary, durable=True)
            self.bind(temporary, q["bindings"], True)
            self.bind(name, q["bindings"], False)
            self.delete_when_empty(name, temporary, back=False)
            parked = self.probe(temporary)
        self.channel.queue_declare(
            name, durable=q["durable"], auto_delete=q["auto_delete"], arguments=q["arguments"] or None
        )
        self.bind(name, q["bindings"], True)
        if parked is not None:
            self.bind(temporary, q["bindings"], False)
            self.delete_when_empty(temporary, name, back=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "queue": {"type": "dict", "required": True},
            "pika_path": {"type": "path", "required": True},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 5672},
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    sys.path.insert(0, module.params["pika_path"])
    try:
        import pika
    except ImportError as exc:
        module.fail_json(msg=f"pika is not importable from {module.params['pika_path']}: {exc}")
    queue = module.params["queue"]
    params = pika.ConnectionParameters(
        module.params["host"],
        module.params["port"],
        queue["vhost"],
        pika.PlainCredentials(module.params["user"], module.params["password"]),
        connection_attempts=3,
        retry_delay=2,
    )
    try:
        migration = Migration(pika, params, queue, time.monotonic() + module.params["timeout"])
        migration.run(module.check_mode)
        migration.connection.close()
    except (MigrationError, pika.exceptions.AMQPError) as exc:
        module.fail_json(
            msg=f"migrating queue {queue['name']} in vhost {queue['vhost']} failed: {exc!r}; every message is in "
            f"{queue['name']} or {queue['temporary']}; run the playbook again to finish",
        )
    module.exit_json(changed=True, moved_out=migration.moved["out"], moved_back=migration.moved["back"])


if __name__ == "__main__":
    main()
