"""The ``ede-pcap watch`` command: live traffic in, Prometheus metrics and incident events out.

Registered on ``analyzer.cli.app``; the reading, counting and detecting are in ``watch.py``
and the modules it names.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from analyzer.cli import (
    PROG,
    REPORT_FORMATS,
    Command,
    DebugOpt,
    OutputFormat,
    PortOpt,
    ReportFormat,
    _check_interval,
    _errors,
    _resolve_format,
    app,
)
from analyzer.errors import Stopped


class _Stop:
    """SIGTERM/SIGINT: ``event`` is set (files are read to a record boundary, then
    ``Stopped``); where nothing is read between checks (standard input blocks), it raises."""

    def __init__(self, event: Any, raise_now: bool):
        self.event = event
        self.raise_now = raise_now

    def __call__(self, signum: int, frame: Any) -> None:
        self.event.set()
        if self.raise_now:
            raise Stopped(signal.Signals(signum).name)


def _listen_address(value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT; e.g. 127.0.0.1:9553 or :9553")
    return value


@app.command(cls=Command, short_help="Follow live traffic: Prometheus metrics, incident events.")
def watch(
    sources: Annotated[list[str], typer.Argument(
        metavar="SOURCE...", show_default=False,
        help="Directories of rotating captures (each file read once, completely, in order; "
             "the newest one as it is written); a capture FILE that grows (followed like "
             "tail -F); unix:PATH for a dnstap socket that resolvers connect to (Frame "
             "Streams); or - for a pcap, pcapng or dnstap stream on standard "
             "input.")],
    metrics: Annotated[str | None, typer.Option(
        "--metrics", metavar="HOST:PORT", callback=_listen_address,
        help="Serve Prometheus/OpenMetrics counters at http://HOST:PORT/metrics "
             "(:PORT for every interface).")] = None,
    events: Annotated[str | None, typer.Option(
        "--events", metavar="PATH",
        help="Append incident events (start, end) as JSON lines to PATH; - for stdout.")] = None,
    max_resolvers: Annotated[int, typer.Option(
        "--max-resolvers", metavar="N", min=1,
        help="Resolver labels kept; the resolvers seen after the first N are 'other'.")] = 50,
    interval: Annotated[str, typer.Option(
        "--interval", metavar="WIDTH", callback=_check_interval,
        help="Bucket width of the incident detector (as in report --interval).")] = "1min",
    window: Annotated[str, typer.Option(
        "--window", metavar="SPAN", callback=_check_interval,
        help="How much recent traffic (packet time) the detector's baseline spans.")] = "1h",
    settle: Annotated[float | None, typer.Option(
        "--settle", metavar="SECONDS", min=0.0, show_default=False,
        help="A directory's newest file is done (counted in capture_files_read_total, let "
             "go; read on if it grows again) once it has not grown for this long [default: "
             "when a newer file appears and it has not grown for 1 s]. Its records are "
             "counted as they are written either way.")] = None,
    report: Annotated[str | None, typer.Option(
        "--report", metavar="PATH",
        help="Write report's full report of the last --report-window to PATH (replaced "
             "atomically) every --report-every, on SIGUSR1, and at the end.")] = None,
    report_format: Annotated[ReportFormat | None, typer.Option(
        "--format", "-f", metavar="[text|json|csv|markdown|html]", case_sensitive=False,
        show_default=False,
        help="Format of --report [default: from its suffix (.html, .json, .md, .csv, "
             ".txt), else text].")] = None,
    report_every: Annotated[str, typer.Option(
        "--report-every", metavar="SPAN", callback=_check_interval,
        help="How often to write --report (wall clock).")] = "1min",
    report_window: Annotated[str, typer.Option(
        "--report-window", metavar="SPAN", callback=_check_interval,
        help="How much recent traffic (packet time) --report and --view cover.")] = "15min",
    view: Annotated[bool, typer.Option(
        "--view", help="Show the window live on the terminal: codes with sparklines, top "
                       "zones and resolvers, open incidents, packets read, lag.")] = False,
    state: Annotated[Path | None, typer.Option(
        "--state", metavar="FILE",
        help="Keep a checkpoint in FILE and resume from it: counters continue, files read "
             "are not read again, a file read in part goes on where it stopped.")] = None,
    state_every: Annotated[float, typer.Option(
        "--state-every", metavar="SECONDS", min=0.1,
        help="Write the --state checkpoint at least this often while reading (also after "
             "each file and on SIGTERM/SIGINT).")] = 5.0,
    port: PortOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Follow live traffic and export what its EDEs say, until SIGTERM or SIGINT (exit 0).

    Counters go to a Prometheus endpoint (--metrics), incidents found by the same
    detector as report's to JSON lines (--events), the full report of the recent traffic
    to a file (--report) or the terminal (--view). Reading standard input stops at its end.

    Example: ede-pcap watch /var/spool/dns --metrics :9553 --events incidents.jsonl

    A page refreshed every minute: ede-pcap watch /var/spool/dns --report /srv/www/ede.html

    From a pipe: tcpdump -U -w - port 53 | ede-pcap watch - --events -

    From resolvers' dnstap: ede-pcap watch unix:/run/ede-pcap/dnstap.sock --metrics :9553

    One growing file, resumable: ede-pcap watch /var/spool/dns.pcap --state /var/lib/ede.state
    """
    from analyzer import (
        follow,
        fstrmsocket,
        reports,
        tail,
        watchevents,
        watchmetrics,
        watchsocket,
        watchstate,
    )
    from analyzer.watch import Watcher

    fmt = _report_format(report, report_format)
    if report is not None and (Path(report).is_dir() or not Path(report).parent.is_dir()):
        raise typer.BadParameter(f"{report} is a directory, or its directory does not exist; "
                                 "give a file in an existing directory", param_hint="'--report'")
    if view and events == "-":
        raise typer.BadParameter("--view draws on the terminal, which --events - would write "
                                 "into; give --events a file", param_hint="'--view'")
    if view and not sys.stdout.isatty():
        raise typer.BadParameter("--view needs a terminal on standard output; write the "
                                 "report to a file with --report PATH instead",
                                 param_hint="'--view'")
    with _errors(debug):
        if "-" in sources and len(sources) > 1:
            raise typer.BadParameter("- (standard input) cannot be combined with other "
                                     "sources; run one watch per source", param_hint="SOURCE")
        sockets = [s.removeprefix("unix:") for s in sources if s.startswith("unix:")]
        if "" in sockets:
            raise typer.BadParameter("unix: needs the socket's path, e.g. "
                                     "unix:/run/ede-pcap/dnstap.sock", param_hint="SOURCE")
        paths = [Path(s) for s in sources if s != "-" and not s.startswith("unix:")]
        dirs = [p for p in paths if p.is_dir()]
        files = [p for p in paths if not p.is_dir()]
        for f in files:
            if not f.is_file():
                problem = "does not exist" if not f.exists() else "is not a regular file"
                raise typer.BadParameter(
                    f"{f} {problem}; watch reads directories of rotating captures, a capture "
                    "file, unix:PATH or - (a pipe)", param_hint="SOURCE")
        if files and (dirs or len(files) > 1):
            raise typer.BadParameter("a file is followed on its own (or with unix: "
                                     "sockets); run one watch per file", param_hint="SOURCE")
        width = reports.interval_seconds(interval)
        span = reports.interval_seconds(window)
        if span < 3 * width:
            raise typer.BadParameter(f"--window {window} holds fewer than 3 buckets of "
                                     f"--interval {interval}; make it longer")
        keep = reports.interval_seconds(report_window)
        if keep < width:
            raise typer.BadParameter(f"--report-window {report_window} is shorter than one "
                                     f"--interval {interval}; make it longer")
        meter = watchmetrics.Metrics(max_resolvers)
        saved = None
        if state is not None:
            try:
                saved = watchstate.load(state)
            except watchstate.StateError as e:
                typer.echo(f"{PROG}: error: {e}", err=True)
                raise typer.Exit(2) from None
            watchstate.take_back_events(events, saved)
        with _event_output(events) as out:
            def emit(event: dict[str, Any]) -> None:
                if out is not None:
                    out.write(watchevents.to_json_line(event))
                    out.flush()

            def warn(message: str) -> None:
                typer.echo(f"{PROG}: warning: {message}", err=True)

            recent = None
            if report is not None or view:
                from analyzer.watchwindow import Window

                recent = Window(width, keep)
            watcher = Watcher(meter, watchevents.Incidents(width, span), emit,
                              ports=port or (53,), warn=warn, window=recent)
            files_state: Any = None
            if files:
                files_state = tail.FileFollower(files[0])
            elif dirs:
                files_state = follow.Follower(dirs, settle_s=settle)
            checkpoint = None
            if state is not None:
                checkpoint = watchstate.Checkpoint(
                    state, watcher, files_state, out, every_s=state_every, warn=warn,
                    sources=sorted(s if s == "-" or s.startswith("unix:")
                                   else str(Path(s).resolve()) for s in sources))
                try:
                    if saved is not None:
                        checkpoint.restore(saved)
                    checkpoint.write()  # a path that cannot be written is found out now
                except watchstate.StateError as e:
                    typer.echo(f"{PROG}: error: {e}", err=True)
                    raise typer.Exit(2) from None
                except OSError as e:
                    typer.echo(f"{PROG}: error: --state {state}: cannot write it "
                               f"({e.strerror or e})", err=True)
                    raise typer.Exit(2) from None
                watcher.after_chunk = checkpoint.due
            listening = []
            try:
                for path in sockets:
                    listening.append(watchsocket.SocketSource(fstrmsocket.Listener(path), watcher))
            except fstrmsocket.SocketInUse as e:
                for source in listening:
                    source.stop()
                typer.echo(f"{PROG}: error: {e}", err=True)
                raise typer.Exit(2) from None
            stdin = not paths and not listening
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, _Stop(watcher.stop, raise_now=stdin))
            live = screen = None
            if recent is not None:
                from analyzer.watchreport import LiveReports

                show = None
                if view:
                    screen = _screen()
                    show = functools.partial(screen.update, refresh=True)
                live = LiveReports(watcher, path=Path(report) if report else None,
                                   fmt=fmt.value, every_s=reports.interval_seconds(report_every),
                                   window_s=keep, warn=warn, show=show)
                # on demand (with --view alone it does nothing, rather than end the process)
                signal.signal(signal.SIGUSR1, lambda signum, frame: live.request())
                live.start()
            try:
                if metrics is not None:
                    host, _, number = metrics.rpartition(":")
                    prometheus_client = __import__("prometheus_client")
                    prometheus_client.start_http_server(int(number), addr=host or "0.0.0.0",
                                                        registry=meter.registry)
                for source in listening:
                    source.start()
                if stdin:
                    watcher.read("-", eager=True)
                    watcher.close("stream-ended")
                    if checkpoint is not None:
                        checkpoint.save()
                    return
                if files:
                    files_state.run(watcher, None if checkpoint is None else checkpoint.save)
                while True:
                    for path in (files_state.ready() if dirs else []):
                        files_state.read(watcher, path)
                        if checkpoint is not None:
                            checkpoint.save()
                    watcher.check(force=True)
                    if checkpoint is not None:
                        checkpoint.due()
                    if watcher.stop.wait(tail.POLL_S):
                        raise Stopped("stop")
            except Stopped:
                # what was read is counted; incidents still open end here, or stay open in
                # the checkpoint for the next run to go on with
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_IGN)
                for source in listening:
                    source.stop()
                if checkpoint is not None:
                    with watcher.lock:  # nothing counted after the last checkpoint
                        watcher.closed = True
                    checkpoint.save()
                else:
                    watcher.close("shutdown")
            finally:
                for source in listening:
                    source.stop()
                if live is not None:
                    live.stop()
                if screen is not None:
                    screen.stop()
                if live is not None and watcher.closed:
                    live.write()  # all that was read, the incidents ended


def _report_format(report: str | None, given: Any) -> OutputFormat:
    """Return the --report file's format: --format, else its suffix, else text."""
    if report is None:
        if given is not None:
            raise typer.BadParameter("--format is the format of --report PATH; give "
                                     "--report", param_hint="'--format'")
        return OutputFormat.TEXT
    try:
        return _resolve_format(given, report, OutputFormat.TEXT, REPORT_FORMATS)
    except typer.BadParameter as e:
        e.param_hint = "'--report'"  # the file's suffix is --report's here, not --output's
        raise


def _screen() -> Any:
    """Return the started rich Live display of --view."""
    import rich.console
    import rich.live

    # the alternate screen: the view is redrawn whole, and the shell's screen comes back
    screen = rich.live.Live(console=rich.console.Console(highlight=False, emoji=False),
                            auto_refresh=False, screen=True, redirect_stdout=False)
    screen.start()
    return screen


@contextlib.contextmanager
def _event_output(path: str | None) -> Any:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        out: IO[str]
        with open(path, "a", encoding="utf-8") as out:
            yield out
