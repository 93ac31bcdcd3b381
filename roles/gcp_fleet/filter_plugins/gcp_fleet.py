"""Pure spec building and validation for the gcp_fleet role.

Nothing here talks to Google Cloud: the filters take the role's settings (one dict built from the
``gcp_fleet_*`` variables in vars/main.yml) and return either the list of everything wrong with them or the
parameters of the google.cloud.gcp_compute_* module calls. tasks/validate.yml fails on the first, the other
task files feed the second to the modules, and the tests assert both without a cloud.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - lets the unit tests import the module without Ansible
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

COMPUTE_API = "https://www.googleapis.com/compute/v1"
ARCHITECTURES = ("arm64", "x86_64")
NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,18}[a-z0-9])?$")
RESOURCE_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
MACHINE_TYPE_RE = re.compile(r"^([a-z][a-z0-9]*)-[a-z0-9-]+$")
ZONE_RE = re.compile(r"^([a-z]+-[a-z]+[0-9]+)-[a-z]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
PORT_RE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
SSH_KEY_RE = re.compile(
    r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9-]+@openssh\.com) [A-Za-z0-9+/=]+"
)
AUTH_KINDS = ("application", "serviceaccount")
SSH_SOURCES = ("admin", "iap")
RESERVED_LABELS = ("warren-fleet", "warren-role")
FIREWALL_SUFFIXES = ("amqp", "management", "prometheus", "cluster", "ssh")


def _family(machine_type: str) -> str | None:
    match = MACHINE_TYPE_RE.match(machine_type or "")
    return match.group(1) if match else None


def region_of(settings: dict[str, Any]) -> str:
    """The subnet's region: gcp_fleet_region, or the zone without its last letter."""
    if settings.get("region"):
        return str(settings["region"])
    match = ZONE_RE.match(str(settings.get("zone") or ""))
    return match.group(1) if match else ""


def image_of(settings: dict[str, Any]) -> tuple[str, str]:
    """(image path, architecture) from gcp_fleet_image/_architecture or the gcp_fleet_images catalogue."""
    if settings.get("image"):
        return str(settings["image"]), str(settings.get("image_architecture") or "")
    entry = (settings.get("images") or {}).get(settings.get("os")) or {}
    return str(entry.get("image") or ""), str(entry.get("architecture") or "")


def _disk_type(settings: dict[str, Any], family: dict[str, Any]) -> str:
    return str(settings.get("disk_type") or (family.get("boot_disk_types") or [""])[0])


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value), 10)
    except (TypeError, ValueError):
        return None


def _check_ports(label: str, ports: Any, errors: list[str]) -> None:
    if not isinstance(ports, list) or not ports:
        errors.append(f"{label} must be a non-empty list of ports or ranges (e.g. ['5672'] or ['35672-35682']).")
        return
    for port in ports:
        match = PORT_RE.match(str(port))
        low = int(match.group(1)) if match else 0
        high = int(match.group(2) or low) if match else 0
        if not match or not 1 <= low <= high <= 65535:
            errors.append(f"{label}: {port!r} is not a port (1-65535) or a range low-high.")


def _check_cidrs(label: str, cidrs: Any, allow_world: bool, errors: list[str]) -> None:
    if not isinstance(cidrs, list) or not cidrs:
        errors.append(
            f"{label} is empty: list the CIDRs of the operators who may reach the management UI, Prometheus and "
            "SSH (e.g. ['203.0.113.7/32']). Refusing to open them to nobody or, worse, to everyone by default."
        )
        return
    versions = set()
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError as exc:
            errors.append(f"{label}: {cidr!r} is not a CIDR ({exc}).")
            continue
        versions.add(network.version)
        if network.prefixlen == 0 and not allow_world:
            errors.append(
                f"{label}: {cidr} opens the management UI, Prometheus and SSH to the whole Internet; "
                "set gcp_fleet_allow_world_admin: true if you really mean it."
            )
    if len(versions) > 1:
        errors.append(f"{label} mixes IPv4 and IPv6 CIDRs; a VPC firewall rule takes one family only.")


