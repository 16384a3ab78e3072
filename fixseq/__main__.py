"""``python -m fixseq``: a short look at a session's counters."""

from __future__ import annotations

from . import MemorySeqStore


def main() -> None:
    """Print a short life of a session's counters."""
    with MemorySeqStore() as store:
        sent = [store.next_out() for _ in range(3)]
        print(f"sent MsgSeqNum {sent}; next outbound will be {store.peek_out()}")
        for seq_num in (1, 2, 3):
            store.observed_in(seq_num)
        print(f"took inbound 1..3; next inbound expected {store.current_in()}")
        store.reset()
        print(f"after a Logon with ResetSeqNumFlag=Y: {store.snapshot()}")


if __name__ == "__main__":
    main()
