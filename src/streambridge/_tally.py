"""One mutable accumulator for any frozen result: its fields are declared once, on the result.

Pure. A :class:`Tally` reads the fields of an attrs result class by their defaults: a field
defaulting to an integer is a count, to ``()`` a list of items, to a factory a mapping; any
other field is set when freezing. The shells fill the tally while they work, and
:meth:`Tally.freeze` builds the frozen result; a field name that the result class does not
have is a ``KeyError`` at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["Tally"]

R = TypeVar("R")


class Tally(Generic[R]):
    """Counts, lists and mappings that become one frozen result of type ``R``.

    Attributes:
        counts: The integer fields.
        items: The tuple fields, as lists.
        maps: The mapping fields, as dicts.
    """

    def __init__(self, result_type: type[R], tap: Callable[[str, int], None] | None = None) -> None:
        """An empty tally for ``result_type`` (an attrs class).

        ``tap(field, amount)`` is told of every count added and item appended (a run's
        :class:`~streambridge.metrics.Metrics` rise as it works).
        """
        self._type = result_type
        self._tap = tap
        self.counts: dict[str, int] = {}
        self.items: dict[str, list[Any]] = {}
        self.maps: dict[str, dict[str, Any]] = {}
        for field in attrs.fields(result_type):  # type: ignore[arg-type]
            if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                self.maps[field.name] = {}
            elif field.default == ():
                self.items[field.name] = []
            elif type(field.default) is int:  # not a bool: those are no counts
                self.counts[field.name] = field.default

    def add(self, field: str, count: int = 1) -> None:
        """Add ``count`` to an integer field."""
        self.counts[field] += count
        if self._tap is not None:
            self._tap(field, count)

    def append(self, field: str, item: Any) -> None:
        """Append one item to a tuple field."""
        self.items[field].append(item)
        if self._tap is not None:
            self._tap(field, 1)

    def extend(self, field: str, items: Any) -> None:
        """Append items to a tuple field (a list or tuple)."""
        self.items[field].extend(items)
        if self._tap is not None:
            self._tap(field, len(items))

    def count_in(self, field: str, key: str, count: int = 1) -> None:
        """Add ``count`` to ``key`` of a mapping field of counts."""
        mapping = self.maps[field]
        mapping[key] = mapping.get(key, 0) + count
        if self._tap is not None:
            self._tap(field, count)

    def __getitem__(self, field: str) -> int:
        """The value of an integer field so far."""
        return self.counts[field]

    def freeze(self, **values: Any) -> R:
        """The frozen result; ``values`` set fields the tally does not hold (or override)."""
        fields: dict[str, Any] = {**self.counts}
        fields.update((name, tuple(items)) for name, items in self.items.items())
        fields.update((name, dict(mapping)) for name, mapping in self.maps.items())
        fields.update(values)
        return self._type(**fields)
