"""Compare ede-pcap with Wireshark's dissectors (tshark), the reference decoder.

Three sources: the peer captures of DNS-OARC dnscap and SIDN entrada2 with the counts tshark
4.0.17 recorded in their ORACLE.tsv, and tshark run live on the crafted captures of
``captures.CRAFTED`` and on ``samples/``.
"""

from __future__ import annotations

import csv
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from captures import CRAFTED, Iface, Rec, assert_same_result, pcapng_section

from analyzer.capture import CaptureReader
from analyzer.pipeline import Scanner, scan
from analyzer.result import ScanResult

PEER = Path(__file__).resolve().parents[2] / "shared" / "peer-captures"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

# How tshark names the link types of the peer captures, and how we do.
LINKTYPES = {"Ethernet": "ethernet", "Raw IP": "raw", "Raw IPv4": "ipv4",
             "Linux cooked-mode capture v1": "linux-sll",
             "Linux cooked-mode capture v2": "linux-sll2"}

# The one deliberate difference from tshark on the peer captures. The capture starts in the
# middle of a DNS-over-TCP stream: tshark, finding no message boundary, decodes none of it;
# ede-pcap waits for a segment that starts with a plausible length prefix and DNS header,
# resynchronises there, and recovers the 12 NXDOMAIN responses that follow.
CONTINUED = "entrada2/sidnlabs-test-tcp-stream-continued.pcap.gz"
OUR_RESPONSES = {CONTINUED: 12}


def _oracle() -> list:  # type: ignore[type-arg]
    tsv = PEER / "ORACLE.tsv"
    if not tsv.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{PEER} is absent"))]
    with tsv.open(newline="") as f:
        return [pytest.param(row, id=row["file"]) for row in csv.DictReader(f, delimiter="\t")]


def _slow(path: Path, ports: tuple[int, ...] = (53,)) -> ScanResult:
    scanner = Scanner(ports, force_slow=True)
    for _ in scanner.run([path]):
        pass
    return scanner.result()


@pytest.mark.parametrize("row", _oracle())
def test_peer_capture_matches_the_oracle(row: dict[str, str]) -> None:
    path = PEER / row["file"]
    result = scan([path])
    assert_same_result(result, _slow(path))
    info = result.captures[0]
    assert (info.error, info.truncated_at) == (None, None)
    assert result.packets == int(row["frames"])
    assert sum(result.accounting.values()) == result.packets
    assert info.linktypes == [LINKTYPES[row["linktype"]]]
    want = OUR_RESPONSES.get(row["file"], int(row["dns_response_messages"]))
    assert result.dns_responses == want
    codes = [int(c) for c in row["ede_info_codes"].split(",") if c]
    assert result.ede.ede_code.tolist() == codes


def test_tcp_stream_continued_recovers_twelve_nxdomain_responses() -> None:
    path = PEER / CONTINUED
    if not path.exists():
        pytest.skip(f"{path} is absent")
    responses = scan([path], all_responses=True).responses
    assert len(responses) == 12
    assert set(responses.rcode) == {"NXDOMAIN"}
    assert set(responses.transport) == {"tcp"}


def test_real_ede_responses_in_the_peer_captures() -> None:
    if not PEER.exists():
        pytest.skip(f"{PEER} is absent")
    dnscap = scan([PEER / "dnscap" / "edns.pcap"]).ede
    assert dnscap[["frame_number", "src_ip", "qname", "qtype", "rcode", "ede_code",
                   "extra_text"]].values.tolist() == [
        [14, "1.1.1.1", "dnssec-failed.org", "A", "SERVFAIL", 9,
         "no SEP matching the DS found for dnssec-failed.org."]]
    sidn = scan([PEER / "entrada2" / "sidnlabs-test-extended-errors-not-auth.pcap.gz"]).ede
    assert sidn[["frame_number", "ip_version", "rcode", "ede_code", "ede_name",
                 "extra_text"]].values.tolist() == [[2, 6, "REFUSED", 20, "Not Authoritative", ""]]


