"""Row filters for the EDE frame: codes, domain suffixes, resolvers, time window.

Every filter is applied to the distinct values of a column (few) and then mapped back to
the rows with ``isin``, so filtering 200k rows stays vectorised.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from analyzer.errors import EdePcapError

if TYPE_CHECKING:
    import pandas as pd

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FilterError(EdePcapError, ValueError):
    """A filter value cannot be understood."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What to keep: rows must match every given filter (and any value within one filter).

    :param codes: INFO-CODE values to keep.
    :param domains: lower-case names without trailing dot; a row matches when its qname
        is the name or a subdomain of it (label-wise suffix, so ``example.com`` does not
        match ``badexample.com``).
    :param resolvers: networks the response's source address (the resolver) must be in;
        a single address is a /32 or /128.
    :param since: keep rows at or after this instant (UTC).
    :param until: keep rows strictly before this instant (UTC).
    """

    codes: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
    resolvers: tuple[IpNetwork, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        """Return True when at least one filter is set."""
        return bool(self.codes or self.domains or self.resolvers or self.since or self.until)

    def to_dict(self) -> dict[str, Any]:
        """Return the filters as JSON-ready plain values."""
        return {
            "codes": list(self.codes),
            "domains": list(self.domains),
            "resolvers": [str(n) for n in self.resolvers],
            "since": _iso(self.since),
            "until": _iso(self.until),
        }


CodeLike = int | str
TimeLike = str | int | float | datetime


def build(*, codes: Iterable[CodeLike] = (), domains: Iterable[str] = (),
          resolvers: Iterable[str] = (), since: TimeLike | None = None,
          until: TimeLike | None = None) -> Filters:
    """Return ``Filters`` from command-line strings or Python values; raise ``FilterError``
    if one is invalid.

    :param codes: INFO-CODEs as numbers (``7``, ``EdeCode.SIGNATURE_EXPIRED``) or names
        (``"signature-expired"``).
    :param since: ISO-8601 text, epoch seconds, or a ``datetime`` / ``pandas.Timestamp``
        (naive means UTC); likewise ``until``.
    """
    if isinstance(codes, (str, int)):
        codes = [codes]
    if isinstance(domains, str):
        domains = [domains]
    if isinstance(resolvers, str):
        resolvers = [resolvers]
    start = parse_time(since, "--since") if since is not None and since != "" else None
    end = parse_time(until, "--until") if until is not None and until != "" else None
    if start and end and end <= start:
        raise FilterError(f"--until {until} is not after --since {since}; swap them or widen "
                          "the window")
    return Filters(
        codes=tuple(dict.fromkeys(parse_code(c) for c in codes)),
        domains=tuple(dict.fromkeys(parse_domain(d) for d in domains)),
        resolvers=tuple(dict.fromkeys(parse_resolver(r) for r in resolvers)),
        since=start,
        until=end,
    )


def parse_code(value: CodeLike) -> int:
    """Return the INFO-CODE for ``value``: a number (0-65535) or a catalogue name.

    Names match ignoring case, spaces, dashes and underscores, so ``DNSSEC_BOGUS``,
    ``dnssec-bogus`` and ``"DNSSEC Bogus"`` are all 6.
    """
    if not isinstance(value, str):
        # any integer: int, EdeCode (an IntEnum), numpy's and pandas' integers
        import operator

        try:
            number = operator.index(value)
        except TypeError:
            number = None
        if number is None or isinstance(value, (bool, np_bool())):
            raise FilterError(f"--code {value!r}: give an INFO-CODE as a number or a name")
        if not 0 <= number <= 0xFFFF:
            raise FilterError(f"--code {number}: INFO-CODE is 16 bits; use 0-65535")
        return number
    text = value.strip()
    if text.isdigit():
        code = int(text)
        if code > 0xFFFF:
            raise FilterError(f"--code {value}: INFO-CODE is 16 bits; use 0-65535")
        return code
    wanted = _squash(text)
    from analyzer import codes  # the catalogue is only needed for names

    for record in codes.to_records():
        if _squash(str(record["name"])) == wanted:
            return int(record["code"])
    raise FilterError(f"--code {value}: not a number or known code name; "
                      "see `ede-pcap codes` for the list")


def np_bool() -> type:
    """Return numpy's bool type (``operator.index`` accepts it, as a code it is a mistake)."""
    import numpy as np

    return np.bool_


