"""Real ansible-playbook runs of playbooks/remove-node.yml with a bad node name: no name, a name the rabbitmq group
does not hold, the group's last host. Each stops in the first play, on the controller, before any broker host is
contacted (the inventory's hosts do not exist), with a message saying what to do."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "resources"))
from playbook_run import run_ansible_playbook
from role_validation import failure_lines


def run_remove_node(tmp_path, brokers, *extra):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[rabbitmq]\n" + "".join(f"{host}\n" for host in brokers), encoding="utf-8")
    return run_ansible_playbook(
        ["-i", inventory, "playbooks/remove-node.yml", *extra],
        tmp_path,
        variables={"ansible_python_interpreter": sys.executable},
        # One JSON object per result, so the failure message is read back exactly.
        env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
    )


@pytest.mark.parametrize(
    ("brokers", "extra", "wanted"),
    [
        (["broker-1", "broker-2", "broker-3"], [], "Name the node to remove by its inventory name"),
        (
            ["broker-1", "broker-2", "broker-3"],
            ["-e", "warren_remove_node=broker-4"],
            "'broker-4' is not a host of the rabbitmq group of this inventory (broker-1, broker-2, broker-3)",
        ),
        (["broker-1"], ["-e", "warren_remove_node=broker-1"], "broker-1 is the only host of the rabbitmq group"),
    ],
    ids=["no-name", "unknown-name", "last-node"],
)
def test_a_bad_node_name_is_refused_on_the_controller(tmp_path, brokers, extra, wanted):
    result = run_remove_node(tmp_path, brokers, *extra)
    message = " ".join(failure_lines(result))
    assert message.startswith(wanted), message
    assert message.endswith("Nothing was changed.")
    # The play on the broker never started: only localhost ran.
    assert "PLAY [Remove the node" not in result.stdout
    assert [line.split()[0] for line in result.stdout.split("PLAY RECAP")[1].splitlines() if ":" in line] == [
        "localhost"
    ]
