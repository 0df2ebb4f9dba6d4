"""Running ``ede-pcap watch`` as a real process in tests: start it, scrape /metrics, wait
(every wait bounded, so a hang fails in seconds), and what the counters must say for the
same files (from ``analyzer.scan``). The ``processes`` fixture is in conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import analyzer
from analyzer import dnstap

ROOT = Path(__file__).resolve().parent.parent
INCIDENT = ROOT / "samples" / "incident.pcap"
ALL_CODES = ROOT / "samples" / "all-codes.pcapng"
DNSTAP = ROOT / "tests" / "real" / "dnstap" / "bind.dnstap"
WAIT_S = 60  # the longest any step may take on a loaded CI machine
# the benchmark generator, beside the checkout (../shared/bench, as for bench/run.py)
MAKE_CAPTURE = ROOT.parent / "shared" / "bench" / "make_capture.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_watch(*args: str, **popen: Any) -> subprocess.Popen[bytes]:
    popen.setdefault("stdout", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "analyzer", "watch", *args],
                            stderr=subprocess.PIPE, cwd=ROOT, **popen)


def wait_for(check: Callable[[], Any], what: str, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"watch exited ({proc.returncode}) while waiting for {what}: "
                        f"{proc.stderr.read().decode() if proc.stderr else ''}")
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """Return every sample at /metrics by (name, labels), or None if nobody answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def settled(port: int, ready: Callable[[dict[Any, float]], bool]) -> Callable[[], Any]:
    """A check that is true once ``ready`` holds and two scrapes in a row agree (but for
    the lag, which moves with the clock)."""
    last: list[Any] = [None]

    def check() -> Any:
        now = scrape(port)
        if now is None or not ready(now):
            return None
        counters = {k: v for k, v in now.items() if k[0] != "lag_seconds"}
        same, last[0] = counters == last[0], counters
        return now if same else None
    return check


def total(samples: dict[Any, float], name: str, **where: str) -> float:
    return sum(v for (n, labels), v in samples.items()
               if n == name and all((k, w) in labels for k, w in where.items()))


def by_label(samples: dict[Any, float], name: str, label: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (n, labels), v in samples.items():
        if n == name and v:
            out[dict(labels)[label]] += int(v)
    return dict(out)


def expected(paths: list[Path]) -> dict[str, Any]:
    """What the counters must say for ``paths``, from ``analyzer.scan``."""
    result = analyzer.scan(paths)
    ede = result.ede
    # as report does: a dnstap log's responses received upstream are not the resolver's
    ede = ede[~ede["dnstap_type"].isin(dnstap.UPSTREAM_TYPES).to_numpy(dtype=bool)]
    first = ede[(ede["ede_index"] == 0).to_numpy(dtype=bool)]
    return {
        "codes": {str(k): int(v) for k, v in ede["ede_code"].value_counts().items()},
        "resolvers": {str(k): int(v) for k, v in ede["src_ip"].value_counts().items()},
        "ede_responses": {str(k): int(v) for k, v in first["src_ip"].value_counts().items()},
        "dns_responses": result.dns_responses,
        "accounting": {k: v for k, v in result.accounting.items() if v},
        "bytes": sum(c.bytes_read for c in result.captures),
        "newest_s": result.last_ts_ns / 1e9,
    }


def drop(directory: Path, source: Path, name: str) -> None:
    """Put a capture into the watched directory whole (copied under a hidden name first,
    as a rotating writer's file appears complete once it is renamed)."""
    hidden = directory / f".{name}"
    shutil.copyfile(source, hidden)
    os.replace(hidden, directory / name)
