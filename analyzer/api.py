"""The Python API: the command line's options as keyword arguments, errors as exceptions.

``scan``, ``read_ede`` and ``read_responses`` take what ``ede-pcap`` takes: files, ``-``,
directories (searched recursively) and glob patterns, the filters (codes by number or
name, domains, resolvers, since/until), the DNS ports and ``jobs``. Unlike the command
line, which reports what it could read and names the rest, they raise by default:
``FileNotFoundError`` for a capture that is not there and ``CaptureError`` for one that
cannot be read. ``errors="collect"`` reads what it can and hands the failures back as data
(``ScanResult.failed``), the way the command line does for many files.

Example::

    import analyzer
    df = analyzer.read_ede("captures/*.pcap.gz", codes=["signature-expired", 6])
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from analyzer import filters as filtering
from analyzer.errors import CaptureError
from analyzer.result import CaptureInfo, ScanResult

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.filters import CodeLike, TimeLike
    from analyzer.pipeline import Progress

Source = str | Path | BinaryIO
Errors = Literal["raise", "collect"]

__all__ = ["CaptureWarning", "scan", "read_ede", "read_responses"]


class CaptureWarning(UserWarning):
    """A capture could not be read to its end (``errors="collect"``)."""


def scan(captures: Source | Sequence[Source], *,
         codes: Iterable[CodeLike] | CodeLike = (),
         domains: Iterable[str] | str = (),
         resolvers: Iterable[str] | str = (),
         since: TimeLike | None = None,
         until: TimeLike | None = None,
         ports: Iterable[int] = (53,),
         jobs: int = 1,
         all_responses: bool = False,
         strict: bool = False,
         errors: Errors = "raise",
         progress: Progress | None = None) -> ScanResult:
    """Read captures once and return a ``ScanResult``: the EDE frame (``.ede``), packet
    accounting, per-capture facts, and ``.report()``.

    :param captures: a path, ``-`` (standard input), an open binary file, a directory
        (searched recursively for ``*.pcap``, ``*.pcapng``, ``*.cap``, compressed or not), a
        glob pattern (``"2024-*/*.pcap.gz"``), or a list of these.
    :param codes: keep only these INFO-CODEs: numbers, ``EdeCode`` members or names
        (``"dnssec-bogus"``).
    :param domains: keep only query names equal to or under these names.
    :param resolvers: keep only responses from these addresses or networks (CIDR).
    :param since: keep rows at or after this time: ISO-8601 text, epoch seconds, or a
        ``datetime`` / ``pandas.Timestamp`` (naive means UTC).
    :param until: keep rows before this time.
    :param ports: the DNS ports to decode.
    :param jobs: read up to this many files (or parts of one large pcap) in parallel
        processes; the result is the same.
    :param all_responses: also build ``.responses``, one row per DNS response.
    :param strict: raise ``Malformed`` at the first malformed packet instead of counting it.
    :param errors: ``"raise"`` (default): ``FileNotFoundError`` for a missing capture (or a
        pattern or directory that names none), ``CaptureError`` for one that cannot be read;
        nothing is returned. ``"collect"``: read what can be read and list the rest in
        ``ScanResult.failed``, as the command line does.
    :raises FilterError: a filter value cannot be understood (it is a ``ValueError``).
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors={errors!r}: use 'raise' or 'collect'")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: give a whole number of processes, at least 1")
    wanted = filtering.build(codes=codes, domains=domains, resolvers=resolvers, since=since,
                             until=until)
    port_list = _ports(ports)
    paths, problems = _expand(captures)
    if errors == "raise":
        for problem in problems:
            raise FileNotFoundError(errno.ENOENT, problem.split(": ", 1)[1],
                                    problem.split(": ", 1)[0])
        for path in paths:
            if isinstance(path, (str, Path)) and not _exists(path):
                raise FileNotFoundError(errno.ENOENT, "no such capture file; check the path",
                                        str(path))
    from analyzer import pipeline

    result = pipeline.scan(paths, ports=port_list, all_responses=all_responses,
                           strict=strict, progress=progress, jobs=jobs)
    result.captures.extend(CaptureInfo(path=p.split(": ", 1)[0], error=p) for p in problems)
    if errors == "raise" and result.failed:
        first = result.failed[0]
        raise CaptureError(first.path, first.error or "cannot be read", first.error_offset,
                           message=first.error)
    if wanted.active:
        result.ede = filtering.apply(result.ede, wanted)
        if result.responses is not None:
            result.responses = filtering.apply(result.responses, wanted)
    result.filters = wanted
    return result


