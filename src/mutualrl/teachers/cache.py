"""Advice cache keyed by (teacher version, prompt): a new version never serves old advice."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

Value = TypeVar("Value")


class AdviceCache(Generic[Value]):
    """LRU map from (version, prompt) to a prompt's advice (or scores), with hit/miss counters."""

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._store: OrderedDict[tuple[int, str], Value] = OrderedDict()
        self._latest: dict[str, Value] = {}  # per prompt, the value of the newest version that read it
        self.hits = 0
        self.misses = 0

    def get(self, version: int, prompt: str) -> Value | None:
        value = self._store.get((version, prompt))
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._store.move_to_end((version, prompt))
        return value

    def __contains__(self, entry: tuple[int, str]) -> bool:
        """Whether (version, prompt) is held, without counting a hit or a miss."""
        return entry in self._store

    def latest(self, prompt: str) -> Value | None:
        """The newest value held for `prompt`, of any version (kept when old versions are dropped)."""
        return self._latest.get(prompt)

    def put(self, version: int, prompt: str, value: Value) -> None:
        self._store[(version, prompt)] = value
        self._latest[prompt] = value
        self._store.move_to_end((version, prompt))
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)

    def drop_versions_below(self, version: int) -> None:
        """Free entries no current teacher can ask for."""
        for key in [k for k in self._store if k[0] < version]:
            del self._store[key]

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __len__(self) -> int:
        return len(self._store)
