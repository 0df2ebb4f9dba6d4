"""``watch --state FILE``: a checkpoint to resume from after a restart.

The checkpoint holds, taken together under ``Watcher.lock`` so that they agree:

- the counters (every sample of every counter, and the resolvers that have labels), so
  that Prometheus sees them continue rather than reset;
- where the files stand: the directories' done files (by identity) and the file being read
  with how many of its records the counters hold, or the followed file's (``tail``);
- the detector: open incidents, recent ended ones, and the window's EDE rows (in a Parquet
  file beside it, ``FILE.rows-N.parquet``, named in the JSON);
- the length of the events file, so that events written after the checkpoint are taken back
  on restart (they are written again as their records are read again).

A record counted after the last checkpoint is counted again by the next run, from the same
counters: after SIGKILL the totals are still exact. Written atomically (temporary file,
fsync, rename); a file that is not such a checkpoint stops watch (``StateError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import prometheus_client
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer import watchevents
from analyzer.errors import EdePcapError
from analyzer.watch import Watcher

FORMAT = "ede-pcap watch state"
VERSION = 1
EVERY_S = 5.0  # checkpoint at least this often while a long file is read


# what an open incident needs for its end event (watchevents._event)
_INCIDENT_FIELDS = {"code", "name", "start", "end", "count", "peak", "peak_at", "baseline",
                    "threshold", "top_zones", "top_resolvers", "top_domains"}


class StateError(EdePcapError):
    """The state file cannot be used."""


def load(path: Path) -> dict[str, Any] | None:
    """Return the checkpoint at ``path`` (the detector's rows under ``"rows"``), None if
    there is none yet; raise ``StateError`` for anything that is not a readable one."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"--state {path}: cannot read it ({e.strerror})") from None
    try:
        state = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        state = None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StateError(f"--state {path}: not an ede-pcap watch state file; give another "
                         "path (it is created on the first run)")
    if state.get("version") != VERSION:
        raise StateError(f"--state {path}: written by another version of ede-pcap "
                         f"(state version {state.get('version')!r}, this one reads {VERSION})")
    rows = None
    if state.get("rows"):
        rows_path = path.with_name(str(state["rows"]))
        try:
            rows = _read_rows(rows_path)
        except (OSError, ValueError, KeyError) as e:
            raise StateError(f"--state {path}: its EDE rows {rows_path} cannot be read "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             ) from None
    state["rows"] = rows
    return state


class Checkpoint:
    """Writes the state of one ``watch`` run to ``path``: ``write()`` (raises), ``save()``
    (warns), or ``due()`` for at most one save every ``every_s`` seconds."""

    def __init__(self, path: Path, watcher: Watcher, files: Any, events: IO[str] | None,
                 every_s: float = EVERY_S, warn: Any = None, sources: list[str] | None = None):
        self.path = path
        self.sources = sources or []  # what the watch reads: a checkpoint is about them
        self.watcher = watcher
        self.files = files  # follow.Follower, tail.FileFollower or None: state()/restore()
        self.events = events
        self.every_s = every_s
        self.warn = warn  # Callable[[str], None]: where a failed save is reported
        self.seq = 0
        self.last = time.monotonic()
        self.saved_updates = -1  # ``watcher.updates`` at the last save

    def restore(self, state: dict[str, Any]) -> None:
        """Put ``state`` (from ``load``) back into the watcher, its detector and files;
        raise ``StateError`` if its parts are not what a checkpoint holds."""
        if state.get("sources") != self.sources:
            theirs = ", ".join(map(str, state.get("sources") or [])) or "nothing known"
            raise StateError(f"--state {self.path}: written by a watch of {theirs}, not of "
                             f"{', '.join(self.sources)}; give each watch a state file of "
                             "its own")
        try:
            restore_metrics(self.watcher.metrics, state["metrics"])
            restore_incidents(self.watcher.incidents, state["incidents"], state["rows"])
            if self.files is not None and state.get("files") is not None:
                self.files.restore(state["files"])
            self.seq = int(state["seq"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise StateError(f"--state {self.path}: damaged ({type(e).__name__}: {e}); "
                             "move it away to start counting afresh") from None

    def save(self) -> None:
        """``write``; a checkpoint that cannot be written (disk full) is a warning line and
        a retry at the next one (counting goes on), if ``warn`` is set."""
        try:
            self.write()
        except (OSError, pa.ArrowException) as e:
            if self.warn is None:
                raise
            self.warn(f"--state {self.path}: checkpoint not written "
                      f"({getattr(e, 'strerror', None) or e}); "
                      "will try again")
            self.last = time.monotonic()

    def due(self) -> None:
        """Save if ``every_s`` has passed since the last save and something was counted."""
        if time.monotonic() - self.last >= self.every_s and \
                self.watcher.updates != self.saved_updates:
            self.save()

    def write(self) -> None:
        with self.watcher.lock:
            self.seq += 1
            incidents = self.watcher.incidents
            rows_name = None
            if incidents.held_rows():
                rows_name = f"{self.path.name}.rows-{self.seq}.parquet"
                table = _rows_table(incidents.pieces)
                _write(self.path.with_name(rows_name), lambda f: pq.write_table(table, f))
            state = {
                "format": FORMAT, "version": VERSION, "seq": self.seq, "sources": self.sources,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "metrics": metrics_state(self.watcher.metrics),
                "incidents": incidents_state(incidents), "rows": rows_name,
                "files": None if self.files is None else self.files.state(),
                "events": self._events_state(),
            }
            text = json.dumps(state, separators=(",", ":"), default=_plain).encode()
            _write(self.path, lambda f: f.write(text))
            self.last = time.monotonic()
            self.saved_updates = self.watcher.updates
        for old in self.path.parent.glob(f"{self.path.name}.rows-*.parquet"):
            if old.name != rows_name:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _events_state(self) -> dict[str, int] | None:
        if self.events is None or not hasattr(self.events, "fileno") or \
                self.events.fileno() < 3:
            return None
        self.events.flush()
        os.fsync(self.events.fileno())
        st = os.fstat(self.events.fileno())
        return {"inode": st.st_ino, "size": st.st_size}


def take_back_events(path: str | None, state: dict[str, Any] | None) -> None:
    """Cut the events file back to its length at the checkpoint: events after it were
    written by a run that stopped before its next checkpoint, and will be written again."""
    if path is None or path == "-" or state is None or state.get("events") is None:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    mark = state["events"]
    if st.st_ino == mark["inode"] and st.st_size > mark["size"]:
        os.truncate(path, mark["size"])


def _rows_table(pieces: list[Any]) -> pa.Table:
    """The detector's window (``watchevents`` pieces) as one table: ts, code, the columns."""
    joined = watchevents.join_pieces(pieces)  # the detector's own join: its pieces, one array each
    columns = {"ts": pa.array(joined.ts, pa.int64()), "code": pa.array(joined.code, pa.int64())}
    for name, values in joined.columns.items():
        # one JSON text per value: a column may mix types (1 and True), which Arrow refuses
        columns[name] = pa.array([json.dumps(v, default=_json_value) for v in values],
                                 pa.string())
    return pa.table(columns)


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return None  # pandas' NA and NaT: missing


def _read_rows(path: Path) -> list[Any]:
    """The detector's pieces from ``_rows_table``'s file (one piece)."""
    table = pq.read_table(path)
    names = set(table.column_names) - {"ts", "code"}
    if not names <= set(watchevents.WORK_COLUMNS):
        raise ValueError(f"unknown columns {sorted(names - set(watchevents.WORK_COLUMNS))}")
    columns = {}
    for name in names:
        values = [json.loads(v) for v in table.column(name).to_pylist()]
        columns[name] = np.empty(len(values), dtype=object)
        columns[name][:] = values
    return [watchevents.Piece(table.column("ts").to_numpy().astype(np.int64),
                               table.column("code").to_numpy().astype(np.int64), columns)]


def _plain(value: Any) -> Any:
    """numpy numbers (in an incident's fields) as Python ones."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} in the state")


def _write(path: Path, fill: Any) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        fill(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def metrics_state(metrics: Any) -> dict[str, Any]:
    """Every series of the counters of a ``watchmetrics.Metrics``, by attribute name:
    [labels, value, created]."""
    counters = {}
    for name, counter in vars(metrics).items():
        if isinstance(counter, prometheus_client.Counter):
            series: dict[tuple[tuple[str, str], ...], list[Any]] = {}
            for metric in counter.collect():
                for s in metric.samples:
                    key = tuple(sorted(s.labels.items()))
                    entry = series.setdefault(key, [s.labels, 0.0, None])
                    if s.name.endswith("_total"):
                        entry[1] = s.value
                    elif s.name.endswith("_created"):
                        entry[2] = s.value
            counters[name] = list(series.values())
    return {"counters": counters, "resolvers": sorted(metrics._resolvers),
            "newest_ns": metrics.newest_ns}


def restore_metrics(metrics: Any, state: dict[str, Any]) -> None:
    for name, series in state["counters"].items():
        counter = getattr(metrics, name)
        if not isinstance(counter, prometheus_client.Counter):
            raise TypeError(f"{name} is not a counter")
        for labels, value, created in series:
            child = counter.labels(**labels) if labels else counter
            child.inc(float(value))
            if created is not None:
                # the series goes on: OpenMetrics scrapers must not see a new one (a reset)
                child._created = float(created)
    metrics._resolvers = {str(r) for r in state["resolvers"]}
    metrics.newest_ns = None if state["newest_ns"] is None else int(state["newest_ns"])


def incidents_state(incidents: Any) -> dict[str, Any]:
    return {"first_ns": incidents.first_ns, "newest_ns": incidents.newest_ns,
            "open": [[code, inc] for code, inc in incidents.open.items()],
            "ended": incidents.ended, "fresh": incidents.fresh, "bucket": incidents.bucket}


def restore_incidents(incidents: Any, state: dict[str, Any], rows: Any) -> None:
    incidents.first_ns = None if state["first_ns"] is None else int(state["first_ns"])
    incidents.newest_ns = None if state["newest_ns"] is None else int(state["newest_ns"])
    incidents.open = {int(code): dict(inc) for code, inc in state["open"]}
    for inc in incidents.open.values():
        missing = _INCIDENT_FIELDS - inc.keys()
        if missing:
            raise KeyError(f"an open incident lacks {sorted(missing)[0]}")
    incidents.ended = [(int(c), int(s), int(e)) for c, s, e in state["ended"]]
    incidents.fresh = bool(state["fresh"])
    incidents.bucket = int(state["bucket"])
    incidents.pieces = rows or []
