"""Link a resolver's client-facing EDEs to its own upstream exchanges (a second, targeted pass).

When a capture holds both sides of a resolver - its answers to clients and its queries to
authorities or to a forwarder's upstream - the upstream side says *why*: the authority
timed out, answered REFUSED or SERVFAIL, or sent its own EDE. And when a forwarder
received an EDE from upstream, its answer to the client shows whether it passed the EDE
on, dropped it or rewrote it.

Only the resolvers that sent EDEs, and only names related to the EDEs (the query name and
its parents, since validation fetches DNSKEY/DS of the zones above), are decoded, so this
pass costs little more than reading the file. UDP exchanges only: upstream DNS over TCP
is left to the main frame.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analyzer import dnsnames, fastpath, matching
from analyzer.capture import CaptureReader
from analyzer.errors import CaptureError, Malformed
from analyzer.framestreams import LogChunk
from analyzer.layers import addresses
from analyzer.message import parse_response

DEFAULT_WINDOW_S = 10.0
_MAX_PENDING = 100_000  # unanswered upstream queries remembered for pairing


@dataclass(slots=True)
class _Exchange:
    ts: int
    frame: int
    capture: str
    resolver: str
    server: str
    qname: str
    qtype: int | None
    rcode: int | None = None      # None while unanswered
    answered_ts: int | None = None
    edes: tuple[int, ...] = ()
    answered_frame: int | None = None


def _related(qname: str) -> list[str]:
    """Return the name and its parents, lower-case: what validating it may query upstream."""
    labels = qname.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels))] if qname != "." else ["."]


def _ip(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def collect(sources: Sequence[Any], ede: pd.DataFrame, *, ports: Iterable[int] = (53,),
            window_s: float = DEFAULT_WINDOW_S, receivers: bool = False,
            ) -> tuple[list[_Exchange], list[_Exchange]]:
    """Return (upstream exchanges, client-facing answers) of the hosts the EDEs involve.

    The hosts are the EDEs' senders, and with ``receivers`` their recipients too (a
    forwarder receives EDEs from upstream and may answer its clients without them).
    """
    resolvers = set(ede["src_ip"].dropna().unique())
    if receivers:
        resolvers |= set(ede["dst_ip"].dropna().unique())
    names = {n for q in ede["qname"].dropna().unique() for n in _related(q)}
    if not resolvers:
        return [], []
    folded = np.array(sorted({matching.fold_ip(socket.inet_pton(
        socket.AF_INET6 if ":" in r else socket.AF_INET, r)) for r in resolvers}), np.uint64)
    port_array = np.array(sorted(set(ports)), np.int64)
    upstream: list[_Exchange] = []
    answers: list[_Exchange] = []
    for source in sources:
        try:
            reader = CaptureReader(source)
        except CaptureError:
            continue
        pending: dict[tuple[str, str, int, int, str], _Exchange] = {}
        try:
            for chunk in reader.chunks():
                if isinstance(chunk, LogChunk):
                    _log_chunk(chunk, reader.name, names, pending, upstream, answers,
                               int(window_s * 1e9))
                    continue
                _chunk(chunk, reader.name, folded, port_array, names, pending, upstream,
                       answers, int(window_s * 1e9))
        except CaptureError:
            pass
        finally:
            reader.close()
    return upstream, answers


def _named(buf: bytes, start: int, length: int, names: set[str]) -> Any:
    """The message at ``buf[start:start + length]`` if it asks about one of ``names``."""
    try:
        msg = parse_response(buf[start:start + length])  # decodes queries as well
    except Malformed:
        return None
    if msg.qname is None or msg.qname.lower() not in names:
        return None
    return msg


def _asked(ex: _Exchange, key: tuple[Any, ...], pending: dict[Any, _Exchange],
           upstream: list[_Exchange]) -> None:
    """Book a query a resolver sent upstream, to be paired with its answer by ``key``."""
    upstream.append(ex)
    pending[key] = ex
    if len(pending) > _MAX_PENDING:  # never answered: they stay timeouts
        del pending[next(iter(pending))]


def _answered(ex: _Exchange, msg: Any, ts: int, frame: int, window_ns: int) -> None:
    if ts - ex.ts <= window_ns:
        ex.rcode, ex.answered_ts, ex.answered_frame = msg.rcode, ts, frame
        ex.edes = tuple(e.info_code for e in msg.edes)


def _chunk(chunk: Any, capture: str, folded: np.ndarray, ports: np.ndarray, names: set[str],
           pending: dict[Any, _Exchange], upstream: list[_Exchange], answers: list[_Exchange],
           window_ns: int) -> None:
    cls = fastpath.classify(chunk, ports, decode_all_responses=True)
    dns = np.flatnonzero((cls.cat == fastpath.QUERY) | (cls.cat == fastpath.CANDIDATE))
    if not len(dns):
        return
    a, l3, ver = chunk.arr, cls.l3[dns], cls.ip_version[dns]
    src = matching.fold_ip_np(a, np.where(ver == 4, l3 + 12, l3 + 8), ver)
    dst = matching.fold_ip_np(a, np.where(ver == 4, l3 + 16, l3 + 24), ver)
    mine = dns[np.isin(src, folded) | np.isin(dst, folded)]
    buf = chunk.buf
    for i in mine.tolist():
        msg = _named(buf, int(cls.payload[i]), int(cls.payload_len[i]), names)
        if msg is None:
            continue
        s_ip, d_ip = addresses(buf, int(cls.l3[i]), int(cls.ip_version[i]))
        src_s, dst_s = _ip(s_ip), _ip(d_ip)
        ts, frame = int(chunk.ts_ns[i]), chunk.first_frame + i
        sport, dport = int(cls.sport[i]), int(cls.dport[i])
        qname = msg.qname.lower()
        is_query = not msg.flags & 0x8000
        src_is_resolver = matching.fold_ip(s_ip) in folded
        if is_query and src_is_resolver:  # the resolver asks upstream
            _asked(_Exchange(ts, frame, capture, src_s, dst_s, qname, msg.qtype),
                   (src_s, dst_s, sport, msg.dns_id, qname), pending, upstream)
        elif not is_query:
            # An answer to a query we saw a host of interest send is an upstream answer
            # (a resolver may also be another host's upstream); otherwise, if it comes
            # from a host of interest, that host is answering its client.
            ex = pending.pop((dst_s, src_s, dport, msg.dns_id, qname), None)
            if ex is not None:
                _answered(ex, msg, ts, frame, window_ns)
            elif src_is_resolver:
                answers.append(_Exchange(ts, frame, capture, src_s, dst_s, qname, msg.qtype,
                                         msg.rcode, ts, tuple(e.info_code for e in msg.edes)))


# dnstap message types (dnstap.MESSAGE_TYPES): the server asking upstream, the answers it
# received, and what it answered its clients
_ASKS, _RECEIVES, _ANSWERS = frozenset({3, 7}), frozenset({4, 8}), frozenset({6})


def log_resolver(identity: str | None) -> str:
    """The resolver a dnstap log's upstream exchanges belong to: the logging server.

    Unbound and BIND log 0.0.0.0 as their own address on upstream queries, so a log's legs
    are tied to its server by identity, not by the address its clients see."""
    return f"dnstap:{identity or ''}"


def _log_chunk(chunk: LogChunk, capture: str, names: set[str], pending: dict[Any, _Exchange],
               upstream: list[_Exchange], answers: list[_Exchange], window_ns: int) -> None:
    """``_chunk`` for a dnstap log: the message types say who asked and who answered."""
    from analyzer import dnstap

    cols = chunk.columns
    kinds = cols[dnstap.C_TYPE]
    want = np.flatnonzero(np.isin(kinds, list(_ASKS | _RECEIVES | _ANSWERS))
                          & (cols[dnstap.C_CAT] <= dnstap.CANDIDATE))
    buf = chunk.buf
    for i in want.tolist():
        msg = _named(buf, int(cols[dnstap.C_PAYLOAD][i]), int(cols[dnstap.C_PAYLOAD_LEN][i]),
                     names)
        if msg is None:
            continue
        kind = int(kinds[i])
        resolver = log_resolver(chunk.servers[int(cols[dnstap.C_SERVER][i])][0])
        s_ip, d_ip = addresses(buf, int(cols[dnstap.C_L3][i]), int(cols[dnstap.C_VERSION][i]))
        src_s, dst_s = _ip(s_ip), _ip(d_ip)
        ts, frame = int(cols[dnstap.C_TS][i]), chunk.first_frame + i
        sport, dport = int(cols[dnstap.C_SPORT][i]), int(cols[dnstap.C_DPORT][i])
        qname = msg.qname.lower()
        if kind in _ASKS:
            _asked(_Exchange(ts, frame, capture, resolver, dst_s, qname, msg.qtype),
                   (src_s, dst_s, sport, msg.dns_id, qname), pending, upstream)
        elif kind in _RECEIVES:
            ex = pending.pop((dst_s, src_s, dport, msg.dns_id, qname), None)
            if ex is not None:
                _answered(ex, msg, ts, frame, window_ns)
        else:
            answers.append(_Exchange(ts, frame, capture, resolver, dst_s, qname, msg.qtype,
                                     msg.rcode, ts, tuple(e.info_code for e in msg.edes)))


def _row_resolver(row: Any) -> str:
    """Whose upstream exchanges an EDE row is linked to: its sender, or its log's server."""
    if getattr(row, "dnstap_type", None) is not None and not pd.isna(row.dnstap_type):
        return log_resolver(None if pd.isna(row.dnstap_identity) else row.dnstap_identity)
    return row.src_ip


