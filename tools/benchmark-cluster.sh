#!/usr/bin/env bash
# Benchmark (prints figures; not a test): classic queue on one node vs. quorum queue on three, publish with
# confirms + consume throughput and end-to-end latency at a fixed rate, on the same run. Builds the cluster
# scenario's three brokers (molecule create + converge -s cluster, the containers warren-molecule-cluster-*),
# runs tools/benchmark-cluster.py on the first one, and destroys them. Extra arguments go to the script
# (--messages, --window, --rate, --seconds). Holds /tmp/warren-molecule-cluster.lock: the scenario's containers.
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
cd "$project"
export PATH=$project/.venv/bin:$PATH ANSIBLE_CONFIG=$project/ansible.cfg
exec 9>/tmp/warren-molecule-cluster.lock
flock 9
log=.ansible/benchmark-cluster.log
mkdir -p .ansible
trap 'molecule destroy -s cluster >>"$log" 2>&1 || true' EXIT
echo "building the cluster (molecule create + converge -s cluster, log: $log)"
if ! { molecule create -s cluster && molecule converge -s cluster; } >"$log" 2>&1; then
  tail -40 "$log"
  exit 1
fi
node=warren-molecule-cluster-1
echo "RabbitMQ $(docker exec "$node" rabbitmqctl version), $(nproc) CPUs shared by the 3 containers, $(date -u +%F)"
# The script on stdin: the container's /tmp is a tmpfs, which docker cp cannot write to.
docker exec -i "$node" /opt/warren/venv/bin/python - "$@" <tools/benchmark-cluster.py
