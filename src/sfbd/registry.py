"""One registry per plug-in kind: samplers, networks, methods and noise models.

Each kind keeps its names in one :class:`Registry`, filled where the implementations live
(``@SAMPLERS.register("heun")``). Validation, the command line's help, ``sfbd status`` and the
contract tests read the registry, so a new plug-in is one new file and no list of names is
written twice.

A plug-in may own configuration keys: an object registered with a ``Keys`` attribute (a
dataclass, each field with its default and a trailing comment) adds those fields to the
registry's configuration section (``data`` for noise models, ``model`` for networks) through
:func:`sfbd.schema.add_keys`, so ``--set data.gain=0.02`` and YAML reach them with the same
type checks as the built-in keys. This module and :mod:`sfbd.schema` import neither torch nor
any other part of sfbd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sfbd import schema

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one plug-in kind, in registration order.

    Args:
        kind: what one entry is, for messages ('noise model').
        section: the configuration section whose keys an entry's ``Keys`` extends.
    """

    def __init__(self, kind: str, section: str | None = None) -> None:
        self.kind = kind
        self.section = section
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add ``obj`` under ``name``; a name is registered once."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            keys = getattr(obj, "Keys", None)
            if keys is not None:
                if self.section is None:
                    raise ValueError(f"{self.kind}s own no configuration keys ({name!r})")
                schema.add_keys(self.section, keys, owner=f"{self.kind} {name}")
            self._items[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        return self.register(name)(obj)

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())
