"""The compiled kernels against their Python twins: same records, same verdicts, same offsets.

Each kernel is run on real capture bytes (samples, peer captures, the fuzz corpus) and on
bytes that hypothesis makes up or mutates, and compared field by field with the Python twin
(records.*_py, fastpath.classify_numpy). The whole-pipeline comparison runs in
``captures.scan_checked`` for every crafted capture.
"""

from __future__ import annotations

import io
import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from captures import (
    QR,
    a_rr,
    ede_option,
    edns_option,
    opt_rr,
    pure_python_kernels,
    response,
)
from captures import message as dns_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import fastpath, layers, matching, message, records, speedups, tunnels
from analyzer.capture import PAD, CaptureReader, Chunk
from analyzer.errors import CaptureError, Malformed

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peer-captures"
FIXTURES = sorted(
    [*ROOT.glob("samples/**/*.pcap*"), *PEER.glob("**/*.pcap*"), *ROOT.glob("tests/fuzz_corpus/*")],
    key=str)
# The fields the pipeline reads, per category (see pipeline.Scanner._chunk and _settled).
READ_FOR = (fastpath.QUERY, fastpath.CANDIDATE, fastpath.TCP_SEGMENT)
FIELDS = ("l3", "l4", "ip_version", "sport", "dport", "payload", "payload_len")
LINKTYPES = (0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 147, 226, 228, 229, 239, 276)

kernels = speedups.kernels
needs_kernels = pytest.mark.skipif(kernels is None, reason="the C kernels are not built")


def test_the_kernels_are_built() -> None:
    if os.environ.get("EDE_PCAP_PURE_PYTHON"):
        pytest.skip("EDE_PCAP_PURE_PYTHON is set: the Python twins run on purpose")
    assert kernels is not None, (
        "analyzer/_speedups.c is not built where the tests import analyzer from: install gcc "
        "and the Python headers (Debian: build-essential python3-dev), then install the "
        "checkout with pip install -e so the extension is built in the tree")
    assert speedups.describe() == "compiled kernels"


def read_all(path: Path) -> tuple[list[tuple], str | None]:
    """Every chunk's columns, and the error that ended the read (if any)."""
    out = []
    reader = CaptureReader(path)
    try:
        for ch in reader.chunks():
            out.append((ch.first_frame, ch.data_off.tolist(), ch.caplen.tolist(),
                        ch.origlen.tolist(), ch.ts_ns.tolist(), ch.linktype.tolist()))
    except CaptureError as e:
        return out, str(e)
    finally:
        reader.close()
    return out, None


@needs_kernels
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_record_walk_agrees_on_every_fixture(path: Path) -> None:
    compiled = read_all(path)
    with pure_python_kernels():
        assert read_all(path) == compiled


def assert_same_verdicts(chunk: Chunk, ports: np.ndarray, decode_all: bool) -> np.ndarray:
    """The kernel agrees with its numpy twin wherever the twin settles a packet, and with the
    per-packet decoder where only the kernel does (the twin leaves tunnels to it)."""
    assert kernels is not None
    got = fastpath.classify(chunk, ports, decode_all)
    want = fastpath.classify_numpy(chunk, ports, decode_all)
    twin = want.cat != fastpath.SLOW
    np.testing.assert_array_equal(got.cat[twin], want.cat[twin])
    slow = got.cat == fastpath.SLOW  # the per-packet path books these itself
    assert not got.tunnels[slow].any() and not got.encap[slow].any()
    assert_kernel_agrees_with_decoder(chunk, ports, got,
                                      np.flatnonzero(~twin & (got.cat != fastpath.SLOW)))
    np.testing.assert_array_equal(got.reports[twin[got.reports]], want.reports)
    read = twin & (np.isin(got.cat, READ_FOR) | np.isin(np.arange(len(chunk)), got.reports))
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name)[read], getattr(want, name)[read], name)
    described = twin & np.isin(got.cat, (fastpath.NON_IP, fastpath.NOT_UDP_TCP))
    np.testing.assert_array_equal(got.detail[described], want.detail[described])
    q = np.flatnonzero(got.cat == fastpath.QUERY)
    columns = (chunk.arr, got.l3[q], got.ip_version[q], got.sport[q], got.dport[q],
               got.payload[q])
    np.testing.assert_array_equal(matching.query_keys(*columns),
                                  matching.query_keys_numpy(*columns))
    return got.cat


