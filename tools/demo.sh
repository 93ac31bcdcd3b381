#!/usr/bin/env bash
# `make demo`: deploy Warren into a local systemd container with `ansible-playbook site.yml`, publish the
# tutorials' example events, and show the workers processing them. Safe to run again: the container is reused
# and the second converge changes nothing.
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
source "$project/tools/lib.sh"
cd "$project"
export PATH=$project/.venv/bin:$PATH ANSIBLE_CONFIG=$project/ansible.cfg

name=warren-demo   # the host in inventory/local/hosts.yml
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_demo() { docker exec "$name" "$@"; }

say "Starting the demo container $name ($WARREN_IMAGE)"
warren_start_container "$name"

say "ansible-playbook site.yml (inventory/local)"
ansible-playbook site.yml

# Over AMQPS, verified against the deployment CA the role put on the host, as the workers connect.
publish=(warren-publish --url "amqps://$name:5671" --ca-file /etc/warren/ca.pem --username warren
  --password-file /etc/warren/credentials/amqp-password)
since=$(in_demo date +%s)
say "Publishing the tutorials' events (persistent, with publisher confirms)"
publish_event() {
  echo "warren-publish --exchange '$1' --routing-key $2 '$3'"
  in_demo "${publish[@]}" --exchange "$1" --routing-key "$2" "$3"
}
publish_event events order.created '{"order_id":123,"event":"order.created"}'
publish_event events order.updated '{"order_id":123,"event":"order.updated"}'
publish_event '' jobs '{"job_id":1,"task":"generate-invoice"}'
publish_event notifications whatsapp '{"phone":"+911234567890","message":"Your order 123 has shipped"}'

say "Waiting for the workers to drain their queues"
for _ in $(seq 1 30); do
  pending=$(in_demo rabbitmqctl list_queues -q --no-table-headers messages | awk '{s += $1} END {print s + 0}')
  [[ $pending == 0 ]] && break
  sleep 1
done

say "What the workers logged (journalctl -u 'warren-worker@*')"
in_demo journalctl -u 'warren-worker@*' --since "@$since" --no-pager -o short | grep -E 'warren\.(handlers|outcome)'

# rabbitmqadmin shows the management plugin's statistics, refreshed every 5 s: wait (bounded) until its
# consumer count agrees with the broker's own, so a fresh deploy does not show stale zeros.
consumers_by() { awk '{s += $NF} END {print s + 0}'; }
for _ in $(seq 1 15); do
  broker=$(in_demo rabbitmqctl list_queues -q --no-table-headers consumers | consumers_by)
  stats=$(in_demo rabbitmqadmin -f tsv -q list queues consumers | consumers_by)
  [[ $stats == "$broker" ]] && break
  sleep 1
done
say "rabbitmqadmin list queues name messages consumers"
in_demo rabbitmqadmin list queues name messages consumers

secrets=${WARREN_SECRETS_DIR:-$project/.secrets/local}
cat <<HELP

Warren runs in container $name.
  Shell:            docker exec -it $name bash
  Workers:          docker exec $name systemctl status 'warren-worker@*'   (more in docs/operations.md)
  Publish more:     docker exec $name ${publish[*]} --exchange events --routing-key order.completed '{"order_id":123,"event":"order.completed"}'
  Management UI:    https://$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$name"):15671/  (user admin, password in $secrets/rabbitmq-admin)
  Deployment CA:    $secrets/tls/ca.crt  (import it into your browser, or: curl --cacert $secrets/tls/ca.crt ...)
  Remove the demo:  make demo-clean
HELP