def _check_machine(role: str, settings: dict[str, Any], image_arch: str, errors: list[str]) -> None:
    key = f"gcp_fleet_{role}_machine_type"
    machine_type = str(settings.get(f"{role}_machine_type") or "")
    families = settings.get("machine_families") or {}
    name = _family(machine_type)
    if name is None:
        errors.append(f"{key}: {machine_type!r} is not a machine type name like c4a-standard-4.")
        return
    family = families.get(name)
    if family is None:
        errors.append(
            f"{key}: {machine_type} belongs to the unknown machine family {name!r}; known families: "
            f"{', '.join(sorted(families))}. Arm64 families: "
            f"{', '.join(sorted(k for k, v in families.items() if v.get('architecture') == 'arm64'))}. "
            "Add it to gcp_fleet_machine_families if Google offers it."
        )
        return
    arch = family.get("architecture")
    if image_arch in ARCHITECTURES and arch != image_arch:
        errors.append(
            f"{key}: {machine_type} is an {arch} machine type but the selected image is {image_arch}; "
            f"pick an {image_arch} type (e.g. c4a-standard-4 or t2a-standard-4) or an {arch} image."
        )
    disk_type = _disk_type(settings, family)
    if disk_type not in (family.get("boot_disk_types") or []):
        errors.append(
            f"gcp_fleet_disk_type: {disk_type!r} cannot be attached to {machine_type}; the {name} family takes "
            f"{', '.join(family.get('boot_disk_types') or [])}."
        )
    size = _int(settings.get(f"{role}_disk_size_gb"))
    if size is None or size < 10:
        errors.append(f"gcp_fleet_{role}_disk_size_gb must be an integer of at least 10 (GB).")


def validate(settings: dict[str, Any]) -> list[str]:
    """Every problem with the settings, as one clear sentence each. Empty means valid."""
    errors: list[str] = []
    if not str(settings.get("project") or "").strip():
        errors.append("gcp_fleet_project is empty: set it, or export GCP_PROJECT=<your project id>.")
    if not ZONE_RE.match(str(settings.get("zone") or "")):
        errors.append(f"gcp_fleet_zone: {settings.get('zone')!r} is not a zone like us-central1-a.")
    if settings.get("region") and not REGION_RE.match(str(settings["region"])):
        errors.append(f"gcp_fleet_region: {settings['region']!r} is not a region like us-central1.")
    elif settings.get("region") and not str(settings.get("zone") or "").startswith(str(settings["region"]) + "-"):
        errors.append(f"gcp_fleet_zone {settings.get('zone')} is not in gcp_fleet_region {settings['region']}.")
    auth_kind = settings.get("auth_kind")
    if auth_kind not in AUTH_KINDS:
        errors.append(f"gcp_fleet_auth_kind: {auth_kind!r} is not one of {', '.join(AUTH_KINDS)}.")
    elif auth_kind == "serviceaccount" and not settings.get("service_account_file"):
        errors.append("gcp_fleet_auth_kind is serviceaccount but gcp_fleet_service_account_file is empty.")
    elif auth_kind == "serviceaccount" and not os.path.isfile(
        os.path.expanduser(str(settings["service_account_file"]))
    ):
        errors.append(
            f"gcp_fleet_service_account_file: {settings['service_account_file']} is not a file on the controller."
        )

    name = str(settings.get("name") or "")
    if not NAME_RE.match(name):
        errors.append(
            f"gcp_fleet_name: {name!r} must be 1-20 lowercase letters, digits or hyphens, start with a letter "
            "and not end with a hyphen (it prefixes resource names and is a label value)."
        )
    counts = {}
    for role, minimum in (("rabbitmq", 1), ("worker", 0)):
        count = _int(settings.get(f"{role}_count"))
        counts[role] = count
        if count is None or count < minimum or count > 50:
            given = settings.get(f"{role}_count")
            errors.append(f"gcp_fleet_{role}_count must be an integer from {minimum} to 50, got {given!r}.")

    image, image_arch = image_of(settings)
    if not settings.get("image") and settings.get("os") not in (settings.get("images") or {}):
        errors.append(
            f"gcp_fleet_os: {settings.get('os')!r} is not a key of gcp_fleet_images "
            f"({', '.join(sorted(settings.get('images') or {}))}); or set gcp_fleet_image."
        )
    elif not image:
        errors.append("The image is empty: set gcp_fleet_images[gcp_fleet_os].image or gcp_fleet_image.")
    elif image_arch not in ARCHITECTURES:
        errors.append(
            f"The architecture of image {image} is {image_arch or 'not set'}: set gcp_fleet_image_architecture "
            f"(or the catalogue entry's architecture) to one of {', '.join(ARCHITECTURES)}."
        )
    for role in ("rabbitmq", "worker"):
        if role == "worker" and counts.get("worker") == 0:
            continue
        _check_machine(role, settings, image_arch, errors)

    for key in ("network", "subnetwork"):
        if not RESOURCE_RE.match(str(settings.get(key) or "")):
            errors.append(f"gcp_fleet_{key}: {settings.get(key)!r} is not a valid resource name.")
    if settings.get("network_create"):
        try:
            subnet = ipaddress.ip_network(str(settings.get("subnet_cidr")), strict=True)
            if subnet.version != 4 or not subnet.is_private or subnet.prefixlen > 29:
                raise ValueError("must be a private IPv4 range of /29 or larger")
        except ValueError as exc:
            errors.append(f"gcp_fleet_subnet_cidr: {settings.get('subnet_cidr')!r} is not usable ({exc}).")

    _check_cidrs("gcp_fleet_admin_cidrs", settings.get("admin_cidrs"), bool(settings.get("allow_world_admin")), errors)
    if settings.get("ssh_source") not in SSH_SOURCES:
        errors.append(f"gcp_fleet_ssh_source: {settings.get('ssh_source')!r} is not one of {', '.join(SSH_SOURCES)}.")
    elif settings.get("ssh_source") == "iap":
        _check_cidrs("gcp_fleet_iap_cidrs", settings.get("iap_cidrs"), False, errors)
    for key in ("amqp_ports", "management_ports", "prometheus_ports", "cluster_ports"):
        _check_ports(f"gcp_fleet_{key}", settings.get(key), errors)
    _check_ports("gcp_fleet_ssh_port", [settings.get("ssh_port")], errors)
    for key in ("rabbitmq_tag", "worker_tag"):
        if not RESOURCE_RE.match(str(settings.get(key) or "")):
            errors.append(f"gcp_fleet_{key}: {settings.get(key)!r} is not a valid network tag.")
    if settings.get("rabbitmq_tag") == settings.get("worker_tag"):
        errors.append("gcp_fleet_rabbitmq_tag and gcp_fleet_worker_tag must differ, or workers get broker access.")

    labels = settings.get("labels") or {}
    if not isinstance(labels, dict):
        errors.append("gcp_fleet_labels must be a mapping of label keys to values.")
        labels = {}
    for key, value in labels.items():
        if key in RESERVED_LABELS:
            errors.append(f"gcp_fleet_labels: {key} is set by the role itself.")
        elif not LABEL_KEY_RE.match(str(key)) or not LABEL_VALUE_RE.match(str(value)):
            errors.append(f"gcp_fleet_labels: {key}={value} is not a valid GCP label (lowercase, digits, _ and -).")

    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", str(settings.get("ssh_user") or "")):
        errors.append(f"gcp_fleet_ssh_user: {settings.get('ssh_user')!r} is not a valid Linux user name.")
    if not SSH_KEY_RE.match(str(settings.get("ssh_public_key") or "").strip()):
        errors.append(
            "gcp_fleet_ssh_public_key is empty or not an OpenSSH public key: point gcp_fleet_ssh_public_key_file "
            "at your .pub file or set gcp_fleet_ssh_public_key."
        )
    return errors