def upstream_for_edes(sources: Sequence[Any], ede: pd.DataFrame, *,
                      ports: Iterable[int] = (53,),
                      window_s: float = DEFAULT_WINDOW_S) -> pd.DataFrame:
    """Return, for each EDE row, what its resolver's upstream exchanges showed.

    Columns: the EDE row's ``frame_number``, ``resolver``, ``qname``, ``ede_code``, then
    ``upstream_queries``, ``upstream_timeouts`` (asked, never answered within the window),
    ``upstream_rcodes`` ("SERVFAIL:2 REFUSED:1"), ``upstream_ede`` (codes the upstream sent),
    ``upstream_servers`` and ``upstream_names`` (which of the name and its parents were asked).
    """
    upstream, _ = collect(sources, ede, ports=ports, window_s=window_s)
    window_ns = int(window_s * 1e9)
    by_resolver: dict[str, list[_Exchange]] = defaultdict(list)
    for ex in upstream:
        by_resolver[ex.resolver].append(ex)
    rows = []
    fields = ["capture", "frame_number", "ts", "src_ip", "qname", "ede_code"] + [
        c for c in ("dnstap_type", "dnstap_identity") if c in ede]
    for row in ede[fields].itertuples(index=False):
        t = row.ts.value
        related = set(_related(row.qname or "."))
        seen = [ex for ex in by_resolver.get(_row_resolver(row), ())
                if ex.qname in related and t - window_ns <= ex.ts <= t]
        rcodes: dict[str, int] = defaultdict(int)
        for ex in seen:
            if ex.rcode is not None:
                rcodes[dnsnames.rcode_name(ex.rcode)] += 1
        rows.append({
            "capture": row.capture, "frame_number": row.frame_number, "resolver": row.src_ip,
            "qname": row.qname, "ede_code": row.ede_code,
            "upstream_queries": len(seen),
            "upstream_timeouts": sum(ex.rcode is None for ex in seen),
            "upstream_rcodes": " ".join(f"{k}:{v}" for k, v in sorted(rcodes.items())),
            "upstream_ede": ",".join(sorted({str(c) for ex in seen for c in ex.edes},
                                            key=int)),
            "upstream_servers": " ".join(sorted({ex.server for ex in seen})),
            "upstream_names": " ".join(sorted({ex.qname for ex in seen}, key=len)),
        })
    return pd.DataFrame(rows, columns=[
        "capture", "frame_number", "resolver", "qname", "ede_code", "upstream_queries",
        "upstream_timeouts", "upstream_rcodes", "upstream_ede", "upstream_servers",
        "upstream_names"])


