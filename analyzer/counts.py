"""What a scan counts as DNS messages pass: queries, responses, EDEs, responses over time."""

from __future__ import annotations

from collections import Counter

import numpy as np

MAX_RESPONSE_BUCKETS = 10_000  # past this, response counts go to coarser time buckets
_NS = 1_000_000_000


class MessageCounts:
    """DNS queries, responses, responses with EDE and their options, and responses per
    time bucket (``seconds``: bucket start in epoch seconds -> responses).

    One bucket per second would hold 2.6M entries for a month, so the buckets coarsen
    (``coarsen``) once there are more than ``MAX_RESPONSE_BUCKETS``: memory does not grow
    with the span, and the report's intervals are far coarser than the buckets by then.
    """

    __slots__ = ("dns_queries", "dns_responses", "responses_with_ede", "ede_options",
                 "seconds", "step", "fresh", "senders")

    def __init__(self, count_senders: bool = False) -> None:
        self.dns_queries = self.dns_responses = self.responses_with_ede = self.ede_options = 0
        self.seconds: Counter[int] = Counter()
        self.step = 1  # bucket width in seconds
        # the buckets' increments since the last take_fresh(), once track_fresh() was called
        # (emptied at each take: a coarsening in between leaves some finer keys, still true)
        self.fresh: Counter[int] | None = None
        # responses per (source address, RCODE), when asked for (``watch``'s labels); the
        # reader takes them (``take_senders``) so that they stay as few as a chunk's
        self.senders: Counter[tuple[bytes, int]] | None = Counter() if count_senders else None

    def track_fresh(self) -> None:
        """Keep what ``seconds`` gains from now on, for ``take_fresh`` (``watch`` takes it
        after every chunk: a copy and diff of ``seconds`` would cost its whole size)."""
        if self.fresh is None:
            self.fresh = Counter()

    def take_fresh(self) -> dict[int, int]:
        """Return the buckets' increments since the last call, and forget them."""
        fresh, self.fresh = self.fresh, Counter()
        return dict(fresh) if fresh else {}

    def take_senders(self) -> dict[tuple[bytes, int], int]:
        """Return the responses per (source address bytes, RCODE) since the last call."""
        if not self.senders:
            return {}
        taken, self.senders = dict(self.senders), Counter()
        return taken

    def response_at(self, ts_ns: int) -> None:
        self.dns_responses += 1
        key = ts_ns // (_NS * self.step) * self.step
        self.seconds[key] += 1
        if self.fresh is not None:
            self.fresh[key] += 1

    def responses_at(self, ts_ns: np.ndarray) -> None:
        if not len(ts_ns):
            return
        self.dns_responses += len(ts_ns)
        step = self.step
        secs, per = np.unique(ts_ns // (_NS * step) * step, return_counts=True)
        added = dict(zip(secs.tolist(), per.tolist(), strict=True))
        self.seconds.update(added)
        if self.fresh is not None:
            self.fresh.update(added)

    def coarsen(self) -> None:
        """Merge the buckets into wider ones until few enough are left (minutes, hours,
        days)."""
        if len(self.seconds) <= MAX_RESPONSE_BUCKETS:
            return
        while len(self.seconds) > MAX_RESPONSE_BUCKETS // 4:
            self.step = step = self.step * 60 if self.step < 3600 else self.step * 24
            merged: Counter[int] = Counter()
            for start, n in self.seconds.items():
                merged[start // step * step] += n
            self.seconds = merged

    def snapshot(self) -> tuple[int, int, int, int, dict[int, int], int]:
        return (self.dns_queries, self.dns_responses, self.responses_with_ede,
                self.ede_options, dict(self.seconds), self.step)

    def restore(self, saved: tuple[int, int, int, int, dict[int, int], int]) -> None:
        (self.dns_queries, self.dns_responses, self.responses_with_ede, self.ede_options,
         seconds, self.step) = saved
        self.seconds = Counter(seconds)
