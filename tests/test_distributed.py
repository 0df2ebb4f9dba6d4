"""A real Dask cluster on 127.0.0.1 (one scheduler, two one-thread workers) against local runs.

The cluster runs as subprocesses (``python -m dask scheduler|worker``) in a directory of
their own, so relative capture paths only work if the client resolves them. Workers run
without a nanny, so the process a test kills is the worker itself.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import analyzer
from analyzer import dataset, distributed, pipeline, split
from analyzer.cli import app
from analyzer.result import ScanResult

ROOT = Path(__file__).resolve().parent.parent
MAKE_CAPTURE = ROOT.parent / "shared" / "bench" / "make_capture.py"
SAMPLES = sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / "samples/*.pcap*")))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclasses.dataclass
class Cluster:
    address: str
    workers: list[subprocess.Popen[bytes]]


def _start_cluster(workdir: Path, workers: int = 2) -> Iterator[Cluster]:
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler_file = workdir / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": workdir}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written whole, but let it land
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--nworkers", "1",
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                 "--local-directory", str(workdir)], **quiet))
        import distributed as dask_distributed

        with dask_distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=60)
        yield Cluster(address, procs[1:])
    finally:
        # Workers first, all at once: a worker that outlives its scheduler spends its
        # connect timeout trying to say goodbye.
        for group in (procs[1:], procs[:1]):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler and two workers shared by the tests that leave it whole."""
    yield from _start_cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for one test, which may kill its workers."""
    yield from _start_cluster(tmp_path / "cluster")


def _generate(path: Path, packets: int) -> str:
    if not MAKE_CAPTURE.exists():
        pytest.skip("../shared/bench/make_capture.py is not here")
    subprocess.run([sys.executable, str(MAKE_CAPTURE), str(path), "--packets", str(packets),
                    "--seed", "7", "--quiet"], check=True)
    return str(path)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Sample captures (relative paths), a broken one, a missing one and, when
    ../shared/bench is here, a generated one."""
    listed = [*SAMPLES, "samples/broken/truncated.pcap", "samples/no-such.pcap"]
    if MAKE_CAPTURE.exists():
        listed.append(_generate(tmp_path_factory.mktemp("gen") / "generated-20k.pcap", 20_000))
    return listed


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def assert_same_result(got: ScanResult, want: ScanResult) -> None:
    pd.testing.assert_frame_equal(got.ede, want.ede)
    if want.responses is not None:
        assert got.responses is not None
        pd.testing.assert_frame_equal(got.responses, want.responses)
    for name in ("accounting", "problems", "packets", "dns_queries", "dns_responses",
                 "responses_with_ede", "ede_options", "response_seconds", "first_ts_ns",
                 "last_ts_ns"):
        assert getattr(got, name) == getattr(want, name), name
    assert [c.path for c in got.captures] == [c.path for c in want.captures]
    for mine, theirs in zip(got.captures, want.captures, strict=True):
        if theirs.error and "no such file" in theirs.error:
            # the cluster says which worker looked where
            assert mine.error is not None and "no such file on worker tcp://" in mine.error
            mine = dataclasses.replace(mine, error=theirs.error)
        assert mine == theirs


# --- tasks, without a cluster --------------------------------------------------------------

def test_tasks_resolve_relative_paths_and_keep_names() -> None:
    tasks = distributed.build_tasks(["samples/incident.pcap", "s3://bucket/a.pcap"],
                                    {"ports": (53,)})
    assert tasks[0].source == "samples/incident.pcap"
    assert tasks[0].location == str(ROOT / "samples/incident.pcap")
    assert tasks[0].size == os.path.getsize(ROOT / "samples/incident.pcap")
    assert (tasks[1].source, tasks[1].location, tasks[1].size) == ("s3://bucket/a.pcap",) * 2 \
        + (None,)
    with pytest.raises(distributed.ClusterError, match="stdin"):
        distributed.build_tasks(["-"], {})


def test_task_reads_a_url_with_fsspec() -> None:
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://captures/incident.pcap", "wb") as f:
        f.write((ROOT / "samples/incident.pcap").read_bytes())
    url = "memory://captures/incident.pcap"
    got = distributed.run_task(distributed.build_tasks([url], {})[0])
    want = pipeline.scan_partial("samples/incident.pcap", {})
    assert isinstance(got, pipeline.Partial)
    assert got.captures[0].path == url and not got.captures[0].error
    got_ede, want_ede = pipeline.combine([got]).ede, pipeline.combine([want]).ede
    assert len(got_ede) == len(want_ede) > 0
    assert set(got_ede["capture"]) == {url}
    pd.testing.assert_frame_equal(got_ede.drop(columns="capture"),
                                  want_ede.drop(columns="capture"))
    assert got.accounting == want.accounting


