"""The ``ede-pcap diff`` command: two captures (or two windows of one) in, changes out.

Registered on ``analyzer.cli.app``; the options it shares with ``report`` come from there.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from analyzer.cli import (
    REPORT_FORMATS,
    CodeOpt,
    Command,
    DebugOpt,
    DomainOpt,
    JobsOpt,
    OutputFormat,
    PortOpt,
    QuietOpt,
    ReportFormat,
    ResolverOpt,
    StrictOpt,
    WidthOpt,
    _check_time,
    _errors,
    _fail,
    _filters,
    _finish,
    _format_option,
    _open_output,
    _readable,
    _resolve_format,
    _scan,
    _terminal,
    app,
)


@app.command(cls=Command, short_help="What changed between two captures: codes, zones, resolvers.")
def diff(
    captures: Annotated[list[str], typer.Argument(
        metavar="BEFORE AFTER", show_default=False,
        help="Two captures (files, directories or glob patterns) to compare; with "
             "--split-at, the captures to split in two.")],
    split_at: Annotated[str | None, typer.Option(
        "--split-at", metavar="TIME", callback=_check_time,
        help="Compare the EDEs before TIME with those from TIME on, in the same captures "
             "(ISO-8601, UTC unless an offset is given, or epoch seconds).")] = None,
    factor: Annotated[float, typer.Option(
        "--factor", metavar="X", min=1.01,
        help="A rate per DNS response this many times higher or lower is a change.")] = 2.0,
    min_change: Annotated[int, typer.Option(
        "--min-change", metavar="N", min=1,
        help="... when the EDE counts are also at least N apart.")] = 5,
    output_format: Annotated[ReportFormat | None, _format_option(REPORT_FORMATS, "text")] = None,
    output: Annotated[str, typer.Option(
        "--output", "-o", metavar="PATH",
        help="Write here instead of stdout (- is stdout).")] = "-",
    code: CodeOpt = None,
    domain: DomainOpt = None,
    resolver: ResolverOpt = None,
    port: PortOpt = None,
    jobs: JobsOpt = 1,
    columns: WidthOpt = None,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compare two captures, or two time windows of one: which EDE codes, zones and
    resolvers appeared, disappeared or changed by a large factor, as rates per DNS
    response (so captures of different sizes compare). Did the fix work?

    Example: ede-pcap diff before.pcap after.pcap
    """
    fmt = _resolve_format(output_format, output, OutputFormat.TEXT, REPORT_FORMATS)
    if split_at is None and len(captures) != 2:
        raise typer.BadParameter(
            f"give two captures, BEFORE and AFTER (got {len(captures)}), or one capture with "
            "--split-at TIME.", param_hint="BEFORE AFTER")
    with _errors(debug):
        import dataclasses

        from analyzer import diffs, filters
        from analyzer.result import ScanResult

        base = _filters(code, domain, resolver, None, None)
        results: list[ScanResult] = []
        if split_at is not None:
            moment = filters.parse_time(split_at, "--split-at")
            result = _scan(captures, port, quiet=quiet, strict=strict, jobs=jobs)
            results.append(result)
            _check_split(moment, result)
            label = ", ".join(captures)
            at = filters.Filters(until=moment).to_dict()["until"]
            sides = [diffs.side(result, label=f"{label} before {at}",
                                filters=dataclasses.replace(base, until=moment)),
                     diffs.side(result, label=f"{label} from {at}",
                                filters=dataclasses.replace(base, since=moment))]
        else:
            sides = []
            for argument in captures:
                result = _scan([argument], port, quiet=quiet, strict=strict, jobs=jobs)
                results.append(result)
                sides.append(diffs.side(result, label=argument, filters=base))
            at = None
        built = diffs.diff(sides[0], sides[1], factor=factor, min_change=min_change,
                           split_at=at, filters=base)
        if all(_readable(r) for r in results):
            from analyzer import render

            with _open_output(output, binary=False) as (out, terminal):
                width, color = _terminal(out, columns) if terminal else (columns or 80, False)
                render.render_diff(built, fmt.value, out, width=width, color=color)
        elif not any(r.failed for r in results):
            _fail("nothing to compare: a side has no readable capture")
        failed = [c for r in results for c in r.failed]
        if failed:
            merged = results[0]
            for r in results[1:]:
                merged.captures.extend(r.captures)
            _finish(merged, {}, quiet)


def _check_split(moment: Any, result: Any) -> None:
    """Exit 2 when --split-at leaves one side empty: a verdict from an empty side ("gone:
    7, 6, 3...") would only describe the split, not the captures."""
    from analyzer import filters, reports

    first, last = result.first_ts_ns, result.last_ts_ns
    if first is None or last is None:
        return  # no packets at all: the usual "nothing to compare" path says so
    at = filters.to_ns(moment)
    if first < at <= last:
        return
    side = "before" if at <= first else "after"
    _fail(f"--split-at {reports.iso(at)} is {side} the capture, which runs from "
          f"{reports.iso(first)} to {reports.iso(last)}; choose a time inside it")
    raise typer.Exit(2)