def validate_teardown(settings: dict[str, Any]) -> list[str]:
    """Problems that stop a teardown: where, who, which fleet, and the explicit confirmation."""
    errors: list[str] = []
    if not str(settings.get("project") or "").strip():
        errors.append("gcp_fleet_project is empty: set it, or export GCP_PROJECT=<your project id>.")
    if not ZONE_RE.match(str(settings.get("zone") or "")):
        errors.append(f"gcp_fleet_zone: {settings.get('zone')!r} is not a zone like us-central1-a.")
    if settings.get("auth_kind") not in AUTH_KINDS:
        errors.append(f"gcp_fleet_auth_kind: {settings.get('auth_kind')!r} is not one of {', '.join(AUTH_KINDS)}.")
    elif settings.get("auth_kind") == "serviceaccount" and not settings.get("service_account_file"):
        errors.append("gcp_fleet_auth_kind is serviceaccount but gcp_fleet_service_account_file is empty.")
    if not NAME_RE.match(str(settings.get("name") or "")):
        errors.append(f"gcp_fleet_name: {settings.get('name')!r} is not a valid fleet name.")
    if str(settings.get("teardown_confirm") or "") != str(settings.get("name") or ""):
        errors.append(
            f"Teardown deletes every instance labelled warren-fleet={settings.get('name')} and the fleet's "
            f"firewall rules{' and network' if settings.get('network_create') else ''}: confirm with "
            f"-e gcp_fleet_teardown_confirm={settings.get('name')}."
        )
    return errors


