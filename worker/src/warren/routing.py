"""Routing-key -> handler selection with AMQP topic-pattern semantics (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_CACHE_LIMIT = 10_000


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable topic binding pattern, or None when it is."""
    if not pattern:
        return "empty routing-key pattern"
    for word in pattern.split("."):
        if word in ("*", "#"):
            continue
        if not word:
            return f"routing-key pattern {pattern!r} has an empty word"
        if "*" in word or "#" in word:
            return f"routing-key pattern {pattern!r}: '*' and '#' must be whole words"
    return None


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pat: list[str], key: list[str]) -> bool:
    if not pat:
        return not key
    head, rest = pat[0], pat[1:]
    if head == "#":
        # '#' swallows 0..len(key) words; try the shortest first.
        return any(_match(rest, key[i:]) for i in range(len(key) + 1))
    if not key:
        return False
    return (head in ("*", key[0])) and _match(rest, key[1:])


@dataclass(frozen=True)
class Route(Generic[T]):
    pattern: str
    target: T


class Router(Generic[T]):
    """First matching pattern in declaration order wins (TOML tables keep their order)."""

    def __init__(self, routes: Iterable[tuple[str, T]]) -> None:
        self._routes = [Route(p, t) for p, t in routes]
        self._cache: dict[str, Route[T] | None] = {}

    def lookup(self, routing_key: str) -> Route[T] | None:
        try:
            return self._cache[routing_key]
        except KeyError:
            pass
        found = next((r for r in self._routes if topic_matches(r.pattern, routing_key)), None)
        # Bounded memo: a producer inventing keys must not grow memory without limit.
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[routing_key] = found
        return found
