"""The ``ede-pcap`` command: options in, exit codes out.

Exit codes: 0 success (also when packets were malformed: they are counted and reported);
1 when a capture cannot be read (after reporting the readable ones) or another error
stops the run; 2 for usage errors. Data goes to stdout (or ``--output``), progress and
diagnostics to stderr, one line per problem, with no traceback unless ``--debug``.

pandas, pyarrow and rich are imported inside the commands, so ``--help``, ``--version``
and ``codes`` start fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from analyzer.errors import EdePcapError

if TYPE_CHECKING:
    from analyzer.filters import Filters
    from analyzer.result import ScanResult

PROG = "ede-pcap"


class OutputFormat(StrEnum):
    """Every output format; each command accepts the subset in its ``--format`` help."""

    TEXT = "text"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"
    HTML = "html"
    JSONL = "jsonl"
    PARQUET = "parquet"


REPORT_FORMATS = (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.CSV,
                  OutputFormat.MARKDOWN, OutputFormat.HTML)
EXTRACT_FORMATS = (OutputFormat.CSV, OutputFormat.JSONL, OutputFormat.PARQUET)
CODES_FORMATS = (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.MARKDOWN)

# --output suffix -> format, used when --format is not given
SUFFIX_FORMATS = {
    ".txt": OutputFormat.TEXT, ".json": OutputFormat.JSON, ".csv": OutputFormat.CSV,
    ".md": OutputFormat.MARKDOWN, ".markdown": OutputFormat.MARKDOWN,
    ".html": OutputFormat.HTML, ".htm": OutputFormat.HTML, ".jsonl": OutputFormat.JSONL,
    ".ndjson": OutputFormat.JSONL, ".parquet": OutputFormat.PARQUET,
}

class Command(typer.core.TyperCommand):
    """A command whose usage line names required arguments plainly: ``CAPTURE...``, not
    Typer's ``{CAPTURE}``, which reads like a set or a template placeholder."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = []
        for piece in super().collect_usage_pieces(ctx):
            if piece.startswith("{") and piece.endswith("}"):
                piece = piece[1:-1]
            pieces.append(piece)
        return pieces


app = typer.Typer(
    name=PROG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)


# --- shared options ------------------------------------------------------------------------

