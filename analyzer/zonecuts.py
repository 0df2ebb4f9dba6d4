"""Where a DNSSEC breakage starts: zone cuts inferred from what the capture holds.

A validating resolver answers SERVFAIL for every name in a broken zone, and the query name
alone does not say where that zone starts: ``shop.example.com`` may be a delegated child of a
healthy ``example.com``, and a label or public-suffix rule cannot tell. The capture often can:

- ``signer``: RRSIG signer names in the answer and authority sections of responses (RFC 4034
  §3.1.7: the signer is the zone that holds the RRset), including responses without EDE;
- ``soa``: SOA owners in authority sections (NXDOMAIN and NODATA answers name their zone,
  RFC 2308 §3);
- ``referral``: NS owners of referrals, DS and DNSKEY owners, seen on the resolver's own
  upstream legs when they are captured (RFC 4035 §3.1.4, §5);
- ``boundary``: when nothing names the zone, the deepest suffix under which the failing names
  lie and the names that validate (NOERROR or NXDOMAIN with AD set, or a signed answer from a
  recursive server) do not.

The streaming pass keeps two bounded tables (``ZoneEvidence``): zone cuts by name (each with
the kinds of evidence seen), and a count of validating responses per *watched* suffix. A
suffix is watched once a DNSSEC failure (EDE) below it has been seen, from the query name up
to its registrable zone, so memory depends on the failing names, not on the traffic. That
counting starts at the first failure is deliberate: a zone validates until it breaks, so
earlier answers would make the broken zone look healthy (docs/report-schema.md, "Limits"). The
compiled kernel ``zone_scan`` (``_zonecuts.c``) walks every plain UDP response's question
once, counts the validating ones under watched suffixes in place, and flags the few that may
carry cut evidence; ``zone_scan_py`` is its twin. Flagged messages are decoded here, each
distinct (name, type) once, at most ``DECODE_PER_CHUNK`` per chunk.

``attribute`` turns the tables into one zone and one evidence label per failing name, for the
report (docs/report-schema.md, "Zone attribution").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from analyzer import speedups
from analyzer.errors import Malformed

EVIDENCE = ("text", "signer", "soa", "referral", "boundary", "qname")
SIGNER, SOA, REFERRAL = 1, 2, 4  # bits of a cut's evidence
_BITS = ((SIGNER, "signer"), (SOA, "soa"), (REFERRAL, "referral"))

WATCH_MAX = 1 << 16        # watched suffixes at most; more failing names are not watched
CUTS_MAX = 1 << 16         # zone cuts kept at most
DECODE_PER_CHUNK = 256     # flagged responses decoded per chunk at most
HELD_MAX = 4096            # per-packet responses held for one kernel call at most
SEEN_SLOTS = 1 << 16       # names flagged already: forgotten once 3/4 of this is used

# Second-level labels under which a 2-letter ccTLD delegates registrations
# (``example.co.uk``, ``example.com.au``): the zone of a name under them has 3 labels.
SECOND_LEVEL = frozenset({
    "ac", "co", "com", "edu", "gov", "net", "org", "or", "ne", "go", "gob", "gouv", "mil",
    "nic", "ltd", "plc", "sch", "nom", "int",
})

# The INFO-CODEs of DNSSEC failures (codes.py category "dnssec"): their names are watched.
DNSSEC_CODES = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 25, 27, 33})


def dnssec_codes() -> np.ndarray:
    """``DNSSEC_CODES`` as an array, for ``np.isin``."""
    return _DNSSEC_ARRAY


_DNSSEC_ARRAY = np.array(sorted(DNSSEC_CODES), np.int64)

# RR types (RFC 1035 §3.2.2, RFC 4034 §2-5)
NS, SOA_TYPE, RRSIG, DS, DNSKEY = 2, 6, 46, 43, 48
# Columns of the kernel's flagged rows.
FLAGGED_COLUMNS = ("index", "name_hash")

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1
_LOWER = bytes(b + 32 if 65 <= b <= 90 else b for b in range(256))


def registrable_zone(qname: str) -> str:
    """Return the registrable-ish zone of a name: its last two labels, or three under
    ``co``/``com``/``org``/... below a two-letter ccTLD (``www.example.co.uk`` ->
    ``example.co.uk``). Uses no public-suffix list and never resolves anything.
    """
    name = qname.lower().rstrip(".")
    head, _, tld = name.rpartition(".")
    if not head:
        return name or "."
    rest, _, second = head.rpartition(".")
    if not rest:
        return name
    if len(tld) == 2 and second in SECOND_LEVEL:
        return f"{rest.rpartition('.')[2]}.{second}.{tld}"
    return f"{second}.{tld}"


def suffixes(qname: str) -> list[str]:
    """Return the name's suffixes from its registrable zone down to the name itself."""
    name = qname.lower().rstrip(".")
    top = registrable_zone(name)
    if not name or name == "." or not name.endswith(top):
        return [top] if top else []
    head = name[:len(name) - len(top)].rstrip(".")
    labels = head.split(".") if head else []
    out = [top]
    for label in reversed(labels):
        out.append(f"{label}.{out[-1]}")
    return out