class _Recorder(layers.PacketDecoder):
    """The per-packet decoder, stopping where the kernel's verdict is: at the transport."""

    def __init__(self, ports: frozenset[int]):
        super().__init__(ports, self._dns, Counter())
        self.seen: tuple | None = None

    def _dns(self, msg: bytes, ep: layers.Endpoint) -> str:
        self.seen = (ep.src, ep.dst, ep.sport, ep.dport, msg)
        return "dns-response" if msg[2] & 0x80 else "dns-query"

    def tcp_segment(self, ts: int, frame: int, src: bytes, dst: bytes, sport: int, dport: int,
                    ver: int, l4: bytes) -> str:
        self.seen = (src, dst, sport, dport, None)
        return "tcp"


_KERNEL_VERDICT = {fastpath.QUERY: "dns-query", fastpath.RESPONSE: "dns-response",
                   fastpath.CANDIDATE: "dns-response", fastpath.TCP_SEGMENT: "tcp",
                   fastpath.TCP_NO_PAYLOAD: "tcp", **{
                       code: name for code, name in fastpath.CATEGORY_NAMES.items()
                       if code not in (fastpath.QUERY, fastpath.RESPONSE,
                                       fastpath.TCP_NO_PAYLOAD)}}


def assert_kernel_agrees_with_decoder(chunk: Chunk, ports: np.ndarray, got: fastpath.Classified,
                                      packets: np.ndarray) -> None:
    """For packets the kernel opened: the same verdict, endpoints, DNS bytes, tunnels and
    unopened description as ``layers.PacketDecoder``, and one path text per path number."""
    texts: dict[int, str] = {}
    for i in packets.tolist():
        d, cap = int(chunk.data_off[i]), int(chunk.caplen[i])
        rec = _Recorder(frozenset(ports.tolist()))
        category = rec.decode(0, 1, int(chunk.linktype[i]), chunk.buf[d:d + cap], cap)
        c = int(got.cat[i])
        assert category == _KERNEL_VERDICT[c], (i, category, c)
        opened = {kind for bit, kind in enumerate(tunnels.KINDS) if got.tunnels[i] >> bit & 1}
        assert opened == set(rec.tunnels), (i, opened, rec.tunnels)
        if c in (fastpath.NON_IP, fastpath.NOT_UDP_TCP, fastpath.UNSUPPORTED_TUNNEL):
            assert dict(rec.unopened) == {fastpath.unopened_text(c, int(got.detail[i])): 1}
        if rec.seen is not None:
            src, dst = layers.addresses(chunk.buf, int(got.l3[i]), int(got.ip_version[i]))
            assert rec.seen[:4] == (src, dst, int(got.sport[i]), int(got.dport[i]))
            if rec.seen[4] is not None:
                p = int(got.payload[i])
                assert rec.seen[4] == chunk.buf[p:p + int(got.payload_len[i])]
        assert texts.setdefault(int(got.encap[i]), rec.encap) == rec.encap, i
    assert len(set(texts.values())) == len(texts)  # different paths, different numbers


@needs_kernels
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_classify_agrees_on_every_fixture(path: Path) -> None:
    reader = CaptureReader(path)
    seen = 0
    try:
        for chunk in reader.chunks():
            for ports in ([53], [53, 5300, 853]):
                for decode_all in (False, True):
                    assert_same_verdicts(chunk, np.array(ports, np.int64), decode_all)
            seen += len(chunk)
    except CaptureError:
        pass
    finally:
        reader.close()
    if path.name == "incident.pcap":
        assert seen > 1000  # the comparison really ran on packets


# -- made-up and mutated bytes ------------------------------------------------------------------


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), off=st.integers(-4, 420), limit=st.integers(-4, 500),
       big=st.booleans())