def read_ede(captures: Source | Sequence[Source], *,
             codes: Iterable[CodeLike] | CodeLike = (),
             domains: Iterable[str] | str = (),
             resolvers: Iterable[str] | str = (),
             since: TimeLike | None = None,
             until: TimeLike | None = None,
             ports: Iterable[int] = (53,),
             jobs: int = 1,
             strict: bool = False,
             errors: Errors = "raise") -> pd.DataFrame:
    """Return one row per EDE option found in the captures, as a pandas DataFrame
    (columns in docs/frame-schema.md).

    Takes the arguments of ``scan``. With ``errors="collect"``, each capture that could
    not be read to its end is reported as a ``CaptureWarning``.

    Example: ``analyzer.read_ede("samples/incident.pcap").ede_code.value_counts()``
    """
    result = scan(captures, codes=codes, domains=domains, resolvers=resolvers, since=since,
                  until=until, ports=ports, jobs=jobs, strict=strict, errors=errors)
    _warn(result)
    return result.ede


def read_responses(captures: Source | Sequence[Source], *,
                   codes: Iterable[CodeLike] | CodeLike = (),
                   domains: Iterable[str] | str = (),
                   resolvers: Iterable[str] | str = (),
                   since: TimeLike | None = None,
                   until: TimeLike | None = None,
                   ports: Iterable[int] = (53,),
                   jobs: int = 1,
                   strict: bool = False,
                   errors: Errors = "raise") -> pd.DataFrame:
    """Return one row per DNS response (with its EDE codes, if any), as a pandas DataFrame.

    Takes the arguments of ``scan``; ``codes`` keeps the responses that carried any of them.
    """
    result = scan(captures, codes=codes, domains=domains, resolvers=resolvers, since=since,
                  until=until, ports=ports, jobs=jobs, strict=strict, errors=errors,
                  all_responses=True)
    _warn(result)
    assert result.responses is not None  # all_responses=True builds it
    return result.responses


def _expand(captures: Source | Sequence[Source]) -> tuple[list[Source], list[str]]:
    """Return (sources, errors): paths expanded as the command line expands them."""
    from analyzer.sources import expand

    listed: list[Source]
    if isinstance(captures, (str, Path)) or hasattr(captures, "read"):
        listed = [captures]  # type: ignore[list-item]
    else:
        listed = list(captures)  # type: ignore[arg-type]
    if sum(1 for s in listed if s == "-") > 1:
        raise ValueError("standard input (-) can be read only once")
    sources: list[Source] = []
    problems: list[str] = []
    for source in listed:
        if isinstance(source, (str, Path)):
            found, bad = expand([os.fspath(source)])
            sources.extend(found)
            problems.extend(bad)
        else:
            sources.append(source)
    return sources, problems


def _exists(path: str | Path) -> bool:
    text = os.fspath(path)
    return text == "-" or "://" in text or os.path.exists(text)


def _ports(ports: Iterable[int]) -> tuple[int, ...]:
    import operator

    listed = (ports,) if not hasattr(ports, "__iter__") else tuple(ports)
    checked = []
    for port in listed:
        try:
            number = None if isinstance(port, bool) else operator.index(port)
        except TypeError:
            number = None
        if number is None or not 1 <= number <= 65535:
            raise ValueError(f"ports: {port!r} is not a port number (1-65535)")
        checked.append(number)
    if not checked:
        raise ValueError("ports: give at least one port, e.g. ports=(53,)")
    return tuple(checked)


def _warn(result: ScanResult) -> None:
    for capture in result.failed:
        warnings.warn(capture.error or f"{capture.path}: cannot be read", CaptureWarning,
                      stacklevel=3)
