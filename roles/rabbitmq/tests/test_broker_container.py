"""Items 7 and 8 of issue 21, and its rabbitmqadmin point: playbooks/broker.yml, under the project's ansible.cfg,
converging a throwaway systemd container of the local Debian image set up the way SUSE's packaging leaves a host:

- item 7: rabbitmq-env.conf sets NODENAME=rabbit@localhost, as SUSE's rabbitmq-server package ships it, and the
  node has never run under another name;
- item 8: firewalld runs, but the Python bindings for the interpreter Ansible uses are missing (on SUSE they are
  built per Python version and firewalld's own are for Python 3.6; here python3-firewall is removed under the
  running daemon);
- rabbitmqadmin: the copy served by the management plugin is used, as SUSE does not package it; its
  `#!/usr/bin/env python3` is SLES's Python 3.6, or nothing on a minimal image, so it must run on Ansible's.

Ansible runs on /usr/bin/python3.11, as the GCP inventory has it. A second converge must change nothing.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from playbook_run import changed_count
from throwaway_container import docker_exec, run_playbook, throwaway_container

SUSE_ENV_FILE = "# as the SUSE rabbitmq-server package ships it\nNODENAME=rabbit@localhost\n"


def make_suse_like_broker_host(name):
    docker_exec(
        name,
        "set -e; apt-get update -q >/dev/null;"
        " DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server netbase"
        " firewalld >/dev/null 2>&1;"
        # SUSE's package neither starts the node nor names it after the host.
        " systemctl stop rabbitmq-server; rm -rf /var/lib/rabbitmq/mnesia;"
        f" printf '{SUSE_ENV_FILE}' > /etc/rabbitmq/rabbitmq-env.conf;"
        " systemctl is-active firewalld;"
        # The daemon keeps running on the modules it loaded; Ansible's interpreter can no longer import them.
        " dpkg --remove --force-depends python3-firewall >/dev/null 2>&1",
    )
    assert docker_exec(name, "/usr/bin/python3.11 -c 'import firewall'", check=False).returncode != 0
    assert docker_exec(name, "systemctl is-active firewalld").stdout.strip() == "active"


def converge(name, tmp_path):
    variables = {
        "rabbitmq_erlang_cookie": "Issue21CookieIssue21CookieIssue21",
        "rabbitmq_admin_password": "issue21-admin-password",
        # The deployment CA and this broker's certificate, generated on the controller.
        "rabbitmq_tls_pki_dir": str(tmp_path / "tls"),
        # SUSE's rabbitmqadmin path: downloaded from the management API, not packaged.
        "__rabbitmq_rabbitmqadmin_packaged": False,
        "__rabbitmq_rabbitmqadmin_path": "/usr/local/bin/rabbitmqadmin",
    }
    result = run_playbook(name, "playbooks/broker.yml", tmp_path, variables)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return changed_count(name, result)


def test_item7_item8_a_suse_like_broker_host_converges_and_reconverges_unchanged(tmp_path):
    with throwaway_container("issue21-broker", systemd=True) as name:
        make_suse_like_broker_host(name)
        converge(name, tmp_path)

        # Item 7: the role owns the node name, and its user management reached that node.
        assert f"NODENAME=rabbit@{name}" in docker_exec(name, "cat /etc/rabbitmq/rabbitmq-env.conf").stdout
        users = docker_exec(name, "rabbitmqctl -q list_users --formatter json").stdout
        assert [u["user"] for u in json.loads(users)] == ["admin"]
        assert docker_exec(name, "rabbitmqctl -q eval 'node().'").stdout.strip() == f"'rabbit@{name}'"

        # Item 8: the bindings came back for Ansible's interpreter and the ports are open in firewalld: the TLS
        # ones only, as the plain listeners are loopback-only by default.
        docker_exec(name, "/usr/bin/python3.11 -c 'import firewall.client'")
        ports = set(docker_exec(name, "firewall-cmd --zone=public --list-ports").stdout.split())
        assert {"5671/tcp", "15671/tcp", "15691/tcp"} <= ports
        assert not {"5672/tcp", "15672/tcp", "15692/tcp"} & ports

        # rabbitmqadmin runs on the interpreter Ansible uses, and works for root as the tutorials type it.
        assert docker_exec(name, "head -n 1 /usr/local/bin/rabbitmqadmin").stdout.strip() == "#!/usr/bin/python3.11"
        assert "admin" in docker_exec(name, "/usr/local/bin/rabbitmqadmin list users name").stdout

        assert converge(name, tmp_path) == 0
