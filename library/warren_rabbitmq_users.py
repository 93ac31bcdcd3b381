#!/usr/bin/python
"""Ansible module of Warren: which declared RabbitMQ users differ from the broker, read from the management API.

Shared by the rabbitmq role (its administrator, the guest user) and the rabbitmq_topology role (the application
users). community.rabbitmq.rabbitmq_user applies users through rabbitmqctl, seconds per user for an Erlang VM
each; this module tells which users need it, so a run in which nothing changed runs it for none."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.error import HTTPError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

DOCUMENTATION = r"""
module: warren_rabbitmq_users
short_description: Find the RabbitMQ users that differ from their declaration
description:
  - Reads /api/users and /api/permissions of the management API and compares each declared user with them, in
    presence, password (against the stored hash), tags and the permissions of every vhost.
  - Changes nothing, in check mode or not; hand the names it returns to community.rabbitmq.rabbitmq_user.
  - When the management API refuses the login (the login user does not exist yet, has another password or is no
    administrator), every declared user is returned, since none can be seen.
  - With --diff, shows each differing user before and after, without passwords.
options:
  users:
    description: The declared users.
    type: list
    elements: dict
    required: true
    suboptions:
      name: {type: str, required: true, description: User name.}
      password: {type: str, no_log: true, description: "Password, required unless state is absent."}
      tags: {type: list, elements: str, default: [], description: Tags such as administrator.}
      permissions:
        description: Per vhost, regular expressions on resource names; a missing one denies ("^$").
        type: list
        elements: dict
        default: []
        suboptions:
          vhost: {type: str, default: /, description: The vhost.}
          configure: {type: str, default: "^$", description: Configure permission.}
          write: {type: str, default: "^$", description: Write permission.}
          read: {type: str, default: "^$", description: Read permission.}
      state: {type: str, choices: [present, absent], default: present, description: Whether the user exists.}
  login_host: {type: str, default: 127.0.0.1, description: Management API host.}
  login_port: {type: int, default: 15672, description: Management API port.}
  login_user: {type: str, required: true, description: Administrator to read the API as.}
  login_password: {type: str, required: true, no_log: true, description: Its password.}
"""

RETURN = r"""
users:
  description: Names of the declared users that differ from the broker, in declaration order.
  returned: always
  type: list
  elements: str
"""

# RabbitMQ's password hashes: base64(4-byte salt + digest(salt + password)).
_HASHES = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


def password_matches(password, password_hash, algorithm):
    """Whether a password hash read from the management API is the hash of this password."""
    digest = _HASHES.get(algorithm)
    try:
        raw = base64.b64decode(password_hash or "", validate=True)
    except ValueError:
        return False
    if digest is None or len(raw) <= 4 or password is None:
        return False
    salt = raw[:4]
    return digest(salt + password.encode("utf-8")).digest() == raw[4:]


def _permissions(permissions):
    """Declared permissions as the API's (vhost, configure, write, read); a missing regex denies ("^$")."""
    return {
        (p.get("vhost") or "/", p.get("configure") or "^$", p.get("write") or "^$", p.get("read") or "^$")
        for p in permissions or []
    }


def _tags(tags):
    if isinstance(tags, str):  # a comma-separated string before RabbitMQ 3.9
        tags = tags.split(",")
    return sorted(tag for tag in tags or [] if tag)


def _view(present, tags=(), permissions=(), password="(same)"):
    """A user as --diff shows it: never the password itself."""
    if not present:
        return {"state": "absent"}
    return {
        "state": "present",
        "password": password,
        "tags": list(tags),
        "permissions": [
            dict(zip(("vhost", "configure", "write", "read"), p, strict=True)) for p in sorted(permissions)
        ],
    }


def compare(users, current_users, current_permissions):
    """(names of the declared users that differ, their diff) against /api/users and /api/permissions."""
    current = {user["name"]: user for user in current_users}
    granted = {}
    for p in current_permissions:
        granted.setdefault(p["user"], set()).add((p["vhost"], p["configure"], p["write"], p["read"]))
    names, before, after = [], {}, {}
    for user in users:
        name, existing = user["name"], current.get(user["name"])
        if user.get("state", "present") == "absent":
            if existing is not None:
                names.append(name)
                before[name], after[name] = (
                    _view(True, _tags(existing.get("tags")), granted.get(name, ())),
                    _view(False),
                )
            continue
        wanted_tags, wanted_permissions = _tags(user.get("tags")), _permissions(user.get("permissions"))
        if existing is None:
            names.append(name)
            before[name], after[name] = _view(False), _view(True, wanted_tags, wanted_permissions, "(set)")
            continue
        tags, permissions = _tags(existing.get("tags")), granted.get(name, set())
        same_password = password_matches(
            user.get("password"), existing.get("password_hash"), existing.get("hashing_algorithm")
        )
        if tags != wanted_tags or permissions != wanted_permissions or not same_password:
            names.append(name)
            before[name] = _view(True, tags, permissions)
            after[name] = _view(True, wanted_tags, wanted_permissions, "(same)" if same_password else "(changed)")
    return names, {"before": before, "after": after}


def _read(module, path):
    """One management API answer as JSON; None when the API refuses the login."""
    params = module.params
    url = f"http://{params['login_host']}:{params['login_port']}/api/{path}"
    try:
        response = open_url(
            url,
            url_username=params["login_user"],
            url_password=params["login_password"],
            force_basic_auth=True,
            timeout=30,
        )
    except HTTPError as exc:
        if exc.code in (401, 403):
            return None
        module.fail_json(msg=f"GET {url}: HTTP {exc.code} {exc.reason}")
    except Exception as exc:  # connection refused, timeout: say which URL
        module.fail_json(msg=f"GET {url}: {exc}")
    return json.loads(response.read())


def main():
    permission = {
        "vhost": {"type": "str", "default": "/"},
        "configure": {"type": "str", "default": "^$"},
        "write": {"type": "str", "default": "^$"},
        "read": {"type": "str", "default": "^$"},
    }
    user = {
        "name": {"type": "str", "required": True},
        "password": {"type": "str", "no_log": True},
        "tags": {"type": "list", "elements": "str", "default": []},
        "permissions": {"type": "list", "elements": "dict", "default": [], "options": permission},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "dict", "required": True, "options": user},
            "login_host": {"type": "str", "default": "127.0.0.1"},
            "login_port": {"type": "int", "default": 15672},
            "login_user": {"type": "str", "required": True},
            "login_password": {"type": "str", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    users = module.params["users"]
    current_users = _read(module, "users")
    current_permissions = _read(module, "permissions") if current_users is not None else None
    if current_users is None or current_permissions is None:
        names = [user["name"] for user in users]
        diff = {"before": "(the management API refused the login: every user is applied)\n", "after": ""}
    else:
        names, diff = compare(users, current_users, current_permissions)
    result = {"changed": False, "users": names}
    if module._diff and names:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
