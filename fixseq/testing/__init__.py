"""fixseq.testing: the conformance kit that proves a store keeps the contract.

A third party's store (a Redis one, a table in their own database, an in-house
journal) is duck-typed against :class:`~fixseq.SeqStore` or
:class:`~fixseq.AsyncSeqStore`; ``isinstance`` checks method names only. This
kit checks the behaviour, and fixseq's own stores pass the same kit: it is the
one definition of correct. Three ways to run it:

- :func:`check_seq_store` / :func:`check_async_seq_store`: one call, from any
  test runner; raises ``AssertionError`` at the first violation.
- :class:`SeqStoreContract` / :class:`AsyncSeqStoreContract`: subclass in a
  pytest module, define ``make_store`` (and ``reopen_store`` for a durable
  store), and get each check group as its own named test.
- :class:`SeqStoreMachine` / :class:`AsyncSeqStoreMachine`: the Hypothesis
  state machines alone, to run with your own settings.

The check groups, in the order they run:

==============  =========================================================================
protocol        the five methods exist (and return awaitables, for an async store)
basics          a fresh store is at 1 and 1; peek_out() neither advances nor disagrees
                with next_out(); the inbound mark is max(mark, n + 1); reset() gives 1, 1
long_run        1,000 consecutive next_out(), then 1,000 next_out() + observed_in() pairs
admin           set_next_out/set_next_in take effect both ways; snapshot() agrees
validation      0, negatives, MAX_SEQ_NUM + 1, non-ints, bools are rejected (ValueError
                for a number out of range, TypeError for a non-int, either for a bool)
                and the rejected call changes nothing; 1 and MAX_SEQ_NUM are accepted
creation_time   aware; moves to about now on reset() and on nothing else
exhaustion      after set_next_out(MAX_SEQ_NUM): next_out() gives MAX_SEQ_NUM, then
                raises and changes nothing, until set_next_out() or reset()
concurrency     threads (or tasks) started together: no number handed out twice or
                skipped, no read below what was acknowledged, no mark going down
reopen          each kind of change, then reopen at once: the exact state is back
model           a Hypothesis state machine against a two-counter model, with bad input
                and (durable stores) reopens at random points
==============  =========================================================================

Hypothesis and pytest are needed only here: install ``fixseq[testing]``. The
kit runs Hypothesis with the active settings profile (a CI profile with
``derandomize=True`` makes it deterministic) but always without a deadline.
"""

from __future__ import annotations

try:
    import hypothesis as _hypothesis  # noqa: F401
    import pytest as _pytest  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fixseq.testing needs hypothesis and pytest: pip install 'fixseq[testing]'"
    ) from exc

from ._contract import AsyncSeqStoreContract, SeqStoreContract
from ._machine import AsyncSeqStoreMachine, SeqStoreMachine
from ._run import check_async_seq_store, check_seq_store

__all__ = [
    "AsyncSeqStoreContract",
    "AsyncSeqStoreMachine",
    "SeqStoreContract",
    "SeqStoreMachine",
    "check_async_seq_store",
    "check_seq_store",
]