def forwarded(sources: Sequence[Any], ede: pd.DataFrame, *, ports: Iterable[int] = (53,),
              window_s: float = DEFAULT_WINDOW_S) -> pd.DataFrame:
    """Return what each resolver did with EDEs it received from upstream.

    One row per upstream response carrying EDE to a resolver that answered a client for
    the same name within the window: ``verdict`` is ``passed`` (same codes), ``rewrote``
    (other codes) or ``dropped`` (none). ``ede`` supplies the resolvers to look at; pass
    the EDE frame (upstream EDEs are in it too, since they arrive from port 53).
    """
    upstream, answers = collect(sources, ede, ports=ports, window_s=window_s, receivers=True)
    window_ns = int(window_s * 1e9)
    answered: dict[tuple[str, str], list[_Exchange]] = defaultdict(list)
    for ans in answers:
        answered[(ans.resolver, ans.qname)].append(ans)
    rows = []
    for ex in upstream:
        if not ex.edes or ex.answered_ts is None:
            continue
        later = [a for a in answered.get((ex.resolver, ex.qname), ())
                 if ex.answered_ts <= a.ts <= ex.answered_ts + window_ns]
        if not later:
            continue
        client = later[0]
        verdict = ("passed" if set(client.edes) == set(ex.edes) else
                   "dropped" if not client.edes else "rewrote")
        rows.append({
            "capture": ex.capture, "resolver": ex.resolver, "upstream_server": ex.server,
            "qname": ex.qname, "upstream_frame": ex.answered_frame,
            "upstream_ede": ",".join(map(str, ex.edes)), "client_frame": client.frame,
            "client_ede": ",".join(map(str, client.edes)), "verdict": verdict,
        })
    return pd.DataFrame(rows, columns=[
        "capture", "resolver", "upstream_server", "qname", "upstream_frame", "upstream_ede",
        "client_frame", "client_ede", "verdict"])