def _version_callback(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def version_line() -> str:
    """Return what ``--version`` prints: the version, and which kernels run (compiled or
    their pure-Python twins) and where the compiled ones were loaded from."""
    from analyzer import speedups

    if speedups.kernels is None:
        why = ("EDE_PCAP_PURE_PYTHON is set" if os.environ.get("EDE_PCAP_PURE_PYTHON")
               else "no compiled extension was built at install time")
        return f"{PROG} {version()} (pure Python kernels: {why})"
    where = getattr(speedups.kernels, "__file__", "")
    return f"{PROG} {version()} (compiled kernels: {where})"


def version() -> str:
    """Return the installed version (or the source tree's, when run from a checkout)."""
    from importlib import metadata

    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _format_option(allowed: tuple[OutputFormat, ...], default: str) -> Any:
    """Return the --format option of a command that writes the ``allowed`` formats (its
    type is ``_formats(allowed)``, so help, errors and completion list only those)."""
    names = "|".join(f.value for f in allowed)
    return typer.Option(
        "--format", "-f", metavar=f"[{names}]", case_sensitive=False, show_default=False,
        help=f"Output format [default: {default}, or from the --output suffix].")


def _formats(name: str, allowed: tuple[OutputFormat, ...]) -> type[StrEnum]:
    """Return a StrEnum of the ``allowed`` formats: the type of one command's --format."""
    return StrEnum(name, {f.name: f.value for f in allowed})  # type: ignore[return-value]


ReportFormat = _formats("ReportFormat", REPORT_FORMATS)
ExtractFormat = _formats("ExtractFormat", EXTRACT_FORMATS)
CodesFormat = _formats("CodesFormat", CODES_FORMATS)


def _checker(parser: str) -> Callable[[list[str] | None], list[str] | None]:
    """Return an option callback that checks each value with ``filters.<parser>``."""

    def check(values: list[str] | None) -> list[str] | None:
        from analyzer import filters

        for v in values or ():
            try:
                getattr(filters, parser)(v)
            except filters.FilterError as e:
                raise typer.BadParameter(_after_option(e)) from None
        return values

    return check


_check_codes = _checker("parse_code")
_check_domains = _checker("parse_domain")
_check_resolvers = _checker("parse_resolver")


def _check_time(value: str | None) -> str | None:
    from analyzer import filters

    if value is not None:
        try:
            filters.parse_time(value)
        except filters.FilterError as e:
            raise typer.BadParameter(_after_option(e)) from None
    return value


def _check_interval(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(
            r"\s*\d+\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hour|hours|"
            r"d|day|days|w|week)?\s*", value, re.IGNORECASE):
        raise typer.BadParameter(f"'{value}' is not an interval; use e.g. 10s, 5min, 1h.")
    if value is not None and int(re.match(r"\s*(\d+)", value).group(1)) == 0:  # type: ignore[union-attr]
        raise typer.BadParameter("the interval must be at least 1s.")
    return value


def _after_option(error: Exception) -> str:
    # FilterError messages start with the option and value; BadParameter names the option.
    text = str(error)
    return text.split(": ", 1)[1] if ": " in text else text


Captures = Annotated[list[str], typer.Argument(
    metavar="CAPTURE...", show_default=False,
    help="pcap/pcapng captures or dnstap logs (optionally compressed), directories "
         "(searched recursively), glob patterns, or - for stdin.")]
Output = Annotated[str, typer.Option(
    "--output", "-o", metavar="PATH", help="Write here instead of stdout (- is stdout).")]
CodeOpt = Annotated[list[str] | None, typer.Option(
    "--code", "-c", metavar="CODE", callback=_check_codes,
    help="Keep only this INFO-CODE (number or name, e.g. 6 or dnssec-bogus); repeatable.")]
DomainOpt = Annotated[list[str] | None, typer.Option(
    "--domain", "-d", metavar="NAME", callback=_check_domains,
    help="Keep only query names equal to or under NAME; repeatable.")]
ResolverOpt = Annotated[list[str] | None, typer.Option(
    "--resolver", "-r", metavar="IP|CIDR", callback=_check_resolvers,
    help="Keep only EDEs sent by this server address or network; repeatable.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="TIME", callback=_check_time,
    help="Keep EDEs at or after TIME (ISO-8601, UTC unless an offset is given, or epoch "
         "seconds).")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", metavar="TIME", callback=_check_time, help="Keep EDEs before TIME.")]
PortOpt = Annotated[list[int] | None, typer.Option(
    "--port", "-p", metavar="PORT", min=1, max=65535,
    help="DNS port to decode; repeatable [default: 53].")]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", "-j", min=1, metavar="N",
    help="Read up to N capture files in parallel processes.")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS",
    help="Decode on this running Dask cluster (e.g. tcp://host:8786), one task per capture; "
         "workers read the paths from a shared filesystem, or URLs (s3://...) with fsspec.")]
