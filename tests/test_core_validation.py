"""Bad input: every public method fed junk raises a typed error and changes nothing."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixseq import MAX_SEQ_NUM, AsyncMemorySeqStore, InvalidSeqNumError, MemorySeqStore

if TYPE_CHECKING:
    from collections.abc import Callable

not_ints = st.one_of(
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.binary(max_size=3),
    st.decimals(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.complex_numbers(),
)
out_of_range = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_SEQ_NUM + 1),
    st.sampled_from([0, -1, MAX_SEQ_NUM + 1, 2**64]),
)
METHODS = ["observed_in", "set_next_out", "set_next_in"]


def _check_rejected(store: MemorySeqStore, call: Callable[[], Any], error: type[Exception]) -> None:
    before = (store.snapshot(), store.creation_time())
    with pytest.raises(error):
        call()
    assert (store.snapshot(), store.creation_time()) == before


def _seeded() -> MemorySeqStore:
    store = MemorySeqStore(17, 23)
    return store


@given(value=not_ints, method=st.sampled_from(METHODS))
def test_non_int_raises_type_error(value: object, method: str) -> None:
    store = _seeded()
    _check_rejected(store, lambda: getattr(store, method)(value), TypeError)


@given(value=out_of_range, method=st.sampled_from(METHODS))
def test_out_of_range_raises_invalid_seq_num(value: int, method: str) -> None:
    store = _seeded()
    _check_rejected(store, lambda: getattr(store, method)(value), InvalidSeqNumError)


@given(value=st.one_of(not_ints, out_of_range))
def test_bad_seeds_raise_typed_errors(value: object) -> None:
    error = InvalidSeqNumError if type(value) is int else TypeError
    with pytest.raises(error):
        MemorySeqStore(next_out=value)  # type: ignore[arg-type]
    with pytest.raises(error):
        MemorySeqStore(next_in=value)  # type: ignore[arg-type]


@given(value=st.one_of(not_ints, out_of_range), method=st.sampled_from(METHODS))
def test_async_twin_rejects_the_same(value: object, method: str) -> None:
    error = InvalidSeqNumError if type(value) is int else TypeError
    store = AsyncMemorySeqStore(17, 23)

    async def main() -> None:
        before = await store.snapshot()
        with pytest.raises(error):
            await getattr(store, method)(value)
        assert await store.snapshot() == before

    anyio.run(main)


def test_zero_arg_methods_reject_arguments() -> None:
    store = _seeded()
    for name in ["next_out", "peek_out", "current_in", "reset", "snapshot", "creation_time"]:
        method: Callable[[int], object] = getattr(store, name)
        _check_rejected(store, functools.partial(method, 1), TypeError)
