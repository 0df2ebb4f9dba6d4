"""``dns_responses_total{resolver,rcode}``: the scanner's per-sender counts (every decoding
path agrees, and with ``scan(all_responses=True)``'s rows), and ``watch`` as a real
process serving them.
"""

from __future__ import annotations

import io
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from captures import (
    CRAFTED,
    frame,
    message,
    opt_rr,
    pcap,
    pure_python_kernels,
    question,
    records,
    udp,
)
from watchproc import (
    ROOT,
    drop,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

import analyzer
from analyzer import dnsnames, dnstap
from analyzer.pipeline import Scanner
from analyzer.watchmetrics import rcode_label

REAL = ROOT / "tests" / "real"
FILES = sorted([*ROOT.glob("samples/*.pcap*"), *ROOT.glob("samples/tunnels/*.pcap"),
                *REAL.glob("*.pcap"), *REAL.glob("dnstap/*.pcap"),
                *REAL.glob("dnstap/*.dnstap")])
QR_RA = 0x8080


def ext_rcode_capture() -> bytes:
    """Responses whose RCODE needs the OPT record: BADVERS (16) and BADCOOKIE (23) with an
    EDE option, an unassigned extended value (0xFFF) with one, and a plain response whose
    header says REFUSED."""
    def with_ede(ext: int, low: int) -> bytes:
        return message(flags=QR_RA | low, qd=[question()],
                       ar=[opt_rr(b"\x00\x0f\x00\x02\x00\x09", ext_rcode=ext)])
    msgs = [with_ede(1, 0), with_ede(1, 7), with_ede(0xFF, 0xF),
            message(flags=QR_RA | 5, qd=[question()])]
    return pcap(records(frame(udp(m)) for m in msgs))


def sender_counts(source: Any, **options: Any) -> Counter[tuple[str, int]]:
    """Responses per (source address, RCODE), taken after every chunk as ``watch`` does."""
    scanner = Scanner(count_senders=True, **options)
    got: Counter[tuple[str, int]] = Counter()
    for _ in scanner.run([source]):
        got.update(scanner.take_responses_by_sender())
    got.update(scanner.take_responses_by_sender())
    assert scanner.take_responses_by_sender() == {}  # taken: nothing is kept
    assert sum(got.values()) == scanner.dns_responses
    return got


def oracle(sources: list[Any]) -> Counter[tuple[str, str]]:
    """Responses per (source address, RCODE name) from the rows of every response."""
    responses = analyzer.scan(sources, all_responses=True).responses
    served = responses[~responses["dnstap_type"].isin(dnstap.UPSTREAM_TYPES)
                       .to_numpy(dtype=bool)]
    return Counter({(str(ip), str(rcode)): int(n) for (ip, rcode), n in
                    served.groupby(["src_ip", "rcode"], observed=True).size().items() if n})


def named(counts: Counter[tuple[str, int]]) -> Counter[tuple[str, str]]:
    return Counter({(ip, dnsnames.rcode_name(rcode)): n for (ip, rcode), n in counts.items()})


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sender_counts_agree_on_every_path(path: Path) -> None:
    fast = sender_counts(path)
    assert sender_counts(path, force_slow=True) == fast   # one message at a time
    with pure_python_kernels():                           # the kernels' Python twins
        assert sender_counts(path) == fast
    assert named(fast) == oracle([path])
    assert sum(fast.values()) == analyzer.scan(path).dns_responses


@pytest.mark.parametrize("name", ["tcp-split-3", "tcp-out-of-order", "ipv6-fragments",
                                  "lying-lengths", "bad-pointers", "snaplen", "noise",
                                  "link-ethernet-v6", "pcapng-sections"])
def test_sender_counts_on_crafted_captures(name: str) -> None:
    crafted = CRAFTED[name]
    data = crafted.build()
    fast = sender_counts(io.BytesIO(data), ports=crafted.ports)
    assert sender_counts(io.BytesIO(data), ports=crafted.ports, force_slow=True) == fast
    with pure_python_kernels():
        assert sender_counts(io.BytesIO(data), ports=crafted.ports) == fast
    assert named(fast) == oracle([io.BytesIO(data)])


def test_extended_rcode_from_opt_and_bounded_label() -> None:
    data = ext_rcode_capture()
    fast = sender_counts(io.BytesIO(data))
    server = next(iter(fast))[0]
    assert fast == {(server, 16): 1, (server, 23): 1, (server, 0xFFF): 1, (server, 5): 1}
    assert sender_counts(io.BytesIO(data), force_slow=True) == fast
    assert named(fast) == oracle([io.BytesIO(data)])
    assert [rcode_label(r) for r in (16, 23, 0xFFF, 5, 12)] == \
        ["BADVERS", "BADCOOKIE", "other", "REFUSED", "RCODE12"]


def by_resolver_rcode(samples: dict[Any, float]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for (name, labels), v in samples.items():
        if name == "dns_responses_total" and v:
            d = dict(labels)
            out[(d["resolver"], d["rcode"])] += int(v)
    return out


def test_watch_serves_responses_by_resolver_and_rcode(tmp_path: Path,
                                                      processes: list[Any]) -> None:  # noqa: F811
    # several resolvers answering over UDP, TCP and in dnstap logs (with upstream responses)
    files = [ROOT / "samples" / "incident.pcap", REAL / "dnstap" / "dnsdist.pcap",
             REAL / "dnstap" / "unbound.dnstap", REAL / "dnstap" / "bind.dnstap"]
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "0.2")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    for i, source in enumerate(files, 1):
        drop(tmp_path, source, f"{i:02d}-{source.name}")
        wait_for(settled(port, lambda s, i=i: total(s, "capture_files_read_total") == i),
                 f"file {i} to be read", proc)
    samples = wait_for(settled(port, lambda s: True), "the counters to settle", proc)
    want = oracle(files)
    assert by_resolver_rcode(samples) == want
    assert len({ip for ip, _ in want}) > 5 and len({rc for _, rc in want}) >= 3
    assert total(samples, "dns_responses_total") == analyzer.scan(files).dns_responses
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_watch_folds_resolvers_past_the_limit(tmp_path: Path,
                                              processes: list[Any]) -> None:  # noqa: F811
    source = REAL / "dnstap" / "dnsdist.pcap"
    port = free_port()
    proc = start_watch(str(tmp_path), "--metrics", f"127.0.0.1:{port}", "--settle", "0.2",
                       "--max-resolvers", "2")
    processes.append(proc)
    wait_for(lambda: scrape(port), "the metrics endpoint", proc)
    drop(tmp_path, source, "a.pcap")
    samples = wait_for(settled(port, lambda s: total(s, "capture_files_read_total") == 1),
                       "the file to be read", proc)
    got = by_resolver_rcode(samples)
    want = oracle([source])
    resolvers = {ip for ip, _ in got}
    assert len(resolvers) == 3 and "other" in resolvers  # two of their own, the rest folded
    assert sum(got.values()) == sum(want.values())
    for rcode in {rc for _, rc in want}:
        assert sum(n for (_, rc), n in got.items() if rc == rcode) == \
            sum(n for (_, rc), n in want.items() if rc == rcode)
    for (ip, rc), n in got.items():
        if ip != "other":
            assert want[(ip, rc)] == n
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
