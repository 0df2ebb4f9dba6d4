"""dnstap messages into the message stage (dnsstage.py), as packets' messages go.

A ``LogChunk`` (framestreams.py, dnstap.py) already holds what the packet layers dig out of
a packet: a DNS message with its endpoints, time and transport, and the classifier's verdict
(query, plain response, candidate for an EDE, or SLOW for the per-message path). This
stage adds what only logs need and hands the rest to the message stage unchanged:

- exact duplicates (same message bytes, endpoints, type and transport within
  ``DUPLICATE_WINDOW_NS``; Unbound logs some stale answers twice) are folded and counted;
- responses the server *received* upstream (RESOLVER_RESPONSE, FORWARDER_RESPONSE) are
  kept out of the headline counts: they go through the same decoding with the counters
  swapped for upstream ones, and their rows carry their ``dnstap_type``;
- messages per type, per server (identity, version) and per transport are tallied.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer import dnstap, fastpath
from analyzer.capture import Chunk
from analyzer.counts import MessageCounts
from analyzer.errors import Malformed
from analyzer.framestreams import LogChunk
from analyzer.layers import Endpoint, addresses

if TYPE_CHECKING:
    from analyzer.dnsstage import DnsStage

DUPLICATE_WINDOW_NS = 100_000_000  # well under any client's retransmission timer
_IGNORED = 127  # a category no stage acts on: the other pass's messages


class LogStats:
    """What a scan of dnstap files tallies beyond the packet accounting; adds up."""

    def __init__(self) -> None:
        self.messages = 0
        self.by_type: Counter[str] = Counter()
        self.duplicates_folded = 0
        self.transport: Counter[str] = Counter()  # served responses, duplicates folded
        self.servers: Counter[tuple[str | None, str | None]] = Counter()
        self.upstream = MessageCounts()  # responses this server received upstream

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "by_type": dict(sorted(self.by_type.items())),
            "duplicates_folded": self.duplicates_folded,
            "transport": dict(sorted(self.transport.items())),
            "servers": [{"identity": i, "version": v, "messages": n}
                        for (i, v), n in sorted(self.servers.items(),
                                                key=lambda kv: (-kv[1], str(kv[0])))],
            "upstream_responses": self.upstream.dns_responses,
            "upstream_responses_with_ede": self.upstream.responses_with_ede,
            "upstream_ede_options": self.upstream.ede_options,
        }


def merge_stats(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Add up ``LogStats.as_dict()`` results (of files or partial scans)."""
    present = [p for p in parts if p]
    if not present:
        return None
    total = LogStats()
    for p in present:
        total.messages += p["messages"]
        total.by_type.update(p["by_type"])
        total.duplicates_folded += p["duplicates_folded"]
        total.transport.update(p["transport"])
        for s in p["servers"]:
            total.servers[(s["identity"], s["version"])] += s["messages"]
        total.upstream.dns_responses += p["upstream_responses"]
        total.upstream.responses_with_ede += p["upstream_responses_with_ede"]
        total.upstream.ede_options += p["upstream_ede_options"]
    return total.as_dict()


class LogColumns:
    """The source's columns (pipeline.SourceColumns) of messages from a dnstap log."""

    def __init__(self, log: LogChunk):
        self.log = log

    def columns(self, at: np.ndarray) -> dict[str, list[Any]]:
        cols = self.log.columns
        servers = self.log.servers
        pairs = [servers[k] for k in cols[dnstap.C_SERVER][at].tolist()]
        return {
            "transport": [transport_text(p) for p in cols[dnstap.C_PROTOCOL][at].tolist()],
            "encap": [""] * len(at),
            "dnstap_type": [dnstap.MESSAGE_TYPES[t] for t in cols[dnstap.C_TYPE][at].tolist()],
            "dnstap_identity": [p[0] for p in pairs],
            "dnstap_version": [p[1] for p in pairs],
        }


def transport_text(protocol: int) -> str:
    if protocol == dnstap.NO_PROTOCOL:
        return dnstap.ABSENT_TRANSPORT
    return dnstap.TRANSPORTS.get(protocol, f"protocol-{protocol}")