def name_hash(name: str) -> int:
    """Return the 64-bit hash the kernel gives a (lower-cased) name: FNV-1a over its labels
    from the root down, each as its length byte then its bytes; never 0 (the empty slot)."""
    h = _FNV_OFFSET
    if name not in ("", "."):
        for label in reversed(name.lower().rstrip(".").split(".")):
            raw = label.encode("ascii")
            for b in (len(raw), *raw):
                h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h or 1


def plain_name(name: str) -> bool:
    """Whether a presentation name holds only what the kernel hashes as written (no escapes)."""
    if name in ("", ".") or "\\" in name or not name.isascii():
        return False
    return all(0 < len(label) < 64 for label in name.rstrip(".").split("."))


class SuffixWatch:
    """The watched suffixes: an open-addressed table of name hashes and, beside it, the
    count of validating responses under each (the kernel increments it in place)."""

    def __init__(self, slots: int = 1024) -> None:
        self.keys = np.zeros(slots, np.uint64)
        self.good = np.zeros(slots, np.int64)
        self.names: dict[str, int] = {}  # suffix -> slot
        self.table: dict[int, int] = {}  # hash -> slot, for the per-message twin
        self.dropped = 0                 # suffixes not watched because the table was full

    def watch(self, name: str) -> None:
        """Start counting validating responses under ``name``."""
        if name in self.names:
            return
        if len(self.names) >= WATCH_MAX:
            self.dropped += 1
            return
        if 2 * (len(self.names) + 1) > len(self.keys):
            self._grow()
        self.names[name] = self._place(name_hash(name))

    def _place(self, h: int) -> int:
        mask = len(self.keys) - 1
        slot = h & mask
        while self.keys[slot] and int(self.keys[slot]) != h:
            slot = (slot + 1) & mask
        self.keys[slot] = h
        self.table[h] = slot
        return slot

    def _grow(self) -> None:
        old = {name: int(self.good[slot]) for name, slot in self.names.items()}
        self.keys = np.zeros(len(self.keys) * 2, np.uint64)
        self.good = np.zeros(len(self.keys), np.int64)
        self.names, self.table = {}, {}
        for name, count in old.items():
            slot = self._place(name_hash(name))
            self.names[name] = slot
            self.good[slot] = count

    def counts(self) -> dict[str, int]:
        """Return suffix -> validating responses seen under it since it was watched."""
        return {name: int(self.good[slot]) for name, slot in self.names.items()}


# --- the kernel's twin ---------------------------------------------------------------------

def zone_scan_py(arr: np.ndarray, payload: np.ndarray, payload_len: np.ndarray,
                 keys: np.ndarray, good: np.ndarray, seen: np.ndarray) -> bytes:
    """The Python twin of the ``zone_scan`` kernel (``_zonecuts.c``).

    For each response ``arr[payload[i]:payload[i] + payload_len[i]]`` with one question of
    plain labels: hash every suffix of the question name (``name_hash``) and, when the
    response validates (RCODE NOERROR or NXDOMAIN, and AD set or, with RA set and CD clear,
    an RRSIG in the answer), add one to ``good`` at each watched suffix's slot in ``keys``.
    Return the flagged messages as int64 rows (``FLAGGED_COLUMNS``): those under a watched
    suffix whose answer or authority holds an RRSIG, SOA or NS; every DS or DNSKEY query's
    answer; and referrals (no answer, NS in authority, AA clear, NOERROR). A flagged name's
    hash goes into the table ``seen``, and a name found there is not flagged again.
    """
    table = {int(k): s for s, k in enumerate(keys.tolist()) if k}
    data = arr.tobytes() if len(payload) else b""
    out: list[int] = []
    for i, (start, length) in enumerate(zip(payload.tolist(), payload_len.tolist(),
                                            strict=True)):
        if start < 0 or length < 0 or start + length > len(data):
            continue
        row = _scan_one(data[start:start + length], table, good, seen)
        if row is not None:
            out += [i, row]
    return np.array(out, np.int64).tobytes()