def parse_domain(value: str) -> str:
    """Return a domain suffix normalised to lower case without the trailing dot."""
    name = value.strip().lower()
    if name in (".", ""):
        return "."
    name = name.rstrip(".")
    if not name or ".." in name:
        raise FilterError(f"--domain {value}: not a domain name; e.g. --domain example.com")
    return name


def parse_resolver(value: str) -> IpNetwork:
    """Return the network for an IP address or CIDR (``192.0.2.1``, ``2001:db8::/32``)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise FilterError(f"--resolver {value}: not an IP address or CIDR; "
                          "e.g. --resolver 192.0.2.53 or --resolver 2001:db8::/32") from None


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: TimeLike, option: str = "--since") -> datetime:
    """Return a UTC datetime for ISO-8601 text, epoch seconds or a datetime; naive times
    are UTC."""
    if isinstance(value, datetime):  # pandas.Timestamp too
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise FilterError(f"{option} {value!r}: not a time; use ISO-8601 text, epoch seconds "
                          "or a datetime")
    text = value.strip()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text) and not _DATE_ONLY.match(text):
            return datetime.fromtimestamp(float(text), tz=UTC)
        moment = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
    except (ValueError, OverflowError, OSError):
        raise FilterError(f"{option} {value}: not a time; use ISO-8601 such as "
                          "2024-05-01T12:00:00Z, or epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def apply(df: pd.DataFrame, filters: Filters | None) -> pd.DataFrame:
    """Return the rows of an EDE or response frame that pass ``filters``."""
    if filters is None or not filters.active or df.empty:
        return df
    import numpy as np

    keep = np.ones(len(df), dtype=bool)
    if filters.codes and "ede_code" in df.columns:
        keep &= df["ede_code"].isin(filters.codes).fillna(False).to_numpy(dtype=bool)
    elif filters.codes and "ede_codes" in df.columns:
        # response rows: "6,22" lists the codes a response carried
        wanted = {str(c) for c in filters.codes}
        keep &= _match_values(df["ede_codes"],
                              lambda s: bool(s) and not wanted.isdisjoint(str(s).split(",")))
    if filters.domains:
        keep &= _match_values(df["qname"], lambda q: domain_matches(q, filters.domains))
    if filters.resolvers:
        keep &= _match_values(df["src_ip"], lambda ip: ip_matches(ip, filters.resolvers))
    if filters.since is not None or filters.until is not None:
        # compare as int64 nanoseconds: --since/--until may lie outside pandas' ns range
        naive = df["ts"].dt.tz_convert("UTC").dt.as_unit("ns").dt.tz_localize(None)
        ns = naive.to_numpy().view(np.int64)
        keep &= ~naive.isna().to_numpy()
        if filters.since is not None:
            keep &= ns >= _clamp(to_ns(filters.since))
        if filters.until is not None:
            keep &= ns < _clamp(to_ns(filters.until))
    if keep.all():
        return df
    return df.loc[keep].reset_index(drop=True)


def to_ns(moment: datetime) -> int:
    """Return nanoseconds since the epoch for an aware datetime (any year 1..9999)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _clamp(ns: int) -> int:
    return max(-(2**63) + 1, min(2**63 - 1, ns))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def domain_matches(qname: str | None, suffixes: tuple[str, ...]) -> bool:
    """Return True when ``qname`` equals or is below one of ``suffixes`` (case-insensitive)."""
    if qname is None:
        return False
    name = qname.lower().rstrip(".")
    for suffix in suffixes:
        if suffix == "." or name == suffix or name.endswith("." + suffix):
            return True
    return False


def ip_matches(address: str | None, networks: tuple[IpNetwork, ...]) -> bool:
    """Return True when ``address`` is inside one of ``networks``."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


def _match_values(column: pd.Series, predicate: Any) -> Any:
    """Evaluate ``predicate`` once per distinct value of ``column``; return a bool array."""
    import numpy as np

    codes, uniques = column.factorize(use_na_sentinel=True)
    hits = np.fromiter((bool(predicate(v)) for v in uniques), dtype=bool, count=len(uniques))
    # append False for the NA sentinel (-1 indexes the last element)
    hits = np.append(hits, False)
    return hits[codes]


def _squash(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).lower()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
