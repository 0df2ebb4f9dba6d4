#!/usr/bin/env python3
"""The long fuzz run: the harness of tests/test_fuzz.py, for minutes or hours, in parallel.

Two engines drive the same oracle (``test_fuzz.check``: scan, accounting, report, every
renderer, the row frame):

- ``random`` (default): each worker draws a seed capture and 1-8 structure-aware mutations
  (``test_fuzz.mutate``: bit flips, length and count lies, truncation, splices, record
  reordering, compression) with its own ``random.Random``.
- ``atheris``: coverage-guided (libFuzzer) from the file's first byte. The seeds are the
  starting corpus; half the mutations are libFuzzer's own, half ``test_fuzz.mutate``. Each
  worker is a child process (libFuzzer ends its process when done).

Every crash is classified by ``test_fuzz.signature`` (exception, analyzer file, function);
the first input of each signature is written to ``--out`` (with a .json note of how it was
made), and ``--minimize`` shrinks one such file while its signature stays the same. The last
line on stdout is a JSON summary: inputs tried, seconds, inputs per second, crashes by
signature, the signatures not yet in ``test_fuzz.KNOWN_BUGS`` and the peak RSS.

Examples:
    python3 bench/fuzz_long.py --seconds 1800 --workers 2
    python3 bench/fuzz_long.py --engine atheris --seconds 1200 --workers 2
    python3 bench/fuzz_long.py --minimize /tmp/ede-fuzz/crash-....bin
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

ANALYZER_MODULES = (
    "analyzer.errors", "analyzer.result", "analyzer.capture", "analyzer.fastpath",
    "analyzer.reassembly", "analyzer.layers", "analyzer.message", "analyzer.matching",
    "analyzer.dnsnames", "analyzer.codes", "analyzer.frame", "analyzer.filters",
    "analyzer.textfacts", "analyzer.reports", "analyzer.pipeline", "analyzer.render",
    "analyzer.render.text", "analyzer.render.jsonout", "analyzer.render.csvout",
    "analyzer.render.markdown", "analyzer.render.html", "analyzer.render.svg",
)

THIRD_PARTY = ("numpy", "pandas", "dpkt", "rich.console", "rich.table", "rich.markup",
               "zstandard", "lz4.frame", "hypothesis", "pytest")


def _slug(sig: tuple[str, str, str]) -> str:
    return "-".join(part.replace("/", ".").replace(".py", "") for part in sig if part)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MEMORY_GROWTH_MB = 256  # an input that raises the peak RSS this far above the start is a find


class Recorder:
    """Count inputs and crash signatures; keep the first input of each signature.

    With ``watch_memory``, an input after which the process's peak RSS stands
    MEMORY_GROWTH_MB above where it was after the first input counts as a crash too,
    signature ("MemoryGrowth", "", ""). Not under atheris: libFuzzer's in-memory corpus
    grows the process by itself.
    """

    def __init__(self, out: Path, known: dict[Any, str], watch_memory: bool = True):
        self.out = out
        self.known = known
        self.watch_memory = watch_memory
        self.inputs = 0
        self.crashes: Counter[tuple[str, str, str]] = Counter()
        self.started = time.monotonic()
        self.rss_base: float | None = None
        self.rss_mark = 0.0

    def record(self, data: bytes, sig: tuple[str, str, str] | None, how: dict[str, Any]) -> None:
        self.inputs += 1
        rss = _peak_rss_mb()
        if self.rss_base is None:
            self.rss_base = self.rss_mark = rss
        elif (self.watch_memory and sig is None and rss > self.rss_mark + 64
              and rss > self.rss_base + MEMORY_GROWTH_MB):
            self.rss_mark = rss
            sig = ("MemoryGrowth", "", "")
        if sig is None:
            return
        self.crashes[sig] += 1
        if self.crashes[sig] == 1:
            self.out.mkdir(parents=True, exist_ok=True)
            name = f"crash-{_slug(sig)}-{hashlib.sha1(data).hexdigest()[:10]}"
            (self.out / f"{name}.bin").write_bytes(data)
            (self.out / f"{name}.json").write_text(json.dumps(
                {"signature": sig, "known": sig in self.known, **how}, indent=1))

    def stats(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        return {
            "inputs": self.inputs, "seconds": round(seconds, 1),
            "inputs_per_second": round(self.inputs / seconds, 1) if seconds else None,
            "crashes": {" | ".join(k): v for k, v in self.crashes.most_common()},
            "new_signatures": sorted(" | ".join(k) for k in self.crashes if k not in self.known),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    crashes: Counter[str] = Counter()
    for p in parts:
        crashes.update(p["crashes"])
    seconds = max((p["seconds"] for p in parts), default=0)
    inputs = sum(p["inputs"] for p in parts)
    return {
        "inputs": inputs, "seconds": seconds, "workers": len(parts),
        "inputs_per_second": round(inputs / seconds, 1) if seconds else None,
        "crashes": dict(crashes.most_common()),
        "new_signatures": sorted({s for p in parts for s in p["new_signatures"]}),
        "peak_rss_mb": max((p["peak_rss_mb"] for p in parts), default=0),
    }


# --- random engine -----------------------------------------------------------------------------

def random_worker(args: tuple[int, float, int, str]) -> dict[str, Any]:
    worker, seconds, runs, out = args
    import test_fuzz as harness

    pool = harness.seeds()
    rng = random.Random(worker)
    rec = Recorder(Path(out), harness.KNOWN_BUGS)
    deadline = time.monotonic() + seconds if seconds else None
    while (not runs or rec.inputs < runs) and (deadline is None or time.monotonic() < deadline):
        seed = pool[rng.randrange(len(pool))]
        ops = [(rng.choice(harness.OPS), rng.getrandbits(32), rng.getrandbits(32))
               for _ in range(rng.randint(1, 8))]
        all_responses = rng.random() < 0.3
        data = harness.mutate(seed.data, ops, pool)
        sig = harness.run_case(data, all_responses=all_responses)
        rec.record(data, sig, {"engine": "random", "seed": seed.name, "ops": ops,
                               "all_responses": all_responses})
    return rec.stats()


def run_random(seconds: float, runs: int, workers: int, out: str, base_seed: int
               ) -> dict[str, Any]:
    per_worker = -(-runs // workers) if runs else 0
    jobs = [(base_seed + i, seconds, per_worker, out) for i in range(workers)]
    if workers == 1:
        return merge([random_worker(jobs[0])])
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return merge(pool.map(random_worker, jobs))


# --- atheris engine ----------------------------------------------------------------------------

def atheris_child(seconds: float, runs: int, out: str, seed: int, stats_file: str) -> None:
    """Fuzz in this process until libFuzzer stops it; write stats to ``stats_file`` as we go."""
    import importlib

    import atheris

    # Third-party modules are imported first, so that only analyzer/ is instrumented.
    for name in THIRD_PARTY:
        importlib.import_module(name)
    with atheris.instrument_imports():
        for name in ANALYZER_MODULES:
            importlib.import_module(name)
    import test_fuzz as harness

    pool = harness.seeds()
    rec = Recorder(Path(out), harness.KNOWN_BUGS, watch_memory=False)
    corpus = Path(tempfile.mkdtemp(prefix="ede-atheris-corpus-"))
    for i, s in enumerate(pool):
        (corpus / f"seed-{i:03d}").write_bytes(s.data)

    def save() -> None:
        tmp = stats_file + ".tmp"
        Path(tmp).write_text(json.dumps(rec.stats()))
        os.replace(tmp, stats_file)

    def test_one_input(data: bytes) -> None:
        sig = harness.run_case(data, all_responses=len(data) % 3 == 0)
        known = sig is None or sig in rec.crashes
        rec.record(data, sig, {"engine": "atheris", "seed": seed})
        if not known or rec.inputs % 10 == 0:  # libFuzzer ends the process without notice
            save()

    def custom_mutator(data: bytes, max_size: int, mseed: int) -> bytes:
        rng = random.Random(mseed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        ops = [(rng.choice(harness.OPS), rng.getrandbits(32), rng.getrandbits(32))
               for _ in range(rng.randint(1, 3))]
        return harness.mutate(data, ops, pool)[:max_size]

    argv = [sys.argv[0], str(corpus), f"-seed={seed}", f"-max_len={harness.MAX_INPUT}",
            "-rss_limit_mb=4096", "-timeout=120", "-print_final_stats=1"]
    if runs:
        argv.append(f"-runs={runs}")
    if seconds:
        argv.append(f"-max_total_time={int(seconds)}")
    save()
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def run_atheris(seconds: float, runs: int, workers: int, out: str, base_seed: int,
                quiet: bool) -> dict[str, Any]:
    stats_files = []
    procs = []
    per_worker = -(-runs // workers) if runs else 0
    for i in range(workers):
        fd, path = tempfile.mkstemp(prefix="ede-atheris-stats-", suffix=".json")
        os.close(fd)
        stats_files.append(path)
        cmd = [sys.executable, __file__, "--child", "--engine", "atheris", "--seconds",
               str(seconds), "--runs", str(per_worker), "--out", out, "--seed",
               str(base_seed + i), "--stats-file", path]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL if quiet else None))
    for p in procs:
        p.wait()
    parts = []
    for path in stats_files:
        text = Path(path).read_text()
        if text.strip():
            parts.append(json.loads(text))
        os.unlink(path)
    return merge(parts)


# --- minimizing a crash ------------------------------------------------------------------------

def minimize(path: Path, budget: int = 4000) -> Path:
    """Shrink a crashing input while its signature stays the same; return the new file."""
    import test_fuzz as harness

    note = path.with_suffix(".json")
    all_responses = bool(json.loads(note.read_text()).get("all_responses")) \
        if note.exists() else False
    data = path.read_bytes()
    target = harness.run_case(data, all_responses=all_responses)
    if target is None:
        raise SystemExit(f"{path}: does not crash")
    tries = 0

    def same(candidate: bytes) -> bool:
        nonlocal tries
        tries += 1
        return harness.run_case(candidate, all_responses=all_responses) == target

    # whole records first (keeps the file well-formed), then byte ranges, halving
    changed = True
    while changed and tries < budget:
        changed = False
        layout = harness.capture_layout(data)
        for s, e in reversed(layout.records):
            if tries >= budget:
                break
            candidate = data[:s] + data[e:]
            if same(candidate):
                data, changed = candidate, True
                break
    size = max(1, len(data) // 2)
    while size >= 1 and tries < budget:
        pos = 0
        while pos < len(data) and tries < budget:
            candidate = data[:pos] + data[pos + size:]
            if candidate and same(candidate):
                data = candidate
            else:
                pos += size
        size //= 2
    result = path.with_name(path.stem + ".min" + path.suffix)
    result.write_bytes(data)
    print(f"{path.name}: {path.stat().st_size} -> {len(data)} bytes in {tries} tries; "
          f"signature {' | '.join(target)}")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("random", "atheris"), default="random")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many inputs")
    ap.add_argument("--workers", type=int, default=1, help="processes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "ede-fuzz"),
                    help="where the first input of each crash signature is written")
    ap.add_argument("--minimize", type=Path, metavar="FILE", help="shrink one crash input")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.minimize:
        minimize(args.minimize)
        return
    if not args.seconds and not args.runs:
        ap.error("give --seconds or --runs")
    if args.child:
        atheris_child(args.seconds, args.runs, args.out, args.seed, args.stats_file)
        return
    if args.engine == "atheris":
        stats = run_atheris(args.seconds, args.runs, args.workers, args.out, args.seed,
                            args.quiet)
    else:
        stats = run_random(args.seconds, args.runs, args.workers, args.out, args.seed)
    stats["engine"] = args.engine
    if not args.quiet:
        print(json.dumps(stats, indent=1), file=sys.stderr)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