def test_pcap_walk_agrees_on_any_bytes(data: bytes, off: int, limit: int, big: bool) -> None:
    if off < 0:  # the Python walk is never called with a negative offset; the C one refuses
        rows, stop = records.pcap_records(data, off, limit, big)
        assert len(rows) == 0 and stop == off
        return
    rows, stop = records.pcap_records(data, off, limit, big)
    want_rows, want_stop = records.pcap_records_py(data, off, limit, big)
    np.testing.assert_array_equal(rows, want_rows)
    assert stop == want_stop


def block(btype: int, blen: int, body: bytes, big: bool) -> bytes:
    e = ">" if big else "<"
    return struct.pack(e + "II", btype, blen) + body


@st.composite
def pcapng_blocks(draw: st.DrawFn) -> tuple[bytes, bool]:
    big = draw(st.booleans())
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        btype = draw(st.sampled_from([6, 6, 6, 3, 1, 2, 0x0A0D0D0A, draw(st.integers(0, 9))]))
        size = draw(st.integers(0, 120))
        honest = 12 + size + (-size % 4)
        blen = draw(st.sampled_from([honest, honest, honest - 4, honest + 4, honest + 2, 28, 31,
                                     (1 << 20) + 100, draw(st.integers(0, 1 << 32 - 1))]))
        body = draw(st.binary(min_size=honest - 8, max_size=honest - 8))
        out += block(btype, blen, body, big)
    cut = draw(st.integers(0, len(out)))
    return out[:cut], big


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(case=pcapng_blocks(), off=st.integers(0, 40))
def test_pcapng_walk_agrees_on_any_blocks(case: tuple[bytes, bool], off: int) -> None:
    data, big = case
    rows, stop = records.pcapng_epbs(data, off, big)
    want_rows, want_stop = records.pcapng_epbs_py(data, off, big)
    np.testing.assert_array_equal(rows, want_rows)
    assert stop == want_stop


def sample_chunk(name: str) -> Chunk:
    reader = CaptureReader(ROOT / "samples" / name)
    try:
        return next(iter(reader.chunks()))
    finally:
        reader.close()


TRANSPORTS = sample_chunk("transports.pcap")
# Every link type the samples carry, as packets to mutate.
BASES = [TRANSPORTS, *(sample_chunk(f"transports-{link}.pcap") for link in ("sll", "null", "raw")),
         sample_chunk("all-codes.pcapng"),
         *(sample_chunk(f"tunnels/{name}.pcap") for name in (
             "vxlan", "geneve", "vxlan-gpe", "gtp-u", "l2tp", "gre", "erspan", "mpls", "pppoe",
             "ip-in-ip", "unopened", "link-nflog", "link-ppp", "link-ipnet", "link-sll-vlan"))]


@needs_kernels
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_classify_agrees_on_mutated_packets(data: st.DataObject) -> None:
    """Real packets with bytes flipped, cut short or relabelled: the verdicts still agree."""
    base = data.draw(st.sampled_from(BASES))
    picks = data.draw(st.lists(st.integers(0, len(base) - 1), min_size=1, max_size=8))
    buf = bytearray()
    offs, caps, lts = [], [], []
    for i in picks:
        d, cap = int(base.data_off[i]), int(base.caplen[i])
        pkt = bytearray(base.buf[d:d + cap])
        for _ in range(data.draw(st.integers(0, 4))):
            if pkt:
                pkt[data.draw(st.integers(0, len(pkt) - 1))] = data.draw(st.integers(0, 255))
        keep = data.draw(st.integers(0, len(pkt))) if data.draw(st.booleans()) else len(pkt)
        offs.append(len(buf))
        caps.append(keep)
        own = int(base.linktype[i])
        lts.append(data.draw(st.sampled_from([own, own, own, *LINKTYPES])))
        buf += pkt[:keep]
    n = len(picks)
    chunk = Chunk(bytes(buf), np.array(offs, np.int64), np.array(caps, np.int64),
                  np.array(caps, np.int64), np.zeros(n, np.int64), np.array(lts, np.int64), 1)
    ports = np.array(data.draw(st.sampled_from([[53], [53, 5300], [0, 65535]])), np.int64)
    assert_same_verdicts(chunk, ports, data.draw(st.booleans()))


