#!/usr/bin/env python3
"""Soak: a 10M-packet generated capture, scanned to the exact truth counts in flat memory.

Generates the capture with ``../shared/bench/make_capture.py`` (deterministic; its truth
file says what must be found), scans it in a child process that reports its RSS as it
goes, then checks:

- the counts equal the generator's truth exactly: packets, DNS queries and responses,
  responses with EDE, EDE options, EDE options per INFO-CODE, RCODEs of the EDE rows;
- the accounting sums to the packets read;
- memory is flat: RSS after the first tenth of the capture and at the end differ by less
  than ``--flat-mib`` (default 64), and the peak stays under ``--max-mib`` (default 512).

Prints a table as it goes and a JSON summary as its last line; exits 1 if a check fails.
Takes minutes: generating 10M packets is the slow part (reuse a file with ``--capture``).

Examples:
    python3 bench/soak.py                           # 10M packets in a temporary directory
    python3 bench/soak.py --packets 1000000 --keep /tmp/soak-1m.pcap
    python3 bench/soak.py --capture /tmp/soak-1m.pcap   # reuse it (truth next to it)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "bench" / "make_capture.py"

# The child: scan with a progress callback that prints RSS, then the counters as JSON.
CHILD = r"""
import json, resource, sys, time
from analyzer.pipeline import scan

def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

started = time.perf_counter()
last = [0.0]

def progress(done_bytes, packets):
    now = time.perf_counter()
    if now - last[0] >= 1.0:
        last[0] = now
        print(json.dumps({"t": round(now - started, 1), "bytes": done_bytes,
                          "packets": packets, "rss_mib": round(rss_mib(), 1)}), flush=True)

result = scan([sys.argv[1]], progress=progress)
seconds = time.perf_counter() - started
ede = result.ede
print(json.dumps({
    "done": True, "seconds": round(seconds, 1), "rss_mib": round(rss_mib(), 1),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "packets": result.packets, "accounting": result.accounting, "problems": result.problems,
    "dns_queries": result.dns_queries, "dns_responses": result.dns_responses,
    "responses_with_ede": result.responses_with_ede, "ede_options": result.ede_options,
    "ede_by_code": {str(k): int(v) for k, v in ede.ede_code.value_counts().items()},
    "ede_by_rcode_and_code": {f"{r}/{c}": int(n) for (r, c), n in
                               ede.groupby(["rcode", "ede_code"], observed=True).size().items()
                               if n},
    "error": result.captures[0].error,
}), flush=True)
"""


def generate(path: Path, packets: int, seed: int, fmt: str) -> dict[str, Any]:
    if not GENERATOR.is_file():
        raise SystemExit(f"{GENERATOR}: not found; give --capture with its truth file")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(GENERATOR), str(path), "--packets", str(packets),
                    "--seed", str(seed), "--format", fmt, "-q"], check=True)
    print(f"generated {packets:,} packets ({path.stat().st_size / 2**20:,.0f} MiB) in "
          f"{time.perf_counter() - started:,.0f} s", file=sys.stderr)
    return json.loads(Path(f"{path}.truth.json").read_text())


def scan_in_child(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    samples = []
    final: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        record = json.loads(line)
        if record.get("done"):
            final = record
        else:
            samples.append(record)
            print(f"  {record['t']:>7.1f} s {record['packets']:>12,} packets "
                  f"{record['rss_mib']:>8.1f} MiB", file=sys.stderr)
    if proc.wait() != 0 or not final:
        raise SystemExit("the scan failed")
    return final, samples


def compare(truth: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Return one line per count that differs from the truth."""
    expected = {
        "packets": truth["packets_written"], "dns_queries": truth["dns_queries"],
        "dns_responses": truth["dns_responses"],
        "responses_with_ede": truth["responses_with_ede"], "ede_options": truth["ede_options"],
        "ede_by_code": truth["ede_options_by_code"],
        "ede_by_rcode_and_code": truth["ede_by_rcode_and_code"],
    }
    wrong = [f"{k}: expected {v}, got {got.get(k)}" for k, v in expected.items()
             if got.get(k) != v]
    if sum(got["accounting"].values()) != got["packets"]:
        wrong.append("accounting does not sum to the packets")
    if got.get("error"):
        wrong.append(f"capture error: {got['error']}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--capture", type=Path, help="reuse this capture (truth: CAPTURE.truth.json)")
    ap.add_argument("--keep", type=Path, help="write the generated capture here and keep it")
    ap.add_argument("--flat-mib", type=float, default=64)
    ap.add_argument("--max-mib", type=float, default=512)
    args = ap.parse_args(argv)

    tmp = None
    if args.capture:
        path = args.capture
        truth = json.loads(Path(f"{path}.truth.json").read_text())
    else:
        if args.keep:
            path = args.keep
        else:
            tmp = tempfile.TemporaryDirectory(prefix="ede-soak-")
            path = Path(tmp.name) / f"soak.{args.format}"
        truth = generate(path, args.packets, args.seed, args.format)
    size = path.stat().st_size
    try:
        got, samples = scan_in_child(path)
    finally:
        if tmp is not None:
            tmp.cleanup()
    wrong = compare(truth, got)
    tenth = next((s for s in samples if s["packets"] >= got["packets"] / 10), None)
    early = tenth["rss_mib"] if tenth else None
    growth = round(max(s["rss_mib"] for s in samples) - early, 1) if early else None
    if growth is not None and growth >= args.flat_mib:
        wrong.append(f"memory grew {growth} MiB after the first tenth (limit {args.flat_mib})")
    if got["peak_rss_mib"] >= args.max_mib:
        wrong.append(f"peak RSS {got['peak_rss_mib']} MiB (limit {args.max_mib})")
    summary = {
        "packets": got["packets"], "file_mib": round(size / 2**20, 1),
        "seconds": got["seconds"],
        "packets_per_second": round(got["packets"] / got["seconds"]) if got["seconds"] else None,
        "rss_after_first_tenth_mib": early, "rss_growth_after_first_tenth_mib": growth,
        "peak_rss_mib": got["peak_rss_mib"], "dns_responses": got["dns_responses"],
        "ede_options": got["ede_options"], "accounting": got["accounting"],
        "problems": got["problems"], "mismatches": wrong, "ok": not wrong,
    }
    for line in wrong:
        print(f"MISMATCH {line}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
