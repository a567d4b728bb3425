"""The fast entry constructors build exactly what the frozen dataclasses' own would."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import pytest

from fsync.model import (
    BaseEntry,
    Digest,
    LocalEntry,
    RemoteEntry,
    base_entry,
    local_entry,
    remote_entry,
)

MAKERS: list[tuple[type, Callable[..., object]]] = [
    (LocalEntry, local_entry),
    (RemoteEntry, remote_entry),
    (BaseEntry, base_entry),
]


@pytest.mark.parametrize(("cls", "make"), MAKERS, ids=lambda x: getattr(x, "__name__", ""))
def test_a_fast_constructor_takes_every_field_in_order(cls: type, make: Callable) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(inspect.signature(make).parameters) == names


@pytest.mark.parametrize(("cls", "make"), MAKERS, ids=lambda x: getattr(x, "__name__", ""))
def test_a_fast_constructor_builds_the_same_frozen_value(cls: type, make: Callable) -> None:
    # A distinct value per field: a swapped pair of setters shows.
    values = [Digest(f"v{i}") if i % 2 else 100 + i for i in range(len(dataclasses.fields(cls)))]
    fast, slow = make(*values), cls(*values)
    assert type(fast) is cls
    assert [getattr(fast, f.name) for f in dataclasses.fields(cls)] == values
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.size = 1  # type: ignore[attr-defined]
