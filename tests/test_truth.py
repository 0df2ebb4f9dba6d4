"""Compare scan() with the truth files of the shared benchmark generator.

``../shared/bench/make_capture.py`` writes realistic DNS traffic (UDP and TCP, IPv4 and IPv6,
VLAN tags, noise) and counts, while writing, what an extractor must find. Each case generates
a capture of 20k-32k packets into a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from captures import assert_same_result, pure_python_kernels

from analyzer.pipeline import scan
from analyzer.result import ScanResult

GENERATOR = Path(__file__).resolve().parents[2] / "shared" / "bench" / "make_capture.py"
CASES = [(fmt, seed, share) for fmt in ("pcap", "pcapng") for seed in (1, 2, 3)
         for share in (0.03, 0.3)]


@dataclass
class Generated:
    truth: dict[str, Any]
    ede: ScanResult            # the default scan
    responses: ScanResult      # all_responses=True
    path: Path


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-seed{s}-ede{e}" for f, s, e in CASES])
def generated(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Generated:
    if not GENERATOR.exists():
        pytest.skip(f"{GENERATOR} is absent")
    fmt, seed, share = request.param
    path = tmp_path_factory.mktemp("bench") / f"bench.{fmt}"
    packets = 20_000 + 4_000 * seed  # 24k, 28k, 32k
    subprocess.run([sys.executable, str(GENERATOR), str(path), "--packets", str(packets),
                    "--seed", str(seed), "--format", fmt, "--ede-share", str(share), "--quiet"],
                   check=True, capture_output=True)
    truth = json.loads(path.with_name(path.name + ".truth.json").read_text())
    assert truth["packets_written"] == packets
    return Generated(truth, scan([path]), scan([path], all_responses=True), path)


def test_kernels_and_python_twins_give_the_same_result(generated: Generated) -> None:
    """The bulk path (clean responses decoded column-wise by the kernel) equals the twins'."""
    with pure_python_kernels():
        pure = scan([generated.path])
    assert_same_result(generated.ede, pure)
    assert len(pure.ede) == generated.truth["ede_options"]


def test_message_counts_equal_the_truth(generated: Generated) -> None:
    truth, result = generated.truth, generated.ede
    assert result.captures[0].error is None
    assert result.packets == truth["packets_written"]
    assert {k: getattr(result, k) for k in ("dns_responses", "dns_queries",
                                             "responses_with_ede", "ede_options")} == {
        k: truth[k] for k in ("dns_responses", "dns_queries", "responses_with_ede",
                              "ede_options")}
    assert generated.responses.dns_responses == truth["dns_responses"]


def test_codes_equal_the_truth(generated: Generated) -> None:
    truth, ede = generated.truth, generated.ede.ede
    by_code = {str(k): v for k, v in sorted(Counter(ede.ede_code.tolist()).items())}
    assert by_code == truth["ede_options_by_code"]
    assert ede.qname.nunique() == truth["distinct_qnames_with_ede"]
    per_code = ede.groupby("ede_code").qname.nunique()
    assert {str(k): v for k, v in per_code.items()} == truth["distinct_qnames_with_ede_by_code"]
    pairs = Counter(f"{r}/{c}" for r, c in zip(ede.rcode, ede.ede_code, strict=True))
    assert dict(pairs) == truth["ede_by_rcode_and_code"]
    two = ede[ede.ede_count == 2]
    assert len(two) // 2 == truth["responses_with_two_ede"]


def test_every_ede_row_has_a_latency(generated: Generated) -> None:
    # Every response in the generated traffic follows its query.
    ede = generated.ede.ede
    assert len(ede) == generated.truth["ede_options"]
    assert not ede.latency.isna().any()
    assert (ede.latency.dt.total_seconds() > 0).all()


def _by_transport(truth: dict[str, Any]) -> dict[str, dict[str, Counter[str]]]:
    """Return the truth's per-transport tallies with both kinds of TCP added up."""
    out: dict[str, dict[str, Counter[str]]] = {}
    for kind, tally in truth["by_transport"].items():
        mine = out.setdefault("udp" if kind == "udp" else "tcp", {})
        for key in ("rcodes", "ede_options_by_code"):
            mine.setdefault(key, Counter()).update(tally[key])
        mine.setdefault("counts", Counter()).update(
            {k: tally[k] for k in ("responses", "responses_with_ede", "ede_options")})
    return out


def test_responses_by_rcode_and_transport_equal_the_truth(generated: Generated) -> None:
    truth, responses = generated.truth, generated.responses.responses
    ede = generated.ede.ede
    assert responses.rcode.value_counts().to_dict() == truth["rcodes"]
    for transport, expected in _by_transport(truth).items():
        mine = responses[responses.transport == transport]
        mine_ede = ede[ede.transport == transport]
        assert {"responses": len(mine), "responses_with_ede": int((mine.ede_codes != "").sum()),
                "ede_options": len(mine_ede)} == expected["counts"]
        assert mine.rcode.value_counts().to_dict() == expected["rcodes"]
        assert Counter(str(c) for c in mine_ede.ede_code) == expected["ede_options_by_code"]
    assert not responses.latency.isna().any()


def test_accounting_matches_the_frames_written(generated: Generated) -> None:
    truth, acc = generated.truth, generated.ede.accounting
    frames = truth["frames"]
    noise = frames["noise_by_kind"]
    assert acc == {
        "dns-query": truth["dns_queries"],             # one query per packet, TCP too
        "dns-response": truth["dns_responses"],
        "tcp-no-payload": frames["tcp_control_segments"],
        "tcp-segment": truth["dns_responses_tcp_split"],  # the first half of each split
        "not-dns-port": noise["tls"] + noise["quic"] + noise["ntp"],
        "non-ip": noise["arp"],
    }

