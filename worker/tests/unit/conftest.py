from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

VALID = """
[broker]
endpoints = ["amqp://10.0.0.1:5672", "amqp://10.0.0.2"]
vhost = "/"
username = "warren"
password_file = "amqp-password"

[consumer]
queue = "order.events"
prefetch = 32
concurrency = 8

[handlers]
"order.*" = "warren.handlers:order_event"
"#" = "warren.handlers:job"
"""


@pytest.fixture
def creds(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "amqp-password").write_text("s3cret\n")
    return {"CREDENTIALS_DIRECTORY": str(tmp_path)}


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def _write(text: str) -> Path:
        path = tmp_path / "profile.toml"
        path.write_text(text)
        return path

    return _write