def _find(table: np.ndarray, h: int) -> int:
    """The slot of ``h`` in an open-addressed table of hashes (0 = empty), or -1."""
    mask = len(table) - 1
    slot = h & mask
    for _ in range(len(table)):
        key = int(table[slot])
        if key == h:
            return slot
        if key == 0:
            return -1
        slot = (slot + 1) & mask
    return -1


def _insert(table: np.ndarray, h: int) -> None:
    mask = len(table) - 1
    slot = h & mask
    for _ in range(len(table)):
        key = int(table[slot])
        if key in (0, h):
            table[slot] = h
            return
        slot = (slot + 1) & mask


def _scan_one(m: bytes, table: Mapping[int, int], good: np.ndarray,
              seen: np.ndarray) -> int | None:
    """One message of ``zone_scan_py``: return its name hash (as int64) when flagged."""
    n = len(m)
    if n < 12 or not m[2] & 0x80 or (m[4] << 8 | m[5]) != 1:
        return None
    labels: list[bytes] = []
    off = 12
    while True:
        if off >= n:
            return None
        length = m[off]
        if length == 0:
            off += 1
            break
        if length > 63 or off + 1 + length > n or len(labels) >= 127:
            return None
        labels.append(m[off + 1:off + 1 + length].translate(_LOWER))
        off += 1 + length
    if off + 4 > n:
        return None
    qtype = m[off] << 8 | m[off + 1]
    off += 4
    flags = m[2] << 8 | m[3]
    an, ns = m[6] << 8 | m[7], m[8] << 8 | m[9]
    rcode = flags & 0xF
    h = _FNV_OFFSET
    hits: list[int] = []
    for label in reversed(labels):
        for b in (len(label), *label):
            h = ((h ^ b) * _FNV_PRIME) & _MASK
        slot = table.get(h or 1)
        if slot is not None:
            hits.append(slot)
    h = h or 1
    referral_shape = an == 0 and ns > 0
    answered = rcode in (0, 3)
    if hits and answered and flags & 0x0020:  # AD: validated
        for slot in hits:
            good[slot] += 1
    # a signed answer from a recursive server (RA, CD clear) validated too
    check_sig = bool(hits) and answered and not flags & 0x0020 and bool(flags & 0x0080) \
        and not flags & 0x0010
    may_flag = bool(hits or qtype in (DS, DNSKEY) or referral_shape) and _find(seen, h) < 0
    if not check_sig and not may_flag:
        return None
    answer_sig = any_sig = auth_soa = auth_ns = False
    for k in range(an + ns):
        off = _skip(m, off)
        if off < 0 or off + 10 > n:
            break
        rtype = m[off] << 8 | m[off + 1]
        rdlen = m[off + 8] << 8 | m[off + 9]
        off += 10 + rdlen
        if off > n:
            break
        if rtype == RRSIG:
            any_sig = True
            answer_sig = answer_sig or k < an
        elif k >= an and rtype == SOA_TYPE:
            auth_soa = True
        elif k >= an and rtype == NS:
            auth_ns = True
    if check_sig and answer_sig:
        for slot in hits:
            good[slot] += 1
    if may_flag and ((hits and (any_sig or auth_soa or auth_ns)) or qtype in (DS, DNSKEY) or (
            referral_shape and auth_ns and not flags & 0x0400 and rcode == 0)):
        _insert(seen, h)
        return h - (1 << 64) if h >= 1 << 63 else h  # as the kernel's int64 holds it
    return None


def _skip(m: bytes, off: int) -> int:
    """Past the name at ``off``, or -1 (as the kernel's ``skip_name``)."""
    n = len(m)
    while True:
        if off >= n:
            return -1
        length = m[off]
        if length == 0:
            return off + 1
        if length >= 0xC0:
            return off + 2 if off + 1 < n else -1
        if length > 63:
            return -1
        off += length + 1