# -- tshark, live ----------------------------------------------------------------------------

FIELDS = ["-T", "fields", "-E", "aggregator=\x1f", "-e", "frame.number",
          "-e", "dns.opt.ext_error.info_code", "-e", "dns.opt.ext_error.extra_text"]
REASSEMBLE_OUT_OF_ORDER = ("-o", "tcp.reassemble_out_of_order:TRUE")

Found = dict[int, tuple[list[int], list[str]]]
CraftedFound = dict[str, tuple[Path, Found]]


def tshark_ede(tshark: str, path: Path, options: tuple[str, ...] = ()) -> Found:
    """Return, per frame with EDE, tshark's info-codes and non-empty extra texts."""
    out = subprocess.run([tshark, "-r", str(path), "-n", *options, *FIELDS],
                         capture_output=True, text=True, errors="surrogateescape", check=False)
    found: Found = {}
    for line in out.stdout.splitlines():
        number, codes, texts = line.split("\t")
        if codes:
            found[int(number)] = ([int(c) for c in codes.split("\x1f")],
                                  [t for t in texts.split("\x1f") if t])
    return found


def our_ede(result: ScanResult) -> tuple[Found, set[int]]:
    """Return ours in tshark's form, and the frames whose text was not UTF-8.

    tshark writes tab, CR and LF in a field as ``\\t``, ``\\r`` and ``\\n``, and leaves out
    empty texts; invalid UTF-8 it replaces with U+FFFD where we keep escapes.
    """
    found: Found = {}
    not_utf8: set[int] = set()
    for row in result.ede.itertuples():
        codes, texts = found.setdefault(int(row.frame_number), ([], []))
        codes.append(int(row.ede_code))
        if row.extra_text:
            texts.append(row.extra_text.replace("\t", "\\t").replace("\r", "\\r")
                         .replace("\n", "\\n"))
        if not row.extra_text_utf8_valid:
            not_utf8.add(int(row.frame_number))
    return found, not_utf8


def assert_same_as_tshark(ours: Found, not_utf8: set[int], theirs: Found) -> None:
    assert {k: v[0] for k, v in ours.items()} == {k: v[0] for k, v in theirs.items()}
    assert {k: v[1] for k, v in ours.items() if k not in not_utf8} == {
        k: v[1] for k, v in theirs.items() if k not in not_utf8}