def firewall_names(settings: dict[str, Any]) -> list[str]:
    """Names of the firewall rules firewall_specs creates (the teardown deletes these)."""
    return [f"{settings['name']}-allow-{suffix}" for suffix in FIREWALL_SUFFIXES]


def network_ref(settings: dict[str, Any]) -> dict[str, str]:
    """The network as the google.cloud modules take a reference to it."""
    return {"selfLink": _network_link(settings)}


def _labels(settings: dict[str, Any], role: str) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (settings.get("labels") or {}).items()}
    labels.update({"warren-fleet": str(settings["name"]), "warren-role": role})
    return labels


def _network_link(settings: dict[str, Any]) -> str:
    return f"{COMPUTE_API}/projects/{settings['project']}/global/networks/{settings['network']}"


def _firewall(settings, suffix, description, ports, target_tags, source_tags=None, source_ranges=None):
    rule: dict[str, Any] = {
        "name": f"{settings['name']}-allow-{suffix}",
        "description": f"Warren fleet {settings['name']}: {description}",
        "network": {"selfLink": _network_link(settings)},
        "direction": "INGRESS",
        "priority": 1000,
        "allowed": [{"ip_protocol": "tcp", "ports": [str(p) for p in ports]}],
        "target_tags": list(target_tags),
    }
    if source_tags:
        rule["source_tags"] = list(source_tags)
    if source_ranges:
        rule["source_ranges"] = [str(r) for r in source_ranges]
    return rule


def firewall_specs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    broker, worker = settings["rabbitmq_tag"], settings["worker_tag"]
    admin = settings["admin_cidrs"]
    ssh_ranges = admin if settings["ssh_source"] == "admin" else settings["iap_cidrs"]
    return [
        _firewall(
            settings,
            "amqp",
            "AMQP from worker instances to brokers",
            settings["amqp_ports"],
            [broker],
            source_tags=[worker],
        ),
        _firewall(
            settings,
            "management",
            "management UI/API from operators",
            settings["management_ports"],
            [broker],
            source_ranges=admin,
        ),
        _firewall(
            settings,
            "prometheus",
            "Prometheus metrics from operators",
            settings["prometheus_ports"],
            [broker],
            source_ranges=admin,
        ),
        _firewall(
            settings,
            "cluster",
            "epmd, inter-node and CLI ports between brokers only",
            settings["cluster_ports"],
            [broker],
            source_tags=[broker],
        ),
        _firewall(
            settings,
            "ssh",
            f"SSH from {settings['ssh_source']} ranges",
            [settings["ssh_port"]],
            [broker, worker],
            source_ranges=ssh_ranges,
        ),
    ]


def _instance(settings: dict[str, Any], role: str, index: int) -> dict[str, Any]:
    short = "rabbitmq" if role == "rabbitmq" else "worker"
    machine_type = settings[f"{short}_machine_type"]
    family = settings["machine_families"][_family(machine_type)]
    image, _ = image_of(settings)
    interface: dict[str, Any] = {
        "network": {"selfLink": _network_link(settings)},
        "subnetwork": {
            "selfLink": f"{COMPUTE_API}/projects/{settings['project']}/regions/{region_of(settings)}"
            f"/subnetworks/{settings['subnetwork']}"
        },
        "nic_type": "GVNIC",
    }
    if settings.get("external_ip"):
        interface["access_configs"] = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]
    return {
        "name": f"{settings['name']}-{short}-{index}",
        "zone": settings["zone"],
        "machine_type": machine_type,
        "disks": [
            {
                "auto_delete": True,
                "boot": True,
                "initialize_params": {
                    "source_image": image,
                    "disk_type": _disk_type(settings, family),
                    "disk_size_gb": _int(settings[f"{short}_disk_size_gb"]),
                },
            }
        ],
        "network_interfaces": [interface],
        "labels": _labels(settings, role),
        "tags": {"items": [settings[f"{short}_tag"]]},
        "metadata": {
            "ssh-keys": f"{settings['ssh_user']}:{str(settings['ssh_public_key']).strip()}",
            "enable-oslogin": "FALSE",
        },
        "scheduling": {
            "automatic_restart": True,
            "on_host_maintenance": family.get("on_host_maintenance", "TERMINATE"),
        },
        "status": "RUNNING",
    }


