"""Typed reading of a parsed TOML document (the worker profile) that collects every problem in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MISSING = object()


class TomlReader:
    """Typed getters that record problems instead of raising, so one run reports everything."""

    def __init__(self, data: Mapping[str, Any], problems: list[str]) -> None:
        self.data = data
        self.problems = problems

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            self.problems.append(f"[{name}] must be a table")
            return {}
        return value

    def get(self, sec: str, key: str, kind: type | tuple[type, ...], default: Any = MISSING) -> Any:
        value = self.section(sec).get(key, MISSING)
        if value is MISSING:
            if default is MISSING:
                self.problems.append(f"{sec}.{key} is required")
            return None if default is MISSING else default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML booleans are ints to Python; never accept one where a number is wanted.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join("number" if k is float else TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.append(
                f"{sec}.{key} must be {names}, got {TYPE_NAMES.get(type(value), type(value).__name__)}"
            )
            return None
        return float(value) if float in kinds and isinstance(value, int) else value


TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", bool: "a boolean", dict: "a table"}
