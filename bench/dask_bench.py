"""A directory of captures: one process (pipeline.scan) against a local Dask cluster.

    python bench/dask_bench.py                      # 8 captures x 250k packets, 2 workers
    python bench/dask_bench.py --captures 16 --packets 100000 --workers 2

Captures are generated once with ../shared/bench/make_capture.py (one seed each) into
--dir. The cluster is a distributed.LocalCluster of one-thread worker processes, started
twice: with Dask's default worker environment and with MALLOC_MMAP_THRESHOLD_ set (see
MMAP). Start-up is timed apart, since the use case is a cluster that already runs. Each
side runs --repeat times and the best time counts; all must find the same packets and EDEs.
CPU seconds (user + system, per run) are printed too: on a machine that other processes
keep busy they show the cost of each way better than the wall time does.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analyzer import distributed, pipeline

# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which also stops glibc
# from raising its mmap threshold: every 4 MiB chunk buffer is then a fresh mmap, and the
# page faults cost the decoder about half again its CPU time. A fixed mmap threshold above
# the chunk size gives it back.
MMAP = 64 << 20
MAKE_CAPTURE = Path(__file__).resolve().parent.parent.parent / "shared/bench/make_capture.py"


def make_captures(folder: Path, count: int, packets: int) -> list[str]:
    """Return ``count`` capture paths in ``folder``, generating the missing ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"site-{i:02d}-{packets}.pcap"
        if not path.exists():
            if not MAKE_CAPTURE.exists():
                sys.exit(f"{MAKE_CAPTURE} is missing: give --dir with captures in it")
            subprocess.run([sys.executable, str(MAKE_CAPTURE), str(path), "--packets",
                            str(packets), "--seed", str(i + 1), "--quiet"], check=True)
        paths.append(str(path))
    return paths


def best(run, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def cpu_seconds() -> float:
    """Return this process's CPU time (user + system) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_cluster(paths: list[str], workers: int,
                repeat: int) -> tuple[float, float, float, object]:
    """Return (best scan time, workers' CPU seconds per scan, start-up time, result) on a
    fresh LocalCluster."""
    import dask.distributed

    start = time.perf_counter()
    cluster = dask.distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
    client = dask.distributed.Client(cluster)
    client.run(lambda: __import__("analyzer.pipeline"))  # workers import the decoder once
    started = time.perf_counter() - start
    try:
        before = sum(client.run(cpu_seconds).values())
        many, result = best(lambda: distributed.scan(paths, client), repeat)
        cpu = (sum(client.run(cpu_seconds).values()) - before) / repeat
    finally:
        client.close()
        cluster.close()
    return many, cpu, started, result


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()}; load average before the run {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=8)
    parser.add_argument("--packets", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "ede-pcap-dask-bench")
    args = parser.parse_args()

    import dask

    paths = make_captures(args.dir, args.captures, args.packets)
    where = machine()  # before the run, so the load average is other processes'
    size = sum(os.path.getsize(p) for p in paths)
    before = cpu_seconds()
    one, local = best(lambda: pipeline.scan(paths), args.repeat)
    one_cpu = (cpu_seconds() - before) / args.repeat

    clusters = {}
    for label, environ in (("Dask's default worker environment", {}),
                           ("MALLOC_MMAP_THRESHOLD_=64 MiB", {"MALLOC_MMAP_THRESHOLD_": MMAP})):
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                              for k, v in environ.items()}):
            clusters[label] = run_cluster(paths, args.workers, args.repeat)
    packets = local.packets  # type: ignore[attr-defined]
    print(f"{len(paths)} captures, {packets:,} packets, {size / 1e6:,.0f} MB")
    print(f"  one process: {one:.2f} s ({packets / one / 1e6:.2f} M pkt/s), "
          f"CPU {one_cpu:.2f} s")
    for label, (many, cpu, started, remote) in clusters.items():
        assert remote.packets == packets and len(remote.ede) == len(local.ede)  # type: ignore[attr-defined]
        print(f"  Dask, {args.workers} local workers, {label}: {many:.2f} s "
              f"({packets / many / 1e6:.2f} M pkt/s, {one / many:.2f}x one process), "
              f"workers' CPU {cpu:.2f} s; cluster start {started:.1f} s")
    print(f"machine: {where}")


if __name__ == "__main__":
    main()
