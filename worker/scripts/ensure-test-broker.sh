#!/bin/sh
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 for the integration tests and the benchmark.
# Idempotent: does nothing when something already listens on 5672. Installs Debian's rabbitmq-server
# when missing (root only) and starts it detached: there is no systemd on the CI host.
set -eu

listening() {
    # ss is in iproute2; fall back to bash's /dev/tcp when it is absent.
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn 'sport = :5672' | grep -q .
    else
        (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
    fi
}

node_answers() { rabbitmqctl -q ping >/dev/null 2>&1; }

# wait_until SECONDS WHAT COMMAND...: polls every 2 s, fails with a message after SECONDS.
wait_until() {
    limit=$1 what=$2
    shift 2
    waited=0
    until "$@"; do
        if [ "$waited" -ge "$limit" ]; then
            echo "ensure-test-broker: $what after $limit s; see /var/log/rabbitmq/" >&2
            exit 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

if listening; then
    echo "ensure-test-broker: something already listens on 5672"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-broker: nothing listens on 5672 and we are not root; start RabbitMQ yourself" >&2
    exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q rabbitmq-server
fi

# The Debian package's postinst may start it through systemd-less invoke-rc.d; only start when still silent.
if ! node_answers; then
    # The broker outlives this script: it must not inherit a caller's descriptors (a lock taken with
    # `flock FILE make integration` would be held for as long as the broker runs).
    for fd in 3 4 5 6 7 8 9; do eval "exec $fd>&-"; done
    rabbitmq-server -detached
    # -detached returns before the node registers with epmd, and await_startup fails on an unknown node.
    wait_until 120 "RabbitMQ did not answer a ping" node_answers
else
    # A node that answers but does not listen may have its application stopped (`rabbitmqctl stop_app`, as the
    # broker-restart test does; a run killed at that moment leaves it so), and await_startup would wait for a
    # start that never comes. On a node that is still booting this fails harmlessly.
    rabbitmqctl -q start_app || true
fi
rabbitmqctl -q await_startup --timeout 120
# Management is handy for inspecting test vhosts by hand; the tests themselves use rabbitmqctl.
rabbitmq-plugins enable rabbitmq_management >/dev/null || echo "ensure-test-broker: could not enable rabbitmq_management (tests fall back to rabbitmqctl)" >&2

wait_until 60 "RabbitMQ started but 5672 is not listening" listening
echo "ensure-test-broker: RabbitMQ is up on 127.0.0.1:5672"
