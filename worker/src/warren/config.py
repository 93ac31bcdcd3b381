"""Worker profile: TOML -> frozen dataclasses, validated all at once (schema in docs/design.md)."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from warren.broker_config import BrokerConfig, read_broker
from warren.retry import Backoff
from warren.routing import pattern_problem
from warren.toml_reader import TomlReader

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("plain", "json")


class ConfigError(Exception):
    """Every problem found in one profile; str() is the single line operators see."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"invalid configuration {path}: " + "; ".join(problems))


@dataclass(frozen=True)
class ConsumerConfig:
    queue: str
    prefetch: int
    concurrency: int
    drain_timeout: float


@dataclass(frozen=True)
class HandlerSpec:
    pattern: str
    target: str  # "package.module:function", for logs
    func: Callable[..., Any]


@dataclass(frozen=True)
class RetryConfig:
    exchange: str
    max_attempts: int
    initial_delay: float
    multiplier: float
    max_delay: float

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.initial_delay, self.multiplier, self.max_delay)


@dataclass(frozen=True)
class WorkerConfig:
    path: str
    broker: BrokerConfig
    consumer: ConsumerConfig
    handlers: tuple[HandlerSpec, ...]
    retry: RetryConfig
    dead_letter_exchange: str
    log_format: str
    log_level: str
    metrics_listen: tuple[str, int] | None
    # Seconds between summary lines (0: only the one at exit) and the built-in handlers' tutorial lines:
    # messages a second that get them (docs/operations.md, "Logs").
    log_summary_interval: float = 60.0
    log_tutorial_rate: int = 10