def specs(settings: dict[str, Any]) -> dict[str, Any]:
    """All resources of the fleet as google.cloud module parameters. Raises on invalid settings."""
    errors = validate(settings)
    if errors:
        raise AnsibleFilterError("Invalid gcp_fleet settings:\n- " + "\n- ".join(errors))
    region = region_of(settings)
    return {
        "project": settings["project"],
        "zone": settings["zone"],
        "region": region,
        "network": {
            "name": settings["network"],
            "auto_create_subnetworks": False,
            "description": f"Warren fleet {settings['name']}",
        },
        "subnetwork": {
            "name": settings["subnetwork"],
            "region": region,
            "ip_cidr_range": str(settings["subnet_cidr"]),
            "network": {"selfLink": _network_link(settings)},
            "private_ip_google_access": True,
        },
        "firewalls": firewall_specs(settings),
        "instances": [_instance(settings, "rabbitmq", i) for i in range(1, _int(settings["rabbitmq_count"]) + 1)]
        + [_instance(settings, "workers", i) for i in range(1, _int(settings["worker_count"]) + 1)],
    }


def ssh_wait_addresses(results: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, str]]:
    """The instances whose SSH the controller can wait for: {name, address} for each with an external IP, when
    SSH is open from the admin CIDRs. With gcp_fleet_ssh_source iap only Google's IAP range reaches port 22 (an
    external IP would time out), and without external IPs there is nothing the controller could reach directly:
    then nothing is waited for here and the first play's connection is the check."""
    if settings.get("ssh_source") != "admin":
        return []
    addresses = []
    for result in results:
        configs = ((result.get("networkInterfaces") or [{}])[0].get("accessConfigs")) or []
        nat_ip = configs[0].get("natIP") if configs else None
        if nat_ip:
            addresses.append({"name": str(result.get("name")), "address": str(nat_ip)})
    return addresses


def _metadata(metadata: Any) -> dict[str, Any]:
    """Instance metadata as key -> value, from the API's {"items": [{"key", "value"}]} or an already decoded map."""
    metadata = metadata or {}
    if isinstance(metadata.get("items"), list):
        return {str(entry.get("key")): entry.get("value") for entry in metadata["items"] if isinstance(entry, dict)}
    return dict(metadata)


def instance_drift(existing: list[dict[str, Any]], instances: list[dict[str, Any]]) -> list[str]:
    """What google.cloud.gcp_compute_instance would leave stale on the instances that already exist (as the API
    lists them): it updates labels, machine type and a few more fields, but not the metadata (the ssh-keys the
    deployment logs in with) nor the network tags (the firewall rules' sources and targets). One message per
    stale field, with the command that applies it."""
    found = {str(resource.get("name")): resource for resource in existing or []}
    messages = []
    for spec in instances:
        name, zone = spec["name"], spec["zone"]
        resource = found.get(name)
        if resource is None:
            continue  # created from the spec
        wanted_key = spec["metadata"]["ssh-keys"]
        if _metadata(resource.get("metadata")).get("ssh-keys") != wanted_key:
            messages.append(
                f"{name}: its ssh-keys metadata is not gcp_fleet_ssh_user/gcp_fleet_ssh_public_key's; apply it with "
                f"`gcloud compute instances add-metadata {name} --zone {zone} --metadata ssh-keys='{wanted_key}'`."
            )
        wanted_tags = sorted(spec["tags"]["items"])
        actual_tags = sorted((resource.get("tags") or {}).get("items") or [])
        if actual_tags != wanted_tags:
            extra_tags = sorted(set(actual_tags) - set(wanted_tags))
            remove = (
                f" and `gcloud compute instances remove-tags {name} --zone {zone} --tags {','.join(extra_tags)}`"
                if extra_tags
                else ""
            )
            messages.append(
                f"{name}: its network tags are {actual_tags or 'none'}, the fleet's are {wanted_tags}; apply them with "
                f"`gcloud compute instances add-tags {name} --zone {zone} --tags {','.join(wanted_tags)}`{remove}."
            )
    return messages


class FilterModule:
    """Validation (lists of problems), specs (module parameters), the teardown's names and the post-create checks."""

    def filters(self):
        return {
            "gcp_fleet_errors": validate,
            "gcp_fleet_specs": specs,
            "gcp_fleet_teardown_errors": validate_teardown,
            "gcp_fleet_firewall_names": firewall_names,
            "gcp_fleet_network_ref": network_ref,
            "gcp_fleet_ssh_wait_addresses": ssh_wait_addresses,
            "gcp_fleet_instance_drift": instance_drift,
        }