class LogStage:
    """Feeds one file's dnstap chunks to the message stage; make a new one per file."""

    def __init__(self, dns: DnsStage, stats: LogStats, *, force_slow: bool = False):
        self.dns = dns
        self.stats = stats
        self.force_slow = force_slow  # every message through the per-message path
        self._recent = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # hashes, times

    def chunk(self, log: LogChunk) -> None:
        cols = log.columns
        n = len(log)
        stats, dns = self.stats, self.dns
        stats.messages += n
        cat = cols[dnstap.C_CAT].copy()
        kinds = cols[dnstap.C_TYPE]
        typed = (kinds >= 1) & (kinds <= 14) & (cat != dnstap.NOT_A_MESSAGE)
        for kind, count in zip(*np.unique(kinds[typed], return_counts=True), strict=True):
            stats.by_type[dnstap.MESSAGE_TYPES[int(kind)]] += int(count)
        self._fold(cols, cat)
        per_category = np.bincount(cat, minlength=max(dnstap.CATEGORY_NAMES) + 1)
        for code, name in dnstap.CATEGORY_NAMES.items():
            count = int(per_category[code])
            if count:
                dns.accounting[name] += count
                if dns.strict and name.startswith("malformed-"):
                    first = int(np.flatnonzero(cat == code)[0])
                    raise Malformed(name.removeprefix("malformed-"),
                                    f"{dns.capture} frame {log.first_frame + first}")
        message = cat <= fastpath.CANDIDATE
        flags = cols[dnstap.C_FLAGS][message]
        for bit, name in dnstap.FLAG_PROBLEMS.items():
            count = int(np.count_nonzero(flags & bit))
            if count:
                dns.problems[name] += count
        for server, count in zip(*np.unique(cols[dnstap.C_SERVER][message],
                                            return_counts=True), strict=True):
            stats.servers[log.servers[int(server)]] += int(count)
        response = message & (kinds % 2 == 0)
        upstream = response & np.isin(kinds, list(dnstap.UPSTREAM_TYPE_NUMBERS))
        served = response & ~upstream
        for protocol, count in zip(*np.unique(cols[dnstap.C_PROTOCOL][served],
                                              return_counts=True), strict=True):
            stats.transport[transport_text(int(protocol))] += int(count)
        if self.force_slow:
            cat = np.where(message, fastpath.SLOW, cat)
        elif dns.all_responses:  # every response decoded, as the classifier does then
            cat = np.where(cat == fastpath.RESPONSE, fastpath.CANDIDATE, cat)
        chunk = Chunk(log.buf, np.zeros(n, np.int64), np.zeros(n, np.int64),
                      np.zeros(n, np.int64), cols[dnstap.C_TS], np.zeros(n, np.int64),
                      log.first_frame, 0, log.arr)
        source = LogColumns(log)
        self._pass(log, chunk, np.where(upstream | ~message, _IGNORED, cat), source)
        if upstream.any():  # the same stage, counting into the upstream counts
            kept, dns.counts = dns.counts, stats.upstream
            try:
                self._pass(log, chunk, np.where(upstream, cat, _IGNORED), source)
            finally:
                dns.counts = kept

    def _pass(self, log: LogChunk, chunk: Chunk, cat: np.ndarray, source: LogColumns) -> None:
        """The message stage over the messages ``cat`` does not ignore."""
        dns, cols = self.dns, log.columns
        cat8 = cat.astype(np.int8)
        cls = _classified(log, cat8)
        counts = np.bincount(cat8[cat8 <= fastpath.CANDIDATE],
                             minlength=len(fastpath.CATEGORY_NAMES) + 3)
        for code in (fastpath.QUERY, fastpath.RESPONSE):
            if counts[code]:
                dns.accounting[fastpath.CATEGORY_NAMES[code]] += int(counts[code])
        dns.settled(chunk, cls, counts)
        slow = np.flatnonzero(cat8 == fastpath.SLOW)
        if len(slow):
            extra = source.columns(slow)
            buf, first = log.buf, log.first_frame
            fields = [cols[c][slow].tolist() for c in (
                dnstap.C_TS, dnstap.C_L3, dnstap.C_VERSION, dnstap.C_SPORT, dnstap.C_DPORT,
                dnstap.C_PAYLOAD, dnstap.C_PAYLOAD_LEN)]
            logs = zip(extra["dnstap_type"], extra["dnstap_identity"], extra["dnstap_version"],
                       strict=True)
            for i, t, l3, ver, sport, dport, p, plen, transport, log_fields in zip(
                    slow.tolist(), *fields, extra["transport"], logs, strict=True):
                src, dst = addresses(buf, l3, ver)
                ep = Endpoint(t, first + i, src, dst, sport, dport, ver, transport, "",
                              log_fields)
                category = dns.on_dns(buf[p:p + plen], ep)
                if dns.strict and category.startswith(("malformed-", "snaplen-")):
                    raise Malformed(category.removeprefix("malformed-"),
                                    f"{dns.capture} frame {first + i}")
                dns.accounting[category] += 1
        dns.candidates(chunk, cls, cat8, source)
        dns.end_chunk()

    def _fold(self, cols: np.ndarray, cat: np.ndarray) -> None:
        """Mark exact duplicates of a message seen within the window before (``DUPLICATE``)."""
        at = np.flatnonzero(cat <= fastpath.CANDIDATE)
        if not len(at):
            return
        hashes = np.concatenate([self._recent[0], cols[dnstap.C_HASH][at]])
        times = np.concatenate([self._recent[1], cols[dnstap.C_TS][at]])
        carried = len(self._recent[0])
        recent = times >= times.max() - DUPLICATE_WINDOW_NS
        self._recent = (hashes[recent], times[recent])
        order = np.argsort(hashes, kind="stable")  # equal hashes in the order logged
        h = hashes[order]
        same = np.flatnonzero(h[1:] == h[:-1])
        if not len(same):  # the common case: no message logged twice
            return
        later, earlier = order[same + 1], order[same]
        repeat = np.abs(times[later] - times[earlier]) <= DUPLICATE_WINDOW_NS
        folded = later[repeat]
        folded = folded[folded >= carried] - carried
        if len(folded):
            cat[at[folded]] = dnstap.DUPLICATE
            self.stats.duplicates_folded += len(folded)


def _classified(log: LogChunk, cat: np.ndarray) -> fastpath.Classified:
    """The classifier's output for a log chunk: the kernels downstream read the same."""
    cols, arr = log.columns, log.arr
    n = len(log)
    payload, plen = cols[dnstap.C_PAYLOAD], cols[dnstap.C_PAYLOAD_LEN]
    queries = np.flatnonzero((cat == fastpath.QUERY) & (plen >= 16))
    p = payload[queries]
    # RFC 9567 §6.1.1: an error report's QNAME starts with the label "_er"
    marked = (arr[p + 12] == 3) & (arr[p + 13] == 0x5F) & ((arr[p + 14] | 0x20) == 0x65) & \
        ((arr[p + 15] | 0x20) == 0x72)
    zeros = np.zeros(n, np.int64)
    return fastpath.Classified(
        cat, cols[dnstap.C_L3], zeros, cols[dnstap.C_VERSION], cols[dnstap.C_SPORT],
        cols[dnstap.C_DPORT], payload, plen, queries[marked], np.zeros(n, np.uint64), zeros,
        zeros)

