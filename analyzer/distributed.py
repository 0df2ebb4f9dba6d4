"""Captures -> tasks on a Dask cluster -> partial scans -> one ScanResult.

    tasks = build_tasks(sources, options, slots)   # one Task per capture, or per byte range
    client.submit(run_task, task, retries=2)       # on a worker: open, pipeline.scan_partial
    pipeline.combine(joined partials, in order)    # the same merge --jobs uses

The cluster is one that already runs (``dask scheduler`` and ``dask worker`` processes);
this module only connects to it. Workers open each capture by path (so the captures must
be on a filesystem every worker mounts at the same place) or by URL through fsspec
(``s3://``, ``gs://``, ... when that scheme's fsspec package is installed on the workers).

Dask is imported only by the functions that need it, so importing this module, or
running ``ede-pcap report`` without ``--scheduler``, costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from analyzer import matching, pipeline, split
from analyzer.errors import CaptureError, EdePcapError
from analyzer.result import CaptureInfo

if TYPE_CHECKING:
    import dask.dataframe
    import distributed

    from analyzer.result import ScanResult

# Task retries after an exception on a worker; a worker that dies mid-task does not use
# these up: the scheduler reschedules its tasks by itself (distributed's allowed-failures).
RETRIES = 2
CONNECT_TIMEOUT = 30  # seconds to reach the scheduler and to see a first worker

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ClusterError(EdePcapError):
    """The Dask cluster cannot be reached or cannot run the scan."""


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work for a worker: a capture, or a byte range of one, and scan options."""

    source: str                      # the capture as the user named it (the capture column)
    location: str                    # what the worker opens: an absolute path or a URL
    options: dict[str, Any] = field(default_factory=dict)  # pipeline.Scanner keywords
    size: int | None = None          # bytes to read, when known: larger tasks start first
    part: split.Part | None = None   # a byte range of a large plain pcap (split.plan)


def is_url(source: str) -> bool:
    """Return True when ``source`` names a capture by URL (``s3://``, ``file://``...)."""
    return bool(_URL.match(source))