_SCHEMA: dict[str, set[str]] = {
    "broker": {
        "endpoints",
        "vhost",
        "username",
        "password_file",
        "heartbeat",
        "connection_timeout",
        "ca_file",
        "cert_file",
        "key_file",
    },
    "consumer": {"queue", "prefetch", "concurrency", "drain_timeout"},
    "handlers": set(),  # free-form: pattern -> import path
    "retry": {"exchange", "max_attempts", "initial_delay", "multiplier", "max_delay"},
    "dead_letter": {"exchange"},
    "logging": {"format", "level", "summary_interval", "tutorial_rate"},
    "metrics": {"listen"},
}
_REQUIRED_SECTIONS = ("broker", "consumer", "handlers")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> WorkerConfig:
    """Read and validate a profile; raises ConfigError listing every problem."""
    p = str(path)
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(p, [f"cannot read file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, [f"not valid TOML: {exc}"]) from None
    return parse_config(data, p, os.environ if environ is None else environ)


def parse_config(data: Mapping[str, Any], path: str, environ: Mapping[str, str]) -> WorkerConfig:
    problems: list[str] = []
    r = TomlReader(data, problems)

    for name in data:
        if name not in _SCHEMA:
            problems.append(f"unknown section [{name}]")
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            problems.append(f"section [{name}] is required")
    for name, keys in _SCHEMA.items():
        if keys:
            for key in r.section(name):
                if key not in keys:
                    problems.append(f"unknown key {name}.{key}")

    broker = read_broker(r, environ)
    consumer = _consumer(r)
    handlers = _handlers(r)
    retry = _retry(r)
    dlx = r.get("dead_letter", "exchange", str, "warren.dlx")
    log_format = r.get("logging", "format", str, "plain")
    if log_format is not None and log_format not in LOG_FORMATS:
        problems.append(f"logging.format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    level = r.get("logging", "level", str, "INFO")
    if level is not None and level.upper() not in LOG_LEVELS:
        problems.append(f"logging.level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    summary_interval = r.get("logging", "summary_interval", (int, float), 60.0)
    if summary_interval is not None and summary_interval < 0:
        problems.append("logging.summary_interval must be >= 0 (0 = only the summary at exit)")
    tutorial_rate = r.get("logging", "tutorial_rate", int, 10)
    if tutorial_rate is not None and tutorial_rate < 0:
        problems.append("logging.tutorial_rate must be >= 0 (0 = no tutorial lines)")
    listen = _listen(r)

    if problems:
        raise ConfigError(path, problems)
    assert broker and consumer and retry and dlx is not None and log_format and level
    assert summary_interval is not None and tutorial_rate is not None
    return WorkerConfig(
        path=path,
        broker=broker,
        consumer=consumer,
        handlers=handlers,
        retry=retry,
        dead_letter_exchange=dlx,
        log_format=log_format,
        log_level=level.upper(),
        metrics_listen=listen,
        log_summary_interval=summary_interval,
        log_tutorial_rate=tutorial_rate,
    )


def consumer_problems(table: Mapping[str, Any]) -> list[str]:
    """The problems of a [consumer] table: the warren_worker role checks its profiles with it."""
    problems: list[str] = []
    _consumer(TomlReader({"consumer": table}, problems))
    return problems


def _consumer(r: TomlReader) -> ConsumerConfig | None:
    start = len(r.problems)
    queue = r.get("consumer", "queue", str)
    if queue == "":
        r.problems.append("consumer.queue must not be empty")
    prefetch = r.get("consumer", "prefetch", int, 32)
    if prefetch is not None and not 1 <= prefetch <= 65535:
        r.problems.append("consumer.prefetch must be between 1 and 65535")
    concurrency = r.get("consumer", "concurrency", int, 8)
    if concurrency is not None and concurrency < 1:
        r.problems.append("consumer.concurrency must be >= 1")
    if prefetch is not None and concurrency is not None and concurrency > prefetch:
        # Threads beyond prefetch could never receive work: the broker caps unacked deliveries.
        r.problems.append(
            f"consumer.concurrency ({concurrency}) must not exceed consumer.prefetch ({prefetch})"
        )
    drain = r.get("consumer", "drain_timeout", (int, float), 30.0)
    if drain is not None and drain < 0:
        r.problems.append("consumer.drain_timeout must be >= 0")
    if len(r.problems) != start:
        return None
    return ConsumerConfig(queue, prefetch, concurrency, drain)


def import_handler(target: str) -> Callable[..., Any]:
    """Resolve "package.module:function"; raises ValueError with a one-line reason."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r} is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in arbitrary ways; report, don't crash
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"{target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _handlers(r: TomlReader) -> tuple[HandlerSpec, ...]:
    table = r.section("handlers")
    if "handlers" in r.data and not table:
        r.problems.append("[handlers] must map at least one routing-key pattern to a handler")
    specs = []
    for pattern, target in table.items():
        problem = pattern_problem(pattern)
        if problem:
            r.problems.append(f"handlers: {problem}")
            continue
        if not isinstance(target, str):
            r.problems.append(f"handlers.{pattern!r} must be a string 'package.module:function'")
            continue
        try:
            specs.append(HandlerSpec(pattern, target, import_handler(target)))
        except ValueError as exc:
            r.problems.append(f"handlers.{pattern!r}: {exc}")
    return tuple(specs)


def _retry(r: TomlReader) -> RetryConfig | None:
    start = len(r.problems)
    exchange = r.get("retry", "exchange", str, "warren.retry")
    max_attempts = r.get("retry", "max_attempts", int, 5)
    if max_attempts is not None and max_attempts < 1:
        r.problems.append("retry.max_attempts must be >= 1 (1 = no retries)")
    initial = r.get("retry", "initial_delay", (int, float), 1.0)
    if initial is not None and initial <= 0:
        r.problems.append("retry.initial_delay must be > 0")
    multiplier = r.get("retry", "multiplier", (int, float), 2.0)
    if multiplier is not None and multiplier < 1:
        r.problems.append("retry.multiplier must be >= 1")
    max_delay = r.get("retry", "max_delay", (int, float), 60.0)
    if max_delay is not None and initial is not None and max_delay < initial:
        r.problems.append("retry.max_delay must be >= retry.initial_delay")
    if len(r.problems) != start:
        return None
    return RetryConfig(exchange, max_attempts, initial, multiplier, max_delay)


def parse_listen(value: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"metrics.listen must be 'host:port' (e.g. 127.0.0.1:9420) or empty, got {value!r}")
    return host, int(port_text)


def _listen(r: TomlReader) -> tuple[str, int] | None:
    value = r.get("metrics", "listen", str, "")
    if not value:
        return None
    try:
        return parse_listen(value)
    except ValueError as exc:
        r.problems.append(str(exc))
        return None