@pytest.mark.parametrize(("source", "says"), [
    ("nosuchscheme://x/a.pcap", "install fsspec and the package for this URL scheme"),
    ("memory://nowhere/a.pcap", "no such file on this machine"),
    ("samples/broken", "is a directory"),
])
def test_task_that_cannot_open_reports_the_capture(source: str, says: str) -> None:
    got = distributed.run_task(distributed.build_tasks([source], {})[0])
    assert isinstance(got, pipeline.Partial)
    assert [c.path for c in got.captures] == [source]
    assert got.captures[0].error is not None and says in got.captures[0].error
    assert got.rows == [] and got.accounting == {}


def test_unreachable_scheduler_is_a_cluster_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(distributed.ClusterError, match="cannot reach the Dask scheduler"):
        distributed.scan(["samples/incident.pcap"], f"tcp://127.0.0.1:{port}", timeout=2)


def test_report_without_scheduler_does_not_import_dask() -> None:
    code = ("import sys; from analyzer.cli import main; sys.argv = ['ede-pcap', 'report', "
            "'-q', '--format', 'json', 'samples/incident.pcap']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'dask' not in sys.modules and 'distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


def test_read_ede_dask_without_a_cluster() -> None:
    paths = ["samples/incident.pcap", "samples/all-codes.pcapng"]
    ddf = analyzer.read_ede_dask(paths)
    want = analyzer.read_ede(paths)
    assert ddf.npartitions == 2
    assert list(ddf.columns) == list(want.columns)
    assert [str(t) for t in ddf.dtypes] == [str(t) for t in want.dtypes]
    got = ddf.compute(scheduler="sync")
    _assert_same_rows(got, want)


def _assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    def order(df: pd.DataFrame) -> pd.DataFrame:
        df = df.assign(capture=df["capture"].astype(str))
        return df.sort_values(["capture", "frame_number", "ede_index"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(order(got), order(want), check_categorical=False)


# --- on the cluster ------------------------------------------------------------------------

def test_scan_on_cluster_equals_local(cluster: Cluster, captures: list[str]) -> None:
    seen: list[tuple[int, int]] = []
    got = distributed.scan(captures, cluster.address,
                           progress=lambda done, total: seen.append((done, total)))
    assert_same_result(got, pipeline.scan(captures))
    assert seen[0] == (0, len(captures)) and seen[-1] == (len(captures), len(captures))
    assert [done for done, _ in seen] == list(range(len(captures) + 1))


def test_all_responses_on_cluster_equal_local(cluster: Cluster, captures: list[str]) -> None:
    got = distributed.scan(captures, cluster.address, all_responses=True)
    assert_same_result(got, pipeline.scan(captures, all_responses=True))


def test_report_on_cluster_equals_local(cluster: Cluster, captures: list[str]) -> None:
    runner = CliRunner()
    args = ["report", "--format", "json", *captures]
    local = runner.invoke(app, args)
    remote = runner.invoke(app, [*args, "--scheduler", cluster.address])
    assert local.exit_code == remote.exit_code == 1, remote.output  # no-such.pcap
    assert "samples/no-such.pcap: no such file on worker tcp://127.0.0.1:" in remote.stderr
    # Only the missing capture's message differs: the cluster's names the worker.
    missing = "samples/no-such.pcap: no such file"
    remote_text = re.sub(re.escape(missing) + r' on worker [^"]*', missing + "; check the path",
                         remote.stdout)
    assert remote_text == local.stdout
    assert json.loads(remote.stdout)["accounting"]


def test_extract_parquet_on_cluster_equals_local(cluster: Cluster, captures: list[str],
                                                 tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["extract", "--format", "parquet", *captures]
    local = runner.invoke(app, [*args, "--output", str(tmp_path / "local")])
    remote = runner.invoke(app, [*args, "--output", str(tmp_path / "remote"),
                                 "--scheduler", cluster.address])
    assert local.exit_code == remote.exit_code == 1, remote.output
    files = sorted(p.relative_to(tmp_path / "local")
                   for p in (tmp_path / "local").rglob("*.parquet"))
    assert files == sorted(p.relative_to(tmp_path / "remote")
                           for p in (tmp_path / "remote").rglob("*.parquet"))
    assert len(files) > len(SAMPLES)  # one per capture and day
    got = dataset.read(tmp_path / "remote")
    pd.testing.assert_frame_equal(got, dataset.read(tmp_path / "local"))
    assert len(got) == len(pipeline.read_ede(captures))


def test_jobs_and_scheduler_together_are_refused(cluster: Cluster) -> None:
    result = CliRunner().invoke(app, ["report", "samples/incident.pcap", "--jobs", "2",
                                      "--scheduler", cluster.address])
    assert result.exit_code == 2
    assert "--jobs" in result.stderr


def test_read_ede_dask_on_cluster(cluster: Cluster, captures: list[str]) -> None:
    import distributed as dask_distributed

    readable = [c for c in captures if "no-such" not in c]
    with dask_distributed.Client(cluster.address) as client:
        ddf = analyzer.read_ede_dask(readable)
        assert ddf.npartitions == len(readable)
        counts = ddf.groupby("ede_code").size().compute()
        got = client.compute(ddf).result()
    want = pipeline.read_ede(readable)
    _assert_same_rows(got, want)
    assert counts.sort_index().tolist() == want.groupby("ede_code").size().sort_index().tolist()


def test_large_capture_is_read_in_byte_ranges(cluster: Cluster,
                                              big_captures: list[str]) -> None:
    big = big_captures[0]
    tasks = distributed.build_tasks([big], {}, slots=2)
    assert [t.part.index for t in tasks if t.part] == [0, 1]
    assert sum(t.size or 0 for t in tasks) == os.path.getsize(big) - 24  # all but the header
    seen: list[tuple[int, int]] = []
    got = distributed.scan([big], cluster.address,
                           progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2)  # two tasks for one capture
    assert_same_result(got, pipeline.scan([big], jobs=2))  # the same cut as --jobs 2
    # Against one pass, all but the counts of forgotten TCP streams: a part starts with
    # only the streams its lead-in shows and ends without expiring those still open, so
    # "tcp-streams-evicted"/"-expired" differ, with --jobs too.
    single = pipeline.scan([big])
    pd.testing.assert_frame_equal(got.ede, single.ede)
    assert got.accounting == single.accounting
    stream_counts = ("tcp-streams-evicted", "tcp-streams-expired", "tcp-streams-idle")
    assert {k: v for k, v in got.problems.items() if k not in stream_counts} == \
        {k: v for k, v in single.problems.items() if k not in stream_counts}


def test_byte_ranges_that_do_not_line_up_are_read_again_whole() -> None:
    whole = pipeline.scan_partial("samples/incident.pcap", {})
    tasks = [distributed.Task("a.pcap", "/a.pcap", {}, 1, split.Part(0, 24, 24, 100)),
             distributed.Task("a.pcap", "/a.pcap", {}, 1, split.Part(1, 50, 100, 200)),
             distributed.Task("b.pcap", "/b.pcap", {})]
    first = dataclasses.replace(whole, part=tasks[0].part, end_position=99)  # not 100
    second = dataclasses.replace(whole, part=tasks[1].part, end_position=200)
    again: list[distributed.Task] = []

    def read_whole(task: distributed.Task) -> pipeline.Partial:
        again.append(task)
        return whole

    joined = distributed._join(tasks, [first, second, whole], read_whole)
    assert joined == [whole, whole]
    assert [(t.source, t.part) for t in again] == [("a.pcap", None)]


# --- faults --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_captures(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three names for one generated capture of 400k packets, 70 MB (a task runs for about
    1 s; the file is large enough for split.plan to cut it in two)."""
    folder = tmp_path_factory.mktemp("big")
    first = _generate(folder / "big-0.pcap", 400_000)
    names = [first]
    for i in range(1, 3):
        os.link(first, folder / f"big-{i}.pcap")
        names.append(str(folder / f"big-{i}.pcap"))
    return names


def test_worker_killed_mid_run_loses_nothing(own_cluster: Cluster,
                                             big_captures: list[str]) -> None:
    import distributed as dask_distributed

    captures = [*big_captures, "samples/incident.pcap"]
    pids = {proc.pid: proc for proc in own_cluster.workers}
    with ThreadPoolExecutor(1) as pool, \
            dask_distributed.Client(own_cluster.address) as watcher:
        worker_pids = watcher.run(os.getpid)
        assert set(worker_pids.values()) == set(pids)
        started = threading.Event()
        running = pool.submit(distributed.scan, captures, own_cluster.address,
                              progress=lambda done, total: started.set())
        started.wait(60)
        victim = None
        deadline = time.monotonic() + 60
        while victim is None:
            assert time.monotonic() < deadline, "no worker ever ran a task"
            busy = [address for address, keys in watcher.processing().items() if keys]
            if busy:
                victim = pids[worker_pids[busy[0]]]
            else:
                time.sleep(0.01)
        assert not running.done(), "the scan finished before a worker could be killed"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        got = running.result(timeout=300)
        assert len(watcher.scheduler_info(n_workers=-1)["workers"]) == 1
    assert_same_result(got, pipeline.scan(captures))