WidthOpt = Annotated[int | None, typer.Option(
    "--width", "-w", min=40, max=1000, metavar="COLUMNS",
    help="Width of text output [default: the terminal's width, 80 when not a terminal].")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar and no skipped-packets line on stderr.")]
DebugOpt = Annotated[bool, typer.Option(
    "--debug", help="Show the traceback of an error instead of one line.")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Stop at the first malformed packet (exit 1) instead of counting it.")]


# --- commands ------------------------------------------------------------------------------

@app.callback()
def main_callback(
    show_version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version_callback, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Find, count and explain Extended DNS Errors (RFC 8914: EDNS0 option 15) in packet
    captures: which codes, how many, on which domains and zones, from which resolvers,
    since when, and what to do.

    Example: ede-pcap report capture.pcap
    """


@app.command(cls=Command,
             short_help="Which EDE codes, how many, where, since when, and what to do.")
def report(
    captures: Captures,
    output_format: Annotated[ReportFormat | None, _format_option(REPORT_FORMATS, "text")] = None,
    output: Output = "-",
    code: CodeOpt = None,
    domain: DomainOpt = None,
    resolver: ResolverOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    port: PortOpt = None,
    interval: Annotated[str | None, typer.Option(
        "--interval", "-i", metavar="DURATION", callback=_check_interval,
        help="Time-series bucket width, e.g. 10s, 1min, 5min, 1h [default: chosen from the "
             "time span for 30-120 buckets].")] = None,
    top: Annotated[int, typer.Option(
        "--top", "-n", min=1, metavar="N",
        help="How many domains and zones per code, and resolvers, to list.")] = 10,
    upstream: Annotated[bool, typer.Option(
        "--upstream", help="Read the captures a second time for the resolvers' own queries "
                           "upstream (timeouts, RCODEs, upstream EDEs) and for forwarders "
                           "that dropped or rewrote EDEs.")] = False,
    jobs: JobsOpt = 1,
    scheduler: SchedulerOpt = None,
    columns: WidthOpt = None,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Report which EDE codes were seen, how often, on which domains and zones, from which
    resolvers, since when, and what to do about each.

    Example: ede-pcap report capture.pcap --format html --output report.html
    """
    fmt = _resolve_format(output_format, output, OutputFormat.TEXT, REPORT_FORMATS)
    if upstream and "-" in captures:
        raise typer.BadParameter("--upstream reads the captures twice, which standard input "
                                 "cannot be; save it to a file first.", param_hint="'--upstream'")
    with _errors(debug):
        filters = _filters(code, domain, resolver, since, until)
        result = _scan(captures, port, quiet=quiet, strict=strict, jobs=jobs,
                       scheduler=scheduler)
        from analyzer import reports

        legs = _legs(result, filters, port) if upstream else None
        try:
            built = reports.build_report(result, top=top, interval=interval, filters=filters,
                                         legs=legs)
        except reports.ReportError as e:
            _fail(str(e))
            raise typer.Exit(2) from None
        if _readable(result):
            from analyzer import render

            with _open_output(output, binary=False) as (out, terminal):
                width, color = _terminal(out, columns) if terminal else (columns or 80, False)
                render.render(built, fmt.value, out, width=width, color=color)
        _finish(result, built["accounting"], quiet)


@app.command(cls=Command, short_help="Write the row-level frame (one row per EDE option).")
def extract(
    captures: Captures,
    output: Output = "-",
    output_format: Annotated[ExtractFormat | None, _format_option(EXTRACT_FORMATS, "csv")] = None,
    all_responses: Annotated[bool, typer.Option(
        "--all-responses", help="One row per DNS response (with its EDE codes) instead of one "
                                "row per EDE option.")] = False,
    code: CodeOpt = None,
    domain: DomainOpt = None,
    resolver: ResolverOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    port: PortOpt = None,
    jobs: JobsOpt = 1,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write the row-level frame: one row per EDE option, with the facts its EXTRA-TEXT
    states in fact_* columns (columns in docs/frame-schema.md).

    Example: ede-pcap extract capture.pcap --output edes.parquet
    """
    fmt = _resolve_format(output_format, output, OutputFormat.CSV, EXTRACT_FORMATS)
    if fmt is OutputFormat.PARQUET and output == "-" and sys.stdout.isatty():
        raise typer.BadParameter("parquet is binary; give --output PATH or redirect stdout.",
                                 param_hint="'--format'")
    with _errors(debug):
        filters = _filters(code, domain, resolver, since, until)
        result = _scan(captures, port, quiet=quiet, strict=strict,
                       all_responses=all_responses, jobs=jobs, scheduler=scheduler)
        from analyzer import filters as filtering
        from analyzer import render

        frame = result.responses if all_responses else result.ede
        frame = filtering.apply(frame, filters)
        if not all_responses:
            from analyzer import textfacts

            frame = textfacts.add_fact_columns(frame)
        if _readable(result) and fmt is OutputFormat.PARQUET and _is_dataset(output):
            from analyzer import dataset

            dataset.write(frame, output, captures=[c.path for c in result.captures])
        elif _readable(result):
            binary = fmt is OutputFormat.PARQUET
            with _open_output(output, binary=binary) as (out, _):
                render.write_frame(frame, fmt.value, out)
        from analyzer import reports

        _finish(result, reports.accounting(result), quiet)


@app.command(cls=Command, short_help="List the EDE code catalogue with meanings and next steps.")
def codes(
    code: Annotated[list[str] | None, typer.Argument(
        metavar="[CODE]...", callback=_check_codes, show_default=False,
        help="Describe only these codes (number or name), with meaning and next step.")] = None,
    output_format: Annotated[CodesFormat | None, _format_option(CODES_FORMATS, "text")] = None,
    output: Output = "-",
    columns: WidthOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the Extended DNS Error codes: number, name, category, meaning and next step.

    Example: ede-pcap codes 7 9
    """
    fmt = _resolve_format(output_format, output, OutputFormat.TEXT, CODES_FORMATS)
    with _errors(debug):
        from analyzer import codes as catalogue
        from analyzer import filters

        wanted = [filters.parse_code(c) for c in code or ()]
        records = ([_asdict(catalogue.describe(c)) for c in wanted] if wanted
                   else catalogue.to_records())
        with _open_output(output, binary=False) as (out, terminal):
            if fmt is OutputFormat.JSON:
                import json

                json.dump(records, out, indent=2, ensure_ascii=True)
                out.write("\n")
            elif fmt is OutputFormat.MARKDOWN:
                out.write(catalogue.to_markdown() if not wanted else _codes_markdown(records))
            else:
                from analyzer.render import text

                width, color = _terminal(out, columns) if terminal else (columns or 80, False)
                text.write_codes(records, out, detail=bool(wanted), width=width, color=color)


# --- helpers -------------------------------------------------------------------------------

def main() -> None:
    """Run the ``ede-pcap`` command (the console-script entry point)."""
    try:
        _show_completion_for(sys.argv[1:])
        app(prog_name=PROG)
        code: object = 0
    except SystemExit as e:
        code = e.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    # Everything is written; skip the interpreter's teardown, which frees every row and
    # frame one object at a time (a quarter of a second on a million-packet capture).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe has nothing to flush
            stream.flush()
    os._exit(code or 0)


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _show_completion_for(args: list[str]) -> None:
    """``--show-completion zsh``: print that shell's script and exit.

    Typer's --show-completion is a flag when it can detect the shell, so the name after it
    was ignored and the detected (or bash) script printed."""
    if len(args) == 2 and args[0] == "--show-completion" and args[1] in COMPLETION_SHELLS:
        from typer._completion_shared import get_completion_script

        typer.echo(get_completion_script(prog_name=PROG, complete_var="_EDE_PCAP_COMPLETE",
                                         shell=args[1]))
        raise SystemExit(0)


def _resolve_format(given: StrEnum | None, output: str, default: OutputFormat,
                    allowed: tuple[OutputFormat, ...]) -> OutputFormat:
    """Return the format to write: --format, else the --output suffix, else ``default``.

    A known suffix that the command cannot write, or that names another format than
    --format, is a usage error rather than a file whose name lies about its contents.
    """
    chosen = OutputFormat(given.value) if given is not None else None
    implied = suffix_format(output) if output != "-" else None
    names = ", ".join(f.value for f in allowed)
    if implied is not None and implied not in allowed:
        raise typer.BadParameter(
            f"the suffix of {output} means {implied.value}, which this command does not "
            f"write (it writes {names}); use a suffix for one of those.",
            param_hint="'--output'")
    if chosen is not None and implied is not None and implied is not chosen:
        raise typer.BadParameter(
            f"the suffix of {output} means {implied.value} but --format is {chosen.value}; "
            "change the suffix or drop --format.", param_hint="'--output'")
    return chosen or implied or default


def suffix_format(path: str) -> OutputFormat | None:
    """Return the format an output file's suffix names (``.html``, ``.csv.``...), or None."""
    name = path.lower()
    for suffix, fmt in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def _filters(code: list[str] | None, domain: list[str] | None, resolver: list[str] | None,
             since: str | None, until: str | None) -> Filters:
    from analyzer import filters

    try:
        return filters.build(codes=code or [], domains=domain or [], resolvers=resolver or [],
                             since=since, until=until)
    except filters.FilterError as e:
        raise typer.BadParameter(str(e)) from None


def _scan(captures: list[str], port: list[int] | None, *, quiet: bool, strict: bool,
          all_responses: bool = False, jobs: int = 1, scheduler: str | None = None,
          ) -> ScanResult:
    if captures.count("-") > 1:
        raise typer.BadParameter("stdin (-) can be read only once.", param_hint="CAPTURE")
    from analyzer.sources import expand

    paths, errors = expand(captures)
    if scheduler is not None:
        if jobs > 1:
            raise typer.BadParameter("the cluster's workers do the work with --scheduler; drop "
                                     "--jobs.", param_hint="'--jobs'")
        from analyzer import distributed

        with _task_progress(quiet) as task_progress:
            result = distributed.scan(paths, scheduler, ports=tuple(port or (53,)),
                                      all_responses=all_responses, strict=strict,
                                      progress=task_progress)
    else:
        from analyzer import pipeline

        with _progress(paths, quiet) as progress:
            result = pipeline.scan(paths, ports=tuple(port or (53,)),
                                   all_responses=all_responses, strict=strict,
                                   progress=progress, jobs=jobs)
    if errors:
        from analyzer.result import CaptureInfo

        result.captures.extend(CaptureInfo(path=e.split(": ", 1)[0], error=e) for e in errors)
    return result


def _legs(result: ScanResult, filters: Filters, port: list[int] | None) -> Any:
    """Return (upstream exchanges per EDE row, forwarder verdicts) for ``report --upstream``:
    a second pass over the captures that were read."""
    from analyzer import filters as filtering
    from analyzer import legs, reports

    rows = reports.client_facing(filtering.apply(result.ede, filters))[0]
    paths = [c.path for c in result.captures if c.file_format]
    ports = tuple(port or (53,))
    return (legs.upstream_for_edes(paths, rows, ports=ports),
            legs.forwarded(paths, rows, ports=ports))


def _readable(result: ScanResult) -> bool:
    """Return True when at least one capture gave packets or was read to its end."""
    return any(not c.error or c.packets for c in result.captures)


def _finish(result: ScanResult, accounting: dict[str, int], quiet: bool) -> None:
    """Write the skipped-packets line and one line per unreadable capture; exit 1 if any."""
    from analyzer import reports

    skipped = reports.skipped(accounting)
    if skipped and not quiet:
        total = sum(skipped.values())
        parts = ", ".join(f"{k} {v:,}" for k, v in skipped.items())
        typer.echo(f"{PROG}: skipped {total:,} packet{'' if total == 1 else 's'}: {parts}",
                   err=True)
    failed = result.failed
    for capture in failed:
        _fail(capture.error or f"{capture.path}: cannot be read")
    if failed:
        raise typer.Exit(1)


def _fail(message: str) -> None:
    from analyzer.render import safe_text

    typer.echo(f"{PROG}: error: {safe_text(message)}", err=True)


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn errors into one line on stderr and an exit code; ``--debug`` re-raises."""
    try:
        yield
    except (typer.Exit, typer.BadParameter, typer.Abort):
        raise
    except BrokenPipeError:
        # the reader of stdout went away (| head); nothing left to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit-time flush
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted")
        raise typer.Exit(130) from None
    except EdePcapError as e:
        if debug:
            raise
        from analyzer.errors import Malformed

        if isinstance(e, Malformed):
            _fail(f"--strict: stopped at a malformed packet ({e}); run without --strict "
                  "to count such packets and go on, or with --debug for the traceback")
        else:
            _fail(str(e))
        raise typer.Exit(1) from None
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"{where}{e.strerror or e}; check the path and permissions")
        raise typer.Exit(1) from None
    except Exception as e:  # noqa: BLE001 - the CLI edge: no traceback unless --debug
        if debug:
            raise
        _fail(f"internal error ({type(e).__name__}: {e}); rerun with --debug and report it")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _open_output(path: str, *, binary: bool) -> Iterator[tuple[IO[Any], bool]]:
    """Yield (stream, is a terminal) for --output; ``-`` is stdout."""
    if path == "-":
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        yield stream, sys.stdout.isatty()
        stream.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise EdePcapError(f"{path}: is a directory; give a file name for --output")
    if not target.parent.is_dir():
        raise EdePcapError(f"{path}: the directory {target.parent} does not exist; create it "
                           "or give another --output path")
    partial = target.with_name(f".{target.name}.partial")
    # write next to the target and rename, so a failed run leaves no half-written file
    try:
        opened = (open(partial, "wb") if binary  # noqa: SIM115 - closed by the with below
                  else open(partial, "w", encoding="utf-8", newline=""))
    except OSError as e:  # name the file asked for, not the temporary one beside it
        raise EdePcapError(f"{path}: cannot write there ({e.strerror}); check the directory "
                           "and its permissions, or give another --output path") from None
    with opened as stream:
        try:
            yield stream, False
        except BaseException:
            stream.close()
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, target)


def _terminal(out: IO[Any], columns: int | None = None) -> tuple[int, bool]:
    """Return (width, colour) for text on a terminal: --width, else the terminal's width."""
    import shutil

    width = columns or max(60, shutil.get_terminal_size((80, 24)).columns)
    color = "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    return width, color


@contextlib.contextmanager
def _progress(paths: list[str], quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a scan progress callback drawing a bar on stderr, or None when stderr is not a
    terminal or with --quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    import rich.console
    import rich.progress

    total = None
    if "-" not in paths:
        with contextlib.suppress(OSError):
            total = sum(os.path.getsize(p) for p in paths)
    bar = rich.progress.Progress(
        rich.progress.TextColumn("reading"),
        rich.progress.BarColumn(),
        rich.progress.DownloadColumn(),
        rich.progress.TextColumn("{task.fields[packets]} packets, {task.fields[rate]}"),
        rich.progress.TransferSpeedColumn(),
        rich.progress.TimeRemainingColumn(),
        console=rich.console.Console(stderr=True), transient=True,
    )
    task = bar.add_task("reading", total=total, packets="0", rate="")
    start = last = time.monotonic()

    def update(bytes_done: int, packets_done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1:
            return
        last = now
        rate = packets_done / max(now - start, 1e-6)
        bar.update(task, completed=bytes_done, packets=f"{packets_done:,}",
                   rate=f"{rate / 1000:,.0f}k pkt/s" if rate >= 1000 else f"{rate:.0f} pkt/s")

    with bar:
        yield update


@contextlib.contextmanager
def _task_progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a callback drawing tasks done/total on stderr while a cluster works, or None
    when stderr is not a terminal or with --quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    import rich.console
    import rich.progress

    bar = rich.progress.Progress(
        rich.progress.TextColumn("decoding on the cluster"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TextColumn("tasks"),
        rich.progress.TimeElapsedColumn(),
        console=rich.console.Console(stderr=True), transient=True,
    )
    task = bar.add_task("tasks", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _is_dataset(output: str) -> bool:
    """Return True when --output names a directory for a Parquet dataset, not one file."""
    return output != "-" and (os.path.isdir(output) or output.endswith(("/", os.sep))
                              or not Path(output).suffix)


def _asdict(info: Any) -> dict[str, Any]:
    return {name: getattr(info, name) for name in info.__slots__}


def _codes_markdown(records: list[dict[str, Any]]) -> str:
    parts = []
    for r in records:
        parts += [f"## {r['code']} — {r['name']}", "",
                  f"Category: {r['category']}. Status: {r['status']}. Defined in "
                  f"{r['document']}.", "", f"**Meaning.** {r['meaning']}", "",
                  f"**Next step.** {r['next_step']}", ""]
    return "\n".join(parts)


# --- commands in their own modules (they register themselves on ``app``) ------------------

from analyzer import cli_diff, cli_watch  # noqa: E402, F401