# Crafted captures where ede-pcap differs from tshark by design: tshark dissects past an IP
# or UDP length that claims more bytes than the packet holds, past an ARCOUNT that promises
# more records than there are, and past a compression loop in the question name, while
# ede-pcap counts such packets as malformed. The frames tshark finds EDE in, and we do not:
MALFORMED_BY_DESIGN = {"lying-lengths": {1, 2, 5}, "bad-pointers": {1, 2}}
TSHARK_OPTIONS = {
    "port-5300": ("-d", "udp.port==5300,dns"),
    "tcp-out-of-order": REASSEMBLE_OUT_OF_ORDER,
    "tcp-out-of-order-tail-at-opt": REASSEMBLE_OUT_OF_ORDER,
}
def tshark_many(tshark: str, jobs: list[tuple[Path, tuple[str, ...]]]) -> list[Found]:
    """Run tshark on several files at once (its start-up dominates on small captures)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda job: tshark_ede(tshark, *job), jobs))


def _pcap_records(path: Path) -> tuple[int, list[Rec]]:
    """Return the link type and records of a one-link-type capture."""
    reader = CaptureReader(path)
    chunks = list(reader.chunks())
    reader.close()
    recs = [Rec(int(c.ts_ns[i]), c.buf[int(c.data_off[i]):int(c.data_off[i] + c.caplen[i])],
                int(c.origlen[i])) for c in chunks for i in range(len(c))]
    return int(chunks[0].linktype[0]), recs


@pytest.fixture(scope="module")
def crafted_files(tshark: str, tmp_path_factory: pytest.TempPathFactory) -> CraftedFound:
    """Write every crafted capture and decode each with tshark: name -> (path, tshark's EDE).

    The link-type captures hold independent UDP exchanges, so tshark reads them all at once
    from one pcapng with an interface per capture (its start-up costs more than the work).
    """
    folder = tmp_path_factory.mktemp("crafted")
    paths = {}
    for name, crafted in CRAFTED.items():
        paths[name] = folder / f"{name}.pcap"
        paths[name].write_bytes(crafted.build())
    links = [n for n in CRAFTED if n.startswith("link-")]
    ifaces, recs, first = [], [], {}
    for i, name in enumerate(links):
        linktype, these = _pcap_records(paths[name])
        ifaces.append(Iface(linktype, 9))
        first[name] = len(recs)
        recs += [Rec(r.ts_ns, r.data, r.origlen, i) for r in these]
    combined = folder / "links.pcapng"
    combined.write_bytes(pcapng_section(ifaces, recs))
    others = [n for n in CRAFTED if n not in first]
    found = tshark_many(tshark, [(combined, ()), *((paths[n], TSHARK_OPTIONS.get(n, ()))
                                                    for n in others)])
    result = {n: (paths[n], f) for n, f in zip(others, found[1:], strict=True)}
    ends = [*(first[n] for n in links[1:]), len(recs)]
    for name, end in zip(links, ends, strict=True):
        result[name] = (paths[name], {k - first[name]: v for k, v in found[0].items()
                                      if first[name] < k <= end})
    return result


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_capture_agrees_with_tshark(name: str, crafted_files: CraftedFound) -> None:
    path, theirs = crafted_files[name]
    ours, not_utf8 = our_ede(scan([path], ports=CRAFTED[name].ports))
    if name in MALFORMED_BY_DESIGN:
        assert set(theirs) - set(ours) == MALFORMED_BY_DESIGN[name]
        theirs = {k: v for k, v in theirs.items() if k in ours}
    assert_same_as_tshark(ours, not_utf8, theirs)


# tshark opens VXLAN on port 4789 only; Linux's historical 8472 must be named.
SAMPLE_OPTIONS = {"vxlan.pcap": ("-d", "udp.port==8472,vxlan")}


def _samples() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("**/*.pcap*") if p.is_file())


@pytest.fixture(scope="module")
def sample_files(tshark: str) -> dict[Path, Found]:
    """Decode every sample with tshark: path -> tshark's EDE."""
    paths = [p for p in _samples() if p.exists()]
    found = tshark_many(tshark, [(p, REASSEMBLE_OUT_OF_ORDER + SAMPLE_OPTIONS.get(p.name, ()))
                                 for p in paths])
    return dict(zip(paths, found, strict=True))


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(SAMPLES)))
                                  for p in _samples()] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no captures in samples/"))])
def test_sample_agrees_with_tshark(path: Path, sample_files: dict[Path, Found]) -> None:
    if path not in sample_files:
        pytest.skip(f"{path} was removed")
    # DNS on port 5300 appears in transports.pcap; tshark decodes it there as well.
    result = scan([path], ports=(53, 5300))
    assert_same_result(result, _slow(path, (53, 5300)))
    theirs = sample_files[path]
    ours, not_utf8 = our_ede(result)
    # Frames only tshark reports must be packets we counted as malformed (broken/ samples
    # with lying lengths or compression loops, which tshark dissects anyway).
    only_theirs = set(theirs) - set(ours)
    malformed = sum(v for k, v in result.accounting.items() if k.startswith("malformed-"))
    assert len(only_theirs) <= malformed
    theirs = {k: v for k, v in theirs.items() if k not in only_theirs}
    assert_same_as_tshark(ours, not_utf8, theirs)


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_tool_skips_but_fails_in_ci(ci: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import require_tool

    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr("shutil.which", lambda name: None)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="no-such-tool"):
        require_tool("no-such-tool")