@needs_kernels
@pytest.mark.parametrize("base", BASES, ids=lambda c: f"link{int(c.linktype[0])}")
def test_classify_agrees_on_every_cut_of_real_packets(base: Chunk) -> None:
    """Each packet cut at every length, whole at last."""
    buf = bytearray()
    offs, caps = [], []
    for i in range(min(len(base), 25)):
        d, cap = int(base.data_off[i]), int(base.caplen[i])
        for keep in range(cap + 1):
            offs.append(len(buf))
            caps.append(keep)
            buf += base.buf[d:d + keep]
    n = len(offs)
    chunk = Chunk(bytes(buf), np.array(offs, np.int64), np.array(caps, np.int64),
                  np.array(caps, np.int64), np.zeros(n, np.int64),
                  np.full(n, int(base.linktype[0]), np.int64), 1)
    for decode_all in (False, True):
        cat = assert_same_verdicts(chunk, np.array([53], np.int64), decode_all)
    assert len(set(cat.tolist())) >= 3  # cuts reach several verdicts, not one


@needs_kernels
@settings(max_examples=200, deadline=None)
@given(buf=st.binary(min_size=0, max_size=300), data=st.data())
def test_classify_agrees_on_noise(buf: bytes, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 6))
    offs = [data.draw(st.integers(0, len(buf))) for _ in range(n)]
    # Short captured lengths, where the header-size checks sit, come up often.
    caps = [min(data.draw(st.one_of(st.integers(0, 64), st.integers(0, 300))), len(buf) - o)
            for o in offs]
    lts = [data.draw(st.sampled_from(LINKTYPES)) for _ in range(n)]
    chunk = Chunk(buf, np.array(offs, np.int64), np.array(caps, np.int64),
                  np.array(caps, np.int64), np.zeros(n, np.int64), np.array(lts, np.int64), 1)
    assert len(chunk.arr) == len(buf) + PAD
    assert_same_verdicts(chunk, np.array([53], np.int64), data.draw(st.booleans()))


@needs_kernels
def test_classify_refuses_columns_of_the_wrong_shape() -> None:
    assert kernels is not None
    chunk = TRANSPORTS
    n = len(chunk)
    outs = [np.empty(n, np.int8), *(np.empty(n, np.int64) for _ in range(10))]
    with pytest.raises(TypeError, match="data_off"):
        kernels.classify(chunk.arr, chunk.data_off.astype(np.int32), chunk.caplen,
                         chunk.linktype, bytes(8192), False, *outs)
    with pytest.raises(ValueError, match="port_map"):
        kernels.classify(chunk.arr, chunk.data_off, chunk.caplen, chunk.linktype, b"", False,
                         *outs)
    outs[2] = np.empty(n + 1, np.int64)
    with pytest.raises(ValueError, match="l4"):
        kernels.classify(chunk.arr, chunk.data_off, chunk.caplen, chunk.linktype, bytes(8192),
                         False, *outs)


def test_the_pure_python_switch_is_honoured(tmp_path: Path) -> None:
    """EDE_PCAP_PURE_PYTHON=1 runs the twins; the report is the same byte for byte."""
    import subprocess
    import sys

    sample = ROOT / "samples" / "incident.pcap"
    outputs = []
    for pure in ("", "1"):
        env = {**os.environ, "EDE_PCAP_PURE_PYTHON": pure}
        code = ("import sys; from analyzer import speedups; print(speedups.describe()); "
                "from analyzer.cli import main; sys.argv = ['ede-pcap', 'report', sys.argv[1], "
                "'--format', 'json']; main()")
        done = subprocess.run([sys.executable, "-c", code, str(sample)], env=env,
                              capture_output=True, text=True, check=True)
        outputs.append(done.stdout)
    compiled, pure = outputs
    assert pure.startswith("pure Python kernels\n")
    if kernels is not None:
        assert compiled.startswith("compiled kernels\n")
    assert compiled.split("\n", 1)[1] == pure.split("\n", 1)[1]
    assert '"ede_options"' in pure