def zone_scan(arr: np.ndarray, payload: np.ndarray, payload_len: np.ndarray,
              keys: np.ndarray, good: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Return the flagged rows (``FLAGGED_COLUMNS``) of a chunk's responses, counting the
    validating ones under watched suffixes into ``good``: the kernel, or its twin."""
    kernels = speedups.kernels
    payload = np.ascontiguousarray(payload, np.int64)
    payload_len = np.ascontiguousarray(payload_len, np.int64)
    if kernels is not None:
        raw = kernels.zone_scan(arr, payload, payload_len, keys, good, seen)
    else:
        raw = zone_scan_py(arr, payload, payload_len, keys, good, seen)
    return np.frombuffer(raw, np.int64).reshape(-1, len(FLAGGED_COLUMNS))


# --- evidence from one message -------------------------------------------------------------

def message_cuts(msg: bytes) -> list[tuple[str, int]]:
    """Return the zone cuts one response names, as (zone, evidence bit) pairs.

    RRSIG signers in the answer and authority sections (``SIGNER``), SOA owners in the
    authority section (``SOA``), and ``REFERRAL`` for the NS owners of a referral (no answer,
    AA clear), DS and DNSKEY owners in the answer, and NS owners answering an NS query.
    A message that does not parse gives what was read before the fault.
    """
    from analyzer.message import read_name

    out: list[tuple[str, int]] = []
    try:
        if len(msg) < 12 or (msg[4] << 8 | msg[5]) != 1:
            return out
        flags = msg[2] << 8 | msg[3]
        an, ns = msg[6] << 8 | msg[7], msg[8] << 8 | msg[9]
        _, off = read_name(msg, 12)
        qtype = msg[off] << 8 | msg[off + 1]
        off += 4
        referral = an == 0 and not flags & 0x0400 and flags & 0xF == 0
        for k in range(an + ns):
            owner, off = read_name(msg, off)
            rtype = msg[off] << 8 | msg[off + 1]
            rdlen = msg[off + 8] << 8 | msg[off + 9]
            rdata = off + 10
            off = rdata + rdlen
            if off > len(msg):
                break
            in_answer = k < an
            if rtype == RRSIG and rdlen > 18:
                # RFC 4034 §3.1: 18 fixed bytes, then the signer's name, never compressed
                signer, _ = read_name(msg[:off], rdata + 18)
                out.append((_lower(signer), SIGNER))
            elif rtype == SOA_TYPE and not in_answer:
                out.append((_lower(owner), SOA))
            elif rtype == NS and ((not in_answer and referral) or (in_answer and qtype == NS)):
                out.append((_lower(owner), REFERRAL))
            elif rtype in (DS, DNSKEY) and in_answer:
                out.append((_lower(owner), REFERRAL))
    except (Malformed, IndexError):
        pass
    return out


def _lower(name: str) -> str:
    return name.lower().rstrip(".") or "."


# --- the streaming tables ------------------------------------------------------------------

class ZoneEvidence:
    """Bounded evidence about zone cuts gathered during a scan (see the module docstring)."""

    def __init__(self) -> None:
        self.watch = SuffixWatch()
        self.cuts: dict[str, int] = {}  # zone -> evidence bits
        self.cuts_dropped = 0
        self.seen = np.zeros(SEEN_SLOTS, np.uint64)  # names flagged already (the kernel's)
        self._flagged = 0
        self._held: list[bytes] = []
        self._failed: set[str] = set()
        self.decoded = 0

    def failed(self, qnames: Iterable[str]) -> None:
        """Watch the suffixes of names that failed DNSSEC validation."""
        known = self._failed
        if len(known) > SEEN_SLOTS:  # names repeat: remember them, within bounds
            known.clear()
        for q in qnames:
            if q in known:
                continue
            known.add(q)
            if q and plain_name(q):
                for s in suffixes(q):
                    self.watch.watch(s)

    def scan(self, arr: np.ndarray, payload: np.ndarray, payload_len: np.ndarray) -> None:
        """Count and read the evidence in a chunk's plain UDP responses."""
        if not len(payload):
            return
        self._room(len(payload))
        rows = zone_scan(arr, payload, payload_len, self.watch.keys, self.watch.good, self.seen)
        self._flagged += len(rows)
        # each name is flagged once: the first DECODE_PER_CHUNK are read, the rest let go
        for index, _ in rows[:DECODE_PER_CHUNK].tolist():
            start = int(payload[index])
            self.observe(arr[start:start + int(payload_len[index])].tobytes())

    def scan_message(self, msg: bytes) -> None:
        """Hold one response from the per-packet path (TCP, fragments, unusual packets) for
        ``flush``, which reads them as ``scan`` reads a chunk's plain ones, all at once."""
        self._held.append(msg)
        if len(self._held) >= HELD_MAX:
            self.flush()

    def flush(self) -> None:
        """Read the responses ``scan_message`` held."""
        if not self._held:
            return
        held, self._held = self._held, []
        lengths = np.fromiter((len(m) for m in held), np.int64, len(held))
        starts = np.zeros(len(held), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        self.scan(np.frombuffer(b"".join(held), np.uint8), starts, lengths)

    def _room(self, coming: int) -> None:
        """Forget the names flagged so far before ``seen`` could fill past three quarters."""
        if self._flagged + coming > 3 * len(self.seen) // 4:
            self.seen[:] = 0
            self._flagged = 0

    def observe(self, msg: bytes) -> None:
        """Add the zone cuts one response names."""
        self.decoded += 1
        for zone, bit in message_cuts(msg):
            self.add_cut(zone, bit)

    def add_cut(self, zone: str, bits: int) -> None:
        if zone in self.cuts:
            self.cuts[zone] |= bits
        elif len(self.cuts) < CUTS_MAX:
            self.cuts[zone] = bits
        else:
            self.cuts_dropped += 1

    def state(self) -> dict[str, Any]:
        """Return the tables as plain data: picklable, and merged with ``merge``."""
        self.flush()
        return {"good": self.watch.counts(), "cuts": dict(self.cuts),
                "dropped": self.watch.dropped + self.cuts_dropped}


def merge(states: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge the ``ZoneEvidence.state()`` of partial scans."""
    good: dict[str, int] = {}
    cuts: dict[str, int] = {}
    dropped = 0
    for s in states:
        if not s:
            continue
        for name, n in s["good"].items():
            good[name] = good.get(name, 0) + n
        for name, bits in s["cuts"].items():
            cuts[name] = cuts.get(name, 0) | bits
        dropped += s["dropped"]
    return {"good": good, "cuts": cuts, "dropped": dropped}


# --- attribution ---------------------------------------------------------------------------

def label(bits: int) -> str:
    """Return the strongest evidence label in a cut's bits (signer, then soa, then referral)."""
    return next(name for bit, name in _BITS if bits & bit)


def attribute(qnames: Iterable[str], evidence: Mapping[str, Any] | None
              ) -> dict[str, tuple[str, str]]:
    """Return failing query name -> (zone, evidence label) for names the EXTRA-TEXT left
    without a zone.

    Per name, over its suffixes from the registrable zone down: the deepest suffix with
    validating responses under it is healthy (``g``). Below ``g``, the shallowest known zone
    cut is where the breakage starts (``signer``, ``soa``, ``referral``); without one, the
    ``boundary``: the deepest suffix shared by all failing names below ``g`` on this name's
    branch. When nothing validated, the deepest known cut above the name is its zone; with
    no evidence at all, the registrable zone (``qname``).
    """
    names = sorted({q for q in qnames if q})
    good: Mapping[str, int] = (evidence or {}).get("good", {})
    cuts: Mapping[str, int] = (evidence or {}).get("cuts", {})
    chains = {q: suffixes(q) for q in names}
    # the failing names under each suffix, for the boundary: suffix -> their common suffix
    common: dict[str, list[str]] = {}
    under: dict[str, int] = {}
    for chain in chains.values():
        for s in chain:
            under[s] = under.get(s, 0) + 1
            shared = common.get(s)
            if shared is None:
                common[s] = chain
            else:
                k = 0
                while k < min(len(shared), len(chain)) and shared[k] == chain[k]:
                    k += 1
                common[s] = shared[:k]
    out: dict[str, tuple[str, str]] = {}
    for q, chain in chains.items():
        if not chain:
            out[q] = (registrable_zone(q), "qname")
            continue
        healthy = max((i for i, s in enumerate(chain) if good.get(s, 0) > 0), default=-1)
        if healthy >= 0:
            below = chain[healthy + 1:]
            known = [s for s in below if s in cuts]
            if known:
                out[q] = (known[0], label(cuts[known[0]]))
            elif below:
                # one failing name says nothing about depth: its branch below ``g``
                top = below[0]
                out[q] = (common[top][-1] if under[top] > 1 else top, "boundary")
            else:
                known = [s for s in chain if s in cuts]
                out[q] = (known[-1], label(cuts[known[-1]])) if known else (chain[0], "qname")
            continue
        known = [s for s in chain if s in cuts]
        out[q] = (known[-1], label(cuts[known[-1]])) if known else (chain[0], "qname")
    return out
