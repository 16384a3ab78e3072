"""The rules every store applies: the operations, the validators, the clock.

Each rule lives here once. Stores, async twins, URLs and the CLI import their
checks from this module, so a refusal reads the same everywhere; nothing here
does I/O or takes a lock.
"""

from __future__ import annotations

import datetime
import enum

from ._protocols import MAX_SEQ_NUM
from .errors import InvalidSeqNumError

__all__ = [
    "Op",
    "check_bool",
    "check_created_at",
    "check_reserve",
    "check_seq_num",
    "check_session_name",
    "utc_now",
]


class Op(enum.IntEnum):
    """One change (or read) of a session's state, as the stores and their backends name it.

    Every dispatch on an ``Op`` is a ``match`` that ends in ``assert_never``, so
    adding a member is a type error until every backend handles it.
    """

    READ = 0
    """Read the state (next_out, next_in, creation time); changes nothing."""
    NEXT_OUT = 1
    """Take outbound numbers (a count: 1, or a reserved block)."""
    OBSERVED_IN = 2
    """Raise the inbound mark past a received number (never lowers it)."""
    RESET = 3
    """Both counters back to 1 and a new creation time."""
    SET_NEXT_OUT = 4
    """Set the next outbound number exactly (an operator's repair)."""
    SET_NEXT_IN = 5
    """Set the next expected inbound number exactly."""
    GIVE_BACK = 6
    """Return the unused end of a reserved block on close, if nobody moved the row."""


_UTC = datetime.timezone.utc


def utc_now() -> datetime.datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.datetime.now(_UTC)


def check_seq_num(value: object, name: str = "seq_num", *, limit: int = MAX_SEQ_NUM) -> int:
    """Return ``value`` if it is an ``int`` in ``1..limit``.

    Raises:
        TypeError: ``value`` is not an ``int`` (a ``bool``, a float and a str are not).
        InvalidSeqNumError: ``value`` is below 1 or above ``limit``.
    """
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        value = int(value)
    if not 1 <= value <= limit:
        raise InvalidSeqNumError(f"{name} must be in 1..{limit}, got {value}")
    return value


def check_reserve(value: object) -> int:
    """Return ``value`` if it can be a store's ``reserve=``: an ``int`` in ``1..MAX_SEQ_NUM``.

    Every store, async twin and URL checks ``reserve`` here, so the refusal
    reads the same everywhere. No block can be larger than the numbers there
    are; a larger one would overflow a 64-bit column or counter.

    Raises:
        TypeError: ``value`` is not an ``int`` (a ``bool`` is not).
        InvalidSeqNumError: ``value`` is below 1 or above ``MAX_SEQ_NUM``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"reserve must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_SEQ_NUM:
        raise InvalidSeqNumError(
            f"reserve must be in 1..MAX_SEQ_NUM ({MAX_SEQ_NUM}), got {int(value)}"
        )
    return int(value)


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a ``bool``: the rule of every store's flag keyword.

    An ``int`` is refused too (``create=1`` is a mistake more often than not,
    and the stores must agree).

    Raises:
        TypeError: ``value`` is not a ``bool``.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_session_name(value: object, name: str = "session") -> str:
    """Return ``value`` as a plain ``str`` if it can name a session in any store.

    Any non-empty unicode text is a session name, of any length: a FIX session
    id such as ``"FIX.4.4:BANK->BROKER"``, quotes, emoji. Stores keep it exactly
    (no case folding, no normalization) and reach SQL with it only as a bound
    parameter.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: ``value`` is empty, contains NUL (which SQL text and C
            strings truncate at) or a lone surrogate (which has no UTF-8 form).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    value = str.__str__(value)  # a str subclass could compare or hash differently
    if not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL (\\x00)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid unicode text (a lone surrogate)") from None
    return value


def check_created_at(value: object) -> datetime.datetime:
    """Return ``value`` as an aware UTC datetime.

    Raises:
        TypeError: ``value`` is not a ``datetime.datetime``.
        ValueError: ``value`` is naive (has no timezone).
    """
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"created_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware; a naive datetime is ambiguous")
    return value.astimezone(_UTC)