def test_reader_gives_the_same_chunks_through_a_stream() -> None:
    data = (ROOT / "samples" / "all-codes.pcapng").read_bytes()
    with pure_python_kernels():
        reader = CaptureReader(io.BytesIO(data))
        want = [(c.data_off.tolist(), c.ts_ns.tolist()) for c in reader.chunks()]
    reader = CaptureReader(io.BytesIO(data))
    assert [(c.data_off.tolist(), c.ts_ns.tolist()) for c in reader.chunks()] == want
    assert sum(len(d) for d, _ in want) > 10


# -- the DNS response decoder -------------------------------------------------------------------


def assert_same_response(msg: bytes) -> bool:
    """Compare the kernel with the Python decoder on ``msg``; return whether the kernel took it."""
    assert kernels is not None
    clean = kernels.parse_response(msg)
    try:
        want = message.parse_response_py(msg)
    except Malformed:
        assert clean is None, "the kernel took a message the Python decoder rejects"
        return False
    if clean is None:
        return False
    assert tuple(want[:10]) == clean[:10]
    assert [(e.info_code, e.extra_text) for e in want.edes] == clean[10]
    assert all(e.utf8_valid for e in want.edes)
    assert want.problems == [] and want.report_channel is None
    assert message.parse_response(msg) == want
    return True


@needs_kernels
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_response_decoder_agrees_on_every_fixture(path: Path) -> None:
    reader = CaptureReader(path)
    taken = seen = 0
    try:
        for chunk in reader.chunks():
            cls = fastpath.classify_numpy(chunk, np.array([53, 5300], np.int64), True)
            for i in np.flatnonzero(cls.cat == fastpath.CANDIDATE).tolist():
                p, plen = int(cls.payload[i]), int(cls.payload_len[i])
                taken += assert_same_response(chunk.buf[p:p + plen])
                seen += 1
    except CaptureError:
        pass
    finally:
        reader.close()
    if path.name == "incident.pcap":
        assert taken > seen * 0.9 > 100  # clean responses really go through the kernel


LABEL = st.one_of(st.from_regex(rb"\A[a-z0-9-]{1,12}\Z"), st.binary(min_size=1, max_size=70))
TEXT = st.one_of(st.text(max_size=30).map(str.encode), st.binary(max_size=30),
                 st.just(b"no SEP matching the DS found\x00"))


