"""The Prometheus counters of ``ede-pcap watch``, with bounded labels."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import prometheus_client

from analyzer import codes, dnsnames

OTHER = "other"  # the resolver label of everything past --max-resolvers
MAX_UNLISTED_CODES = 32  # codes outside the catalogue that get a label of their own
_NS = 1_000_000_000


class Metrics:
    """The Prometheus counters of one ``watch`` run, in a registry of their own."""

    def __init__(self, max_resolvers: int = 50):
        self.registry = prometheus_client.CollectorRegistry()
        self.max_resolvers = max_resolvers
        self._resolvers: set[str] = set()
        self._unlisted: set[int] = set()  # codes outside the catalogue given their own label
        self.newest_ns: int | None = None
        r = self.registry
        self.ede_options = prometheus_client.Counter(
            "ede_options", "EDE options seen in DNS responses", ["code", "name", "resolver"],
            registry=r)
        self.ede_responses = prometheus_client.Counter(
            "ede_responses", "DNS responses carrying at least one EDE option", ["resolver"],
            registry=r)
        self.dns_responses = prometheus_client.Counter(
            "dns_responses", "DNS responses decoded, by resolver (the response's source "
            "address) and RCODE", ["resolver", "rcode"], registry=r)
        self.packets = prometheus_client.Counter(
            "packets", "Packets (or dnstap frames) read, by accounting category", ["category"],
            registry=r)
        self.bytes_read = prometheus_client.Counter(
            "capture_bytes_read", "Capture bytes read (decompressed)", registry=r)
        self.files = prometheus_client.Counter(
            "capture_files_read", "Capture files read to the end without an error", registry=r)
        self.lag = prometheus_client.Gauge(
            "lag_seconds", "Wall clock minus the time of the newest packet read", registry=r)
        self.lag.set_function(self._lag)
        self.connections = prometheus_client.Counter(
            "dnstap_connections", "dnstap writer connections on the socket, by outcome "
            "(finished: STOP and FINISH; cut: closed without STOP; refused: handshake failed)",
            ["outcome"], registry=r)
        # a writer that connected and idles is visible before its first frame
        self.writers = prometheus_client.Gauge(
            "dnstap_writers_connected", "dnstap writers connected to the socket now, past "
            "the handshake", registry=r)

    def _lag(self) -> float:
        if self.newest_ns is None:
            return math.nan
        return time.time() - self.newest_ns / _NS

    def resolver(self, address: str) -> str:
        """Return the label for ``address``: itself while fewer than ``max_resolvers`` are
        known, ``other`` after that (cardinality cannot grow with the traffic)."""
        if address in self._resolvers:
            return address
        if len(self._resolvers) < self.max_resolvers:
            self._resolvers.add(address)
            return address
        return OTHER

    def code(self, code: int) -> tuple[str, str]:
        """Return the ``code`` and ``name`` labels of an INFO-CODE: its own for the codes of
        the catalogue and the first ``MAX_UNLISTED_CODES`` others, ``other`` past them
        (a sender of random codes cannot make 65,536 x resolvers counters)."""
        if code in codes.CATALOGUE or code in self._unlisted:
            return str(code), codes.describe(code).name
        if len(self._unlisted) < MAX_UNLISTED_CODES:
            self._unlisted.add(code)
            return str(code), codes.describe(code).name
        return OTHER, OTHER

    def add_responses(self, counts: dict[tuple[str, int], int]) -> None:
        """Count DNS responses given per (source address, RCODE)
        (``Scanner.take_responses_by_sender``)."""
        for (address, rcode), n in counts.items():
            self.dns_responses.labels(resolver=self.resolver(address),
                                      rcode=rcode_label(rcode)).inc(n)

    def add_ede(self, df: pd.DataFrame) -> None:
        """Count the EDE rows of ``df`` (the EDE frame's schema)."""
        if not len(df):
            return
        # column-wise: one label per distinct address, one count per (code, address)
        address, senders = pd.factorize(df["src_ip"].to_numpy(dtype=object))
        labels = [self.resolver(str(a)) for a in senders]
        labels.append(self.resolver("") if (address < 0).any() else OTHER)  # -1: no address
        code = df["ede_code"].to_numpy(dtype=np.int64)
        first = (df["ede_index"] == 0).to_numpy(dtype=bool, na_value=False)
        pairs, per = np.unique(code * (len(labels)) + address, return_counts=True)
        for pair, n in zip(pairs.tolist(), per.tolist(), strict=True):
            c, a = divmod(pair, len(labels))
            label, name = self.code(c)
            self.ede_options.labels(code=label, name=name, resolver=labels[a]).inc(n)
        responders, per = np.unique(address[first], return_counts=True)
        for a, n in zip(responders.tolist(), per.tolist(), strict=True):
            self.ede_responses.labels(resolver=labels[a]).inc(n)


def rcode_label(rcode: int) -> str:
    """The RCODE's mnemonic (``RCODEnnn`` for the unassigned of the header's 16 values);
    the 12-bit extended values nobody assigned are ``other``, so that a sender cannot
    make thousands of label values."""
    if rcode < 16 or rcode in dnsnames.RCODES:
        return dnsnames.rcode_name(rcode)
    return OTHER