def build_tasks(sources: Sequence[str | Path], options: dict[str, Any],
                slots: int = 1) -> list[Task]:
    """Return one task per capture; relative paths become absolute for the workers.

    Workers run in directories of their own, so a path is resolved here, against this
    process's working directory, while the capture keeps the name it was given. With more
    ``slots`` (worker threads) than captures, a large plain pcap that this process can read
    becomes one task per byte range, as ``--jobs`` does (``split.plan``).
    """
    tasks: list[Task] = []
    for source in sources:
        name = str(source)
        if name == "-":
            raise ClusterError("stdin (-) cannot be sent to a cluster; save it to a file on "
                               "the shared filesystem and name that file")
        if is_url(name):
            tasks.append(Task(name, name, options))
            continue
        location = os.path.abspath(name)
        try:
            size: int | None = os.path.getsize(location)
        except OSError:
            size = None  # the worker reports it: the path may exist only there
        parts = None
        if slots > len(sources) and size is not None:
            parts = split.plan(location, max(2, slots // len(sources)))
        if parts:
            tasks.extend(Task(name, location, options, p.stop - p.start, p) for p in parts)
        else:
            tasks.append(Task(name, location, options, size))
    return tasks


class DaskMissing(EdePcapError, ImportError):
    """Dask is not installed."""


def require_dask(what: str) -> None:
    """Raise ``DaskMissing`` naming ``what`` and the install command when Dask (an
    optional extra, ``ede-pcap[dask]``) cannot be imported."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise DaskMissing(f"{what} needs Dask, which is not installed; install it with "
                          "pip install 'ede-pcap[dask]' (or use --jobs N on one "
                          "machine)") from None


def expand_urls(sources: Sequence[str]) -> list[str]:
    """Return ``sources`` with URL wildcards (``s3://bucket/2025-01-*/*.pcap``) expanded.

    Expansion lists the bucket from this process, so it needs the fsspec package for the
    scheme here too (workers need it in any case). Paths and plain URLs pass unchanged.
    """
    expanded: list[str] = []
    for source in sources:
        if not (is_url(source) and glob.has_magic(source)):
            expanded.append(source)
            continue
        import fsspec

        fs, _, paths = fsspec.core.get_fs_token_paths(source)
        if not paths:
            raise ClusterError(f"{source}: no files match this pattern")
        expanded.extend(fs.unstrip_protocol(p) for p in sorted(paths))
    return expanded


# --- on the worker -------------------------------------------------------------------------

class _Named:
    """A binary stream that reads as the capture the user named (for rows and messages)."""

    def __init__(self, stream: BinaryIO, name: str):
        self._stream = stream
        self.name = name

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        self._stream.close()


@contextlib.contextmanager
def _opened(task: Task) -> Iterator[BinaryIO]:
    """Open the task's capture: a local path with ``open``, a URL with ``fsspec.open``."""
    if is_url(task.location):
        import fsspec

        with fsspec.open(task.location, "rb") as stream:
            yield _Named(stream, task.source)  # type: ignore[misc]
    else:
        raw = io.FileIO(task.location, "rb")
        # Named as the user named the capture, and still a seekable file (byte ranges).
        raw.name = task.source
        with io.BufferedReader(raw) as stream:
            yield stream


def run_task(task: Task) -> pipeline.Partial | EdePcapError:
    """Scan the task's capture and return its partial result (runs on a worker).

    A capture that cannot be opened comes back as a partial whose one capture carries the
    error, like any unreadable capture. An ``EdePcapError`` raised by the scan (``strict``
    stops at the first malformed packet) is returned rather than raised: Dask would retry
    it, and it would fail the same way each time.
    """
    try:
        with _opened(task) as stream:
            try:
                return pipeline.scan_partial(stream, task.options, task.part)
            except EdePcapError as e:
                return e
    except (OSError, ImportError, ValueError) as e:
        # ImportError: fsspec or the scheme's package (s3fs, gcsfs) is not installed here;
        # ValueError: fsspec does not know the scheme at all.
        scanner = pipeline.Scanner(**task.options)
        scanner.captures.append(CaptureInfo(path=task.source, error=_open_error(task, e)))
        failed = scanner.partial()
        failed.part = task.part
        return failed


def _open_error(task: Task, error: Exception) -> str:
    where = _worker_address()
    shared = ("captures must be on a filesystem that every worker mounts at the same path, "
              "or given as URLs")
    if isinstance(error, FileNotFoundError):
        problem, hint = f"no such file on {where} (looked for {task.location})", shared
    elif isinstance(error, IsADirectoryError):
        problem, hint = f"is a directory on {where}", "pass the files in it"
    elif isinstance(error, (ImportError, ValueError)):
        problem = f"cannot be opened on {where} ({error})"
        hint = "install fsspec and the package for this URL scheme on every worker"
    else:
        reason = getattr(error, "strerror", None) or error
        problem, hint = f"cannot be opened on {where} ({reason})", shared
    return str(CaptureError(task.source, problem, hint=hint))


def _worker_address() -> str:
    try:
        import distributed

        return f"worker {distributed.get_worker().address}"
    except (ImportError, ValueError):
        return "this machine"


@functools.cache
def _version() -> str:
    """Return the installed ede-pcap version and a digest of its source files.

    Two checkouts of one version can decode differently; the digest tells them apart. It
    is taken once per process, so a worker started before the files changed still shows
    the code it runs.
    """
    import hashlib
    from importlib import metadata

    try:
        version = metadata.version("ede-pcap")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"{version} ({digest.hexdigest()[:12]})"


# --- on the client -------------------------------------------------------------------------

def scan(sources: Sequence[str | Path], scheduler: str | distributed.Client, *,
         ports: Sequence[int] = (53,), all_responses: bool = False, strict: bool = False,
         match_window_ns: int = matching.DEFAULT_WINDOW_NS,
         progress: Callable[[int, int], None] | None = None,
         retries: int = RETRIES, timeout: float = CONNECT_TIMEOUT) -> ScanResult:
    """Scan captures as Dask tasks on a running cluster; return the merged result.

    Each capture is one task, or, when the cluster has more worker threads than there are
    captures, a large plain pcap is one task per byte range (``build_tasks``).

    The result equals ``pipeline.scan`` over the same captures, row for row and count for
    count. A capture that cannot be read is recorded in ``captures`` with its error, and
    the others are still read.

    :param scheduler: the scheduler's address (``tcp://host:8786``) or a connected
        ``distributed.Client``, which is left open.
    :param progress: called with (tasks done, tasks in all) as tasks finish.
    :param retries: how often a task that raised is tried again, on any worker.
    :param timeout: seconds to wait for the scheduler and for a first worker.
    """
    require_dask("--scheduler")
    options = {"ports": tuple(ports), "all_responses": all_responses, "strict": strict,
               "match_window_ns": match_window_ns}
    names = expand_urls([str(s) for s in sources])
    if isinstance(scheduler, str):
        with _connect(scheduler, timeout) as client:
            partials = _run(client, names, options, progress, retries, timeout)
    else:
        partials = _run(scheduler, names, options, progress, retries, timeout)
    return pipeline.combine(partials)


@contextlib.contextmanager
def _connect(address: str, timeout: float) -> Iterator[distributed.Client]:
    import distributed

    try:
        client = distributed.Client(  # type: ignore[no-untyped-call]
            address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({e}); check the "
                           "address and that 'dask scheduler' runs there") from None
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


def _run(client: distributed.Client, names: list[str], options: dict[str, Any],
         progress: Callable[[int, int], None] | None, retries: int,
         timeout: float) -> list[pipeline.Partial]:
    """Return one partial per capture, in the order of ``names``."""
    import distributed

    _check_workers(client, timeout)
    slots = sum(client.nthreads().values())  # type: ignore[no-untyped-call]
    tasks = build_tasks(names, options, slots)
    run = uuid.uuid4().hex[:8]

    def submit(task: Task, key: str) -> Any:
        return client.submit(run_task, task, key=f"ede-pcap-scan-{run}-{key}", retries=retries,
                             pure=False, priority=task.size or 0)

    futures = [submit(task, str(i)) for i, task in enumerate(tasks)]
    try:
        if progress is not None:
            progress(0, len(futures))
        completed = distributed.as_completed(  # type: ignore[no-untyped-call]
            futures, loop=client.loop)
        for done, _ in enumerate(completed, 1):
            if progress is not None:
                progress(done, len(futures))
        partials = []
        for task, future in zip(tasks, futures, strict=True):
            try:
                result = future.result()
            except distributed.KilledWorker:
                raise ClusterError(
                    f"{task.source}: the workers reading it died several times; check their "
                    "logs (memory limit?) or read this capture without --scheduler") from None
            if isinstance(result, EdePcapError):
                raise result
            partials.append(result)
    finally:
        client.cancel(futures)  # type: ignore[no-untyped-call]
    return _join(tasks, partials, lambda task: _result(submit(task, f"{task.source}-whole")))


def _result(future: Any) -> pipeline.Partial:
    result = future.result()
    if isinstance(result, EdePcapError):
        raise result
    return result  # type: ignore[no-any-return]


def _join(tasks: list[Task], partials: list[pipeline.Partial],
          whole: Callable[[Task], pipeline.Partial]) -> list[pipeline.Partial]:
    """Return one partial per capture: the byte ranges of a file joined, or, when the cuts
    did not line up, the file read again whole by ``whole``."""
    joined: list[pipeline.Partial] = []
    i = 0
    while i < len(tasks):
        j = i + 1
        if tasks[i].part is None:
            joined.append(partials[i])
            i = j
            continue
        while j < len(tasks) and getattr(tasks[j].part, "index", 0) == j - i:
            j += 1
        parts = pipeline.join_parts(partials[i:j])
        if parts is None:
            task = tasks[i]
            parts = whole(Task(task.source, task.location, task.options, None, None))
        joined.append(parts)
        i = j
    return joined


def _check_workers(client: distributed.Client, timeout: float) -> None:
    """Wait for a first worker; fail early when workers lack ede-pcap or run another one."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise ClusterError(f"no Dask worker joined the scheduler within {timeout:.0f} s; start "
                           "'dask worker ADDRESS' where the captures can be read") from None
    try:
        versions = client.run(_version)
    except (ImportError, AttributeError) as e:  # raised as the worker failed to unpickle
        raise ClusterError(f"a worker cannot import ede-pcap ({e}); install the same "
                           "ede-pcap as here on every worker") from None
    mine = _version()
    other = {addr: v for addr, v in versions.items() if v != mine}
    if other:
        listed = ", ".join(f"{addr} runs {v}" for addr, v in sorted(other.items()))
        raise ClusterError(f"workers run other ede-pcap code than this one, {mine}: {listed}; "
                           "install the same ede-pcap everywhere and restart the workers")


# --- dask.dataframe ------------------------------------------------------------------------

def read_ede_dask(sources: str | Path | Sequence[str | Path], *, ports: Sequence[int] = (53,),
                  strict: bool = False,
                  match_window_ns: int = matching.DEFAULT_WINDOW_NS) -> dask.dataframe.DataFrame:
    """Return the EDE frame as a lazy ``dask.dataframe.DataFrame``, one partition per capture.

    Columns and dtypes are those of ``read_ede`` (categories are left unknown until
    computed, as Dask does for categoricals it has not seen). Each partition is one
    capture's rows in frame order, the partitions in the order given; the index restarts at
    0 in each. Computing it runs on the active Dask scheduler: a ``distributed.Client``
    when one is connected, otherwise Dask's local default.

    Example: ``analyzer.read_ede_dask(paths).groupby("ede_name").size().compute()``
    """
    require_dask("read_ede_dask()")
    import dask
    import dask.dataframe as dd
    from dask.dataframe.utils import clear_known_categories

    from analyzer import frame

    listed = [sources] if isinstance(sources, (str, Path)) else list(sources)
    options = {"ports": tuple(ports), "strict": strict, "match_window_ns": match_window_ns}
    tasks = build_tasks([str(s) for s in listed], options)
    # Keep the declared Python-backed strings: Dask would turn them into pyarrow strings.
    with dask.config.set({"dataframe.convert-string": False}):
        meta = clear_known_categories(frame.empty_ede())  # type: ignore[no-untyped-call]
        collection: dask.dataframe.DataFrame = dd.from_map(  # type: ignore[no-untyped-call]
            _ede_partition, tasks, meta=meta, enforce_metadata=False, label="read-ede")
    return collection


def _ede_partition(task: Task) -> Any:
    result = run_task(task)
    if isinstance(result, EdePcapError):
        raise result
    return pipeline.combine([result]).ede