@st.composite
def dns_responses(draw: st.DrawFn) -> bytes:
    labels = draw(st.lists(LABEL, max_size=5))
    qd = [b"".join(bytes([min(len(x), 255)]) + x for x in labels) + b"\x00" + b"\x00\x01\x00\x01"]
    options = [ede_option(draw(st.integers(0, 65535)), draw(TEXT))
               for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        options.insert(draw(st.integers(0, len(options))),
                       edns_option(draw(st.sampled_from([10, 12, 18, 15, 3])),
                                   draw(st.binary(max_size=12))))
    ar = [opt_rr(*options, udp_size=draw(st.integers(0, 65535)),
                 ext_rcode=draw(st.integers(0, 255)), do=draw(st.booleans()))]
    if draw(st.booleans()):
        ar.insert(0, a_rr())
    if draw(st.integers(0, 9)) == 0:
        ar.append(opt_rr())  # a second OPT: a problem the Python decoder names
    an = [a_rr() for _ in range(draw(st.integers(0, 2)))]
    qds = qd * draw(st.sampled_from([1, 1, 1, 0, 2]))
    msg = bytearray(dns_message(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)) | QR,
                            qd=qds, an=an, ar=ar))
    for _ in range(draw(st.integers(0, 2))):  # damage: flipped bytes, then a cut
        msg[draw(st.integers(0, len(msg) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del msg[draw(st.integers(0, len(msg))):]
    return bytes(msg)


@needs_kernels
@settings(max_examples=600, deadline=None)
@given(msg=dns_responses())
def test_response_decoder_agrees_on_made_up_messages(msg: bytes) -> None:
    assert_same_response(msg)


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(msg=st.binary(max_size=120))
def test_response_decoder_agrees_on_noise(msg: bytes) -> None:
    assert_same_response(msg)


@needs_kernels
def test_response_decoder_takes_the_common_case() -> None:
    msg = response("Dnssec-Failed.example", 48, edes=[(6, "bogus"), (65000, "privé\x00")],
                   an=[a_rr()], do=True)
    assert assert_same_response(msg)
    assert kernels is not None
    assert kernels.parse_response(msg)[10] == [(6, "bogus"), (65000, "privé")]


@needs_kernels
@settings(max_examples=200, deadline=None)
@given(buf=st.binary(min_size=60, max_size=200), data=st.data())
def test_query_keys_agree_on_any_addresses(buf: bytes, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 5))
    arr = np.frombuffer(buf + bytes(PAD), np.uint8)
    l3 = np.array([data.draw(st.integers(0, len(buf) - 40)) for _ in range(n)], np.int64)
    ver = np.array([data.draw(st.sampled_from([4, 6])) for _ in range(n)], np.int64)
    ports = [np.array([data.draw(st.integers(0, 65535)) for _ in range(n)], np.int64)
             for _ in range(2)]
    payload = np.array([data.draw(st.integers(0, len(buf) - 2)) for _ in range(n)], np.int64)
    columns = (arr, l3, ver, *ports, payload)
    keys = matching.query_keys(*columns)
    np.testing.assert_array_equal(keys, matching.query_keys_numpy(*columns))
    # ... and both equal the per-packet decoder's key, so a query found either way matches.
    for i in range(n):
        at, width = (12, 4) if ver[i] == 4 else (8, 16)
        src = bytes(buf[l3[i] + at:l3[i] + at + width])
        dst = bytes(buf[l3[i] + at + width:l3[i] + at + 2 * width])
        dns_id = (buf[payload[i]] << 8) | buf[payload[i] + 1]
        assert int(keys[i]) == matching.query_key(src, dst, int(ports[0][i]), int(ports[1][i]),
                                                  dns_id, False)


@needs_kernels
def test_chunk_decoder_gives_equal_names_and_texts_as_one_object() -> None:
    assert kernels is not None
    msgs = [response("a.example", edes=[(6, "bogus")]), response("b.example", edes=[(6, "bogus")]),
            response("a.example", edes=[(6, "bogus")]), response("x.example", edes=[(3, b"\xff")])]
    buf = b"".join(msgs)
    starts = np.cumsum([0] + [len(m) for m in msgs[:-1]]).astype(np.int64)
    lens = np.array([len(m) for m in msgs], np.int64)
    strings: dict[str, str] = {}
    raw, qnames, codes, texts = kernels.decode_responses(
        np.frombuffer(buf + bytes(PAD), np.uint8), starts, lens, strings)
    rows = np.frombuffer(raw, np.int64).reshape(-1, 10)
    assert rows[:, 0].tolist() == [0, 1, 2]  # invalid UTF-8 is left to the Python decoder
    assert qnames == ["a.example", "b.example", "a.example"] and qnames[0] is qnames[2]
    assert codes == [6, 6, 6] and texts[0] is texts[1] is texts[2]
    assert set(strings) == {"a.example", "b.example", "bogus"}
    with pytest.raises(TypeError):
        kernels.decode_responses(np.frombuffer(buf, np.uint8), starts, lens, [])


# -- DNS-over-TCP reassembly --------------------------------------------------------------------


def framed_message(size: int, qr: int = 1) -> bytes:
    """A length-prefixed message that looks like DNS to ``_looks_framed`` (one question)."""
    body = struct.pack("!HHHHHH", 0x1234, (qr << 15), 1, 0, 0, 0) + bytes(max(0, size - 12))
    return struct.pack("!H", len(body)) + body


@st.composite
def tcp_operations(draw: st.DrawFn) -> list[tuple]:
    """Segments on a few streams: in order, split, repeated, reordered, cut, with SYN/FIN/RST
    and clock jumps (gap and idle timeouts), mid-stream pickups and wild sequence numbers."""
    keys = [("c", "s", port, 53) for port in range(draw(st.integers(1, 3)))]
    ops = []
    ts = 0
    streams = {}
    for _ in range(draw(st.integers(1, 40))):
        key = draw(st.sampled_from(keys))
        ts += draw(st.sampled_from([0, 1_000, 1_000_000, 1_000_000_000, 2_000_000_000,
                                    60_000_000_000, 61_000_000_000, -5]))
        kind = draw(st.sampled_from(["data", "data", "data", "syn", "fin", "rst", "control"]))
        seq = streams.get(key, draw(st.integers(0, 2**32 - 1)))
        if draw(st.integers(0, 5)) == 0:
            seq = (seq + draw(st.sampled_from([-300, -10, 7, 40, 1 << 21, 2**31]))) % 2**32
        if kind == "control":
            ops.append(("control", key, seq, draw(st.sampled_from([0x02, 0x01, 0x04, 0x12])), ts))
            continue
        flags = {"data": 0x18, "syn": 0x02, "fin": 0x19, "rst": 0x04}[kind]
        stream = b"".join(framed_message(draw(st.integers(5, 60)), draw(st.integers(0, 1)))
                          for _ in range(draw(st.integers(0, 3))))
        start = draw(st.integers(0, len(stream)))
        data = stream[start:start + draw(st.integers(0, 90))]
        if draw(st.integers(0, 7)) == 0:
            data = bytes(draw(st.binary(max_size=30)))
        qr = draw(st.sampled_from([None, 0, 1]))
        ops.append(("feed", key, seq, flags, data, qr, ts))
        streams[key] = (seq + len(data)) % 2**32
    return ops


def run_tcp(r: object, ops: list[tuple]) -> list[object]:
    out: list[object] = []
    for i, op in enumerate(ops):
        def cb(msg: bytes, tag: int = i) -> str:
            out.append((tag, msg))
            return f"message-of-{tag}"
        if op[0] == "control":
            out.append(r.control(*op[1:]))  # type: ignore[attr-defined]
        else:
            _, key, seq, flags, data, qr, ts = op
            out.append(r.feed(key, seq, flags, data, cb, qr, ts))  # type: ignore[attr-defined]
        out.append((len(r), r.bytes_held, r.stream_sizes()))  # type: ignore[arg-type,attr-defined]
    r.flush()  # type: ignore[attr-defined]
    out.append(len(r))  # type: ignore[arg-type]
    return out


@needs_kernels
@settings(max_examples=500, deadline=None)
@given(ops=tcp_operations(), small=st.booleans())
def test_tcp_reassembly_agrees_on_any_segments(ops: list[tuple], small: bool) -> None:
    """Same categories, messages (and which segment's callback got them), state and counters."""
    from collections import Counter

    from analyzer import reassembly

    limits = {"MAX_TCP_STREAMS": 2, "MAX_TCP_BYTES": 150, "MAX_STREAM_BUFFER": 120,
              "MAX_OUT_OF_ORDER": 3} if small else {}
    kept = {name: getattr(reassembly, name) for name in limits}
    try:
        for name, value in limits.items():
            setattr(reassembly, name, value)
        c_evicted: Counter[str] = Counter()
        py_evicted: Counter[str] = Counter()
        compiled = reassembly.tcp_reassembler(c_evicted)
        twin = reassembly.TcpReassembler(py_evicted)
        assert type(compiled).__name__ == "TcpStreams"
        assert run_tcp(compiled, ops) == run_tcp(twin, ops)
        assert c_evicted == py_evicted
    finally:
        for name, value in kept.items():
            setattr(reassembly, name, value)


@needs_kernels
def test_tcp_streams_let_the_collector_break_cycles_through_held_segments() -> None:
    """A scan that stops with segments held leaves callback -> scanner -> reassembler cycles."""
    import gc
    import weakref
    from collections import Counter

    from analyzer import reassembly

    class Owner:
        tcp: object

    owner = Owner()
    owner.tcp = reassembly.tcp_reassembler(Counter())

    def deliver(msg: bytes, owner: Owner = owner) -> str:
        return "dns-response"

    owner.tcp.feed(("k",), 0, 0x18, framed_message(20), deliver, 1, 0)  # type: ignore[attr-defined]
    assert owner.tcp.feed(("k",), 500, 0x18, b"abc", deliver, 1, 1) == "tcp-out-of-order"  # type: ignore[attr-defined]
    assert owner.tcp.stream_sizes() == [3]  # type: ignore[attr-defined]
    gone = weakref.ref(owner)
    del owner, deliver
    gc.collect()
    assert gone() is None


@needs_kernels
def test_tcp_streams_refuse_work_before_init() -> None:
    assert kernels is not None
    bare = kernels.TcpStreams.__new__(kernels.TcpStreams)
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.feed(("k",), 0, 0x18, b"xx", print)
    with pytest.raises(RuntimeError, match="not initialised"):
        len(bare)


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(buf=st.binary(max_size=300), data=st.data())
def test_gather_agrees_and_refuses_ranges_outside(buf: bytes, data: st.DataObject) -> None:
    # Ranges anywhere, most inside, some reaching past either end or negative.
    n = data.draw(st.integers(0, 8))
    starts = np.array([data.draw(st.integers(-3, len(buf) + 3)) for _ in range(n)], np.int64)
    lengths = np.array([data.draw(st.integers(-1, 40)) for _ in range(n)], np.int64)
    inside = ((starts >= 0) & (lengths >= 0) & (starts + lengths <= len(buf))).all()
    arr = np.frombuffer(buf, np.uint8)
    assert kernels is not None
    if inside:
        want = b"".join(buf[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist(),
                                                         strict=True))
        assert kernels.gather(buf, starts, lengths) == want
        assert matching.gather_numpy(arr, starts, lengths) == want
    else:
        with pytest.raises(ValueError, match="outside the buffer"):
            kernels.gather(buf, starts, lengths)
        with pytest.raises(ValueError, match="outside the buffer"):
            matching.gather_numpy(arr, starts, lengths)


def test_the_query_table_keeps_copies_not_chunks() -> None:
    # A query held for matching keeps its message, not the chunk it came in.
    table = matching.QueryTable()
    chunk = bytes(1000) + b"\x12\x34" + bytes(10) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    start = np.array([1000], np.int64)
    length = np.array([len(chunk) - 1000], np.int64)
    table.add_many(chunk, np.array([42], np.uint64), np.array([5], np.int64), start, length)
    table.seal()
    question = b"\x07example\x03com\x00\x00\x01\x00\x01"
    assert table.match(np.array([42], np.uint64), np.array([9], np.int64), [question]) == [5]
    assert table.match(np.array([42], np.uint64), np.array([9], np.int64),
                       [question.upper()]) == [None]
    assert table._held == len(chunk) - 1000


@needs_kernels
def test_kernels_refuse_columns_of_different_lengths_or_widths() -> None:
    assert kernels is not None
    a = np.zeros(64, np.uint8)
    two, three = np.zeros(2, np.int64), np.zeros(3, np.int64)
    out = np.zeros(2, np.uint64)
    calls = {
        "lengths: expected 2 items": lambda: kernels.gather(a, two, three),
        "payload: expected 2 items": lambda: kernels.query_keys(a, two, two, two, two, three,
                                                                 out, False),
        "payload_len: expected 2 items": lambda: kernels.decode_responses(a, two, three, {}),
        "cat: expected 2 items": lambda: kernels.classify(
            a, two, two, two, np.zeros(8192, np.uint8), False, np.zeros(3, np.int8),
            *[np.zeros(2, np.int64)] * 10),
        "port_map: expected 8192 bytes": lambda: kernels.classify(
            a, two, two, two, np.zeros(10, np.uint8), False, np.zeros(2, np.int8),
            *[np.zeros(2, np.int64)] * 10),
    }
    for message_text, call in calls.items():
        with pytest.raises(ValueError, match=message_text):
            call()
    with pytest.raises(TypeError, match="starts: expected items of 8 bytes"):
        kernels.gather(a, np.zeros(2, np.int32), two)
