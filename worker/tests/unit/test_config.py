from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import VALID

from warren import handlers
from warren.config import ConfigError, load_config
from warren.worker_cli import worker_main


def test_valid_profile_with_defaults(write: Any, creds: dict[str, str]) -> None:
    cfg = load_config(write(VALID), creds)
    assert cfg.broker.endpoints == ("amqp://10.0.0.1:5672", "amqp://10.0.0.2")
    assert cfg.broker.password == "s3cret"  # trailing newline stripped
    assert (cfg.broker.heartbeat, cfg.broker.connection_timeout) == (10, 10.0)
    assert cfg.consumer.drain_timeout == 30.0
    assert [(h.pattern, h.func) for h in cfg.handlers] == [
        ("order.*", handlers.order_event),
        ("#", handlers.job),
    ]
    assert (cfg.retry.exchange, cfg.retry.max_attempts, cfg.retry.initial_delay) == ("warren.retry", 5, 1.0)
    assert cfg.dead_letter_exchange == "warren.dlx"
    assert (cfg.log_format, cfg.log_level, cfg.metrics_listen) == ("plain", "INFO", None)


def test_absolute_password_file_and_metrics(write: Any, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    text = VALID.replace('"amqp-password"', f'"{tmp_path / "pw"}"') + '[metrics]\nlisten = "[::1]:9420"\n'
    cfg = load_config(write(text), {})
    assert cfg.broker.password == "x"
    assert cfg.metrics_listen == ("::1", 9420)


def problems(text: str, env: dict[str, str]) -> list[str]:
    import tomllib

    from warren.config import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), "p.toml", env)
    return info.value.problems


def test_every_problem_is_reported_at_once(creds: dict[str, str]) -> None:
    text = """
[broker]
endpoints = ["http://x", "amqp://user:pw@host", "amqp://h/vhost"]
username = ""
password_file = "missing"
heartbeat = true
colour = "blue"

[consumer]
queue = "q"
prefetch = 0
concurrency = 4
drain_timeout = "30"

[handlers]
"order.*" = "warren.handlers:nope"
"a.b*" = "warren.handlers:job"
"x" = "no_such_module_xyz:f"
"y" = "warren.handlers"

[retry]
max_attempts = 0
initial_delay = 5
max_delay = 1

[logging]
format = "xml"

[metrics]
listen = "9420"

[extra]
"""
    assert problems(text, creds) == [
        "unknown section [extra]",
        "unknown key broker.colour",
        "broker.endpoints: 'http://x' must start with amqp:// or amqps://",
        "broker.endpoints: 'amqp://user:pw@host' contains credentials; use broker.username and "
        "broker.password_file",
        "broker.endpoints: 'amqp://h/vhost' must be scheme://host[:port] only; the vhost is broker.vhost",
        "broker.username must not be empty",
        f"broker.password_file {creds['CREDENTIALS_DIRECTORY']}/missing: No such file or directory",
        "broker.heartbeat must be an integer, got a boolean",
        "consumer.prefetch must be between 1 and 65535",
        "consumer.concurrency (4) must not exceed consumer.prefetch (0)",
        "consumer.drain_timeout must be an integer or number, got a string",
        "handlers.'order.*': module 'warren.handlers' has no attribute 'nope'",
        "handlers: routing-key pattern 'a.b*': '*' and '#' must be whole words",
        "handlers.'x': cannot import 'no_such_module_xyz': ModuleNotFoundError: No module named "
        "'no_such_module_xyz'",
        "handlers.'y': 'warren.handlers' is not of the form 'package.module:function'",
        "retry.max_attempts must be >= 1 (1 = no retries)",
        "retry.max_delay must be >= retry.initial_delay",
        "logging.format must be one of plain, json, got 'xml'",
        "metrics.listen must be 'host:port' (e.g. 127.0.0.1:9420) or empty, got '9420'",
    ]


def test_missing_sections_and_relative_password_without_credentials_directory() -> None:
    assert problems("[broker]\nendpoints=[]\nusername='u'\npassword_file='pw'\n", {}) == [
        "section [consumer] is required",
        "section [handlers] is required",
        "broker.endpoints must list at least one amqp:// URL",
        "broker.password_file 'pw' is relative but CREDENTIALS_DIRECTORY is not set "
        "(use systemd LoadCredential= or an absolute path)",
        "consumer.queue is required",
    ]


def test_concurrency_above_prefetch_is_rejected(creds: dict[str, str]) -> None:
    text = VALID.replace("concurrency = 8", "concurrency = 33")
    assert problems(text, creds) == ["consumer.concurrency (33) must not exceed consumer.prefetch (32)"]


def test_cli_invalid_config_exits_78_with_one_line(
    write: Any, creds: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", creds["CREDENTIALS_DIRECTORY"])
    path = write(VALID.replace("prefetch = 32", "prefetch = -1").replace('"order.*"', '"order.**"'))
    assert worker_main(["--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (
        f"warren-worker: invalid configuration {path}: consumer.prefetch must be between 1 and 65535; "
        "consumer.concurrency (8) must not exceed consumer.prefetch (-1); "
        "handlers: routing-key pattern 'order.**': '*' and '#' must be whole words\n"
    )


def test_cli_unreadable_and_broken_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert worker_main(["--config", str(tmp_path / "nope.toml")]) == 78
    assert "cannot read file: No such file or directory" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[broker\n")
    assert worker_main(["--config", str(bad)]) == 78
    assert "not valid TOML" in capsys.readouterr().err


def test_cli_check(write: Any, creds: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", creds["CREDENTIALS_DIRECTORY"])
    assert worker_main(["--config", str(write(VALID)), "--check"]) == 0


def test_cli_bad_metrics_listen_exits_78(
    write: Any, creds: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", creds["CREDENTIALS_DIRECTORY"])
    assert worker_main(["--config", str(write(VALID)), "--metrics-listen", "9420", "--check"]) == 78
    assert "--metrics-listen: metrics.listen must be 'host:port'" in capsys.readouterr().err
    assert worker_main(["--config", str(write(VALID)), "--metrics-listen", "127.0.0.1:9420", "--check"]) == 0


@pytest.mark.parametrize(
    ("value", "valid"), [(0, True), (5, True), (3600, True), (4, False), (3601, False), (-1, False)]
)
def test_heartbeat_is_off_or_between_5_s_and_an_hour(
    write: Any, creds: dict[str, str], value: int, valid: bool
) -> None:
    text = VALID.replace("[broker]", f"[broker]\nheartbeat = {value}")
    if valid:
        assert load_config(write(text), creds).broker.heartbeat == value
    else:
        with pytest.raises(
            ConfigError,
            match=rf"broker.heartbeat must be 0 \(disabled\) or between 5 and 3600 seconds .*got {value}",
        ):
            load_config(write(text), creds)
