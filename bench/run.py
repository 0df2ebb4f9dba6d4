#!/usr/bin/env python3
"""Benchmark `ede-pcap report` against tshark on the same capture, whole process each.

Usage:
    python3 bench/run.py                       # 1M-packet pcap, pcapng, EDE-heavy, VXLAN, GRE
    python3 bench/run.py CAPTURE [CAPTURE...]  # captures you have (truth checked if present)
    python3 bench/run.py --packets 100000 --sizes 100000,1000000,5000000 --no-tshark
    python3 bench/run.py --dnstap 1000000      # a 1M-message dnstap log, against 1M msgs/s

For each capture it prints packets/s, MB/s, peak RSS, the ratio to tshark measured in the
same run, and whether the counts equal the generator's truth file (OUT.truth.json).
Captures are generated with ../shared/bench/make_capture.py when it exists, dnstap logs
with bench/make_dnstap.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR = HERE.parents[1] / "shared" / "bench" / "make_capture.py"
DNSTAP_GENERATOR = HERE / "make_dnstap.py"
DNSTAP_TARGET = 1_000_000  # dnstap messages per second, whole process
TSHARK = ["tshark", "-r", "{f}", "-n", "-Y", "dns.opt.ext_error.info_code", "-T", "fields",
          "-e", "frame.number", "-e", "dns.opt.ext_error.info_code"]


# As a user's installed package runs: pip writes the bytecode at install time, so a shell
# that sets PYTHONDONTWRITEBYTECODE would otherwise time a recompile on every run.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def ede_pcap_command() -> list[str]:
    """The ede-pcap of this interpreter's environment (not a version manager's shim)."""
    beside = Path(sys.executable).with_name("ede-pcap")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "analyzer"]


def run(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Return the best wall time (s) and the peak RSS (MiB) of ``cmd`` over ``repeat`` runs."""
    best, peak = float("inf"), 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")  # type: ignore[union-attr]
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)
    return best, peak


def generate(out: Path, packets: int, fmt: str, share: float, seed: int,
             encap: str = "none") -> Path:
    if not out.exists():
        subprocess.run([sys.executable, str(GENERATOR), str(out), "--packets", str(packets),
                        "--format", fmt, "--ede-share", str(share), "--seed", str(seed),
                        "--encap", encap, "-q"], check=True)
    return out


def check_truth(capture: Path, report: dict) -> str:
    truth_path = Path(str(capture) + ".truth.json")
    if not truth_path.exists():
        return "no truth file"
    truth = json.loads(truth_path.read_text())
    s = report["summary"]
    got = {"dns_responses": s["dns_responses"], "dns_queries": s["dns_queries"],
           "responses_with_ede": s["responses_with_ede"], "ede_options": s["ede_options"],
           "ede_options_by_code": {str(c["code"]): c["count"] for c in report["codes"]}}
    want = {k: truth[k] for k in got}
    if got == want:
        return "exact"
    bad = [k for k in got if got[k] != want[k]]
    return "MISMATCH: " + ", ".join(bad)


def generate_dnstap(out: Path, messages: int, seed: int) -> Path:
    if not out.exists():
        subprocess.run([sys.executable, str(DNSTAP_GENERATOR), str(out), "--messages",
                        str(messages), "--seed", str(seed), "--version", "unbound 1.17.1",
                        "-q"], check=True)
    return out


def check_dnstap_report(report: dict, truth: dict) -> str:
    """Compare a dnstap report with make_dnstap.py's truth: client-facing EDE counts after
    folding duplicate frames, and the upstream (RESOLVER_RESPONSE) codes kept apart."""
    dnstap = report.get("dnstap", {})
    got = {"messages": dnstap.get("messages"),
           "duplicates_folded": dnstap.get("duplicates_folded"),
           "by_type": dnstap.get("by_type"), "transport": dnstap.get("transport"),
           "codes": {str(c.get("code")): c.get("count") for c in report.get("codes", [])},
           "responses_with_ede": report.get("summary", {}).get("responses_with_ede"),
           "ede_options": report.get("summary", {}).get("ede_options"),
           "upstream_codes": report.get("upstream_codes")}
    want = {"messages": truth["messages"], "duplicates_folded": truth["duplicates"],
            # a message without socket_protocol: "absent" in the truth, "unknown" in reports
            "by_type": truth["by_type"],
            "transport": {("unknown" if k == "absent" else k): v
                          for k, v in sorted(truth["transport"].items())},
            "codes": truth["client_codes"],
            "responses_with_ede": truth["client_responses_with_ede"],
            "ede_options": truth["client_ede_options"], "upstream_codes": truth["upstream_codes"]}
    bad = [k for k in got if got[k] != want[k]]
    return "MISMATCH: " + ", ".join(bad) if bad else "exact"


def bench_dnstap(path: Path, args: argparse.Namespace) -> dict:
    """Time ``ede-pcap report`` on a dnstap log and check its counts against the truth."""
    truth = json.loads(Path(str(path) + ".truth.json").read_text(encoding="utf-8"))
    ede = [*ede_pcap_command(), "report", str(path), "--format", "json",
           "--output", "/dev/null", "--quiet"]
    if args.jobs > 1:
        ede += ["--jobs", str(args.jobs)]
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        proc = subprocess.run(ede[:-3] + ["--output", tmp.name, "--quiet"], env=CHILD_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(f"failed: {' '.join(ede)}\n{proc.stderr}")
        report = json.loads(Path(tmp.name).read_text())
    seconds, rss = run(ede, args.repeat)
    size = path.stat().st_size
    return {"capture": path.name, "messages": truth["messages"], "MB": size / 1e6,
            "seconds": seconds, "messages_per_s": truth["messages"] / seconds,
            "MB_per_s": size / 1e6 / seconds, "peak_rss_MiB": rss,
            "truth": check_dnstap_report(report, truth)}


def bench(capture: Path, args: argparse.Namespace) -> dict:
    ede = [*ede_pcap_command(), "report", str(capture), "--format", "json",
           "--output", "/dev/null", "--quiet"]
    if args.jobs > 1:
        ede += ["--jobs", str(args.jobs)]
    size = capture.stat().st_size
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        subprocess.run(ede[:-3] + ["--output", tmp.name, "--quiet"], check=True, env=CHILD_ENV)
        report = json.loads(Path(tmp.name).read_text())
    packets = report["summary"]["packets"]
    seconds, rss = run(ede, args.repeat)
    row = {"capture": capture.name, "packets": packets, "MB": size / 1e6,
           "seconds": seconds, "packets_per_s": packets / seconds, "MB_per_s": size / 1e6 / seconds,
           "peak_rss_MiB": rss, "truth": check_truth(capture, report)}
    if not args.no_tshark and shutil.which("tshark"):
        t_seconds, t_rss = run([a.format(f=capture) for a in TSHARK], 1)
        row.update(tshark_seconds=t_seconds, tshark_rss_MiB=t_rss, ratio=t_seconds / seconds)
    return row


def _names(value: str) -> list[str]:
    return [name for name in value.split(",") if name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--sizes", help="comma-separated packet counts for a scaling run")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ede-bench")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ede-pcap; best is kept")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--dnstap", type=int, metavar="N",
                        help="instead of the default captures, time a dnstap log of N messages "
                             f"(bench/make_dnstap.py) against {DNSTAP_TARGET:,} messages/s")
    parser.add_argument("--encap", default="vxlan,gre", type=_names,
                        help="also generate these tunnelled captures (make_capture.py --encap); "
                             "'' for none")
    args = parser.parse_args()
    captures = list(args.captures)
    dnstaps = []
    if args.dnstap:
        args.workdir.mkdir(parents=True, exist_ok=True)
        dnstaps.append(generate_dnstap(args.workdir / f"bench-{args.dnstap}.dnstap",
                                       args.dnstap, 1))
    if not captures and not dnstaps:
        if not GENERATOR.exists():
            sys.exit(f"no capture given and no generator at {GENERATOR}")
        args.workdir.mkdir(parents=True, exist_ok=True)
        if args.sizes:
            for n in (int(x) for x in args.sizes.split(",")):
                captures.append(generate(args.workdir / f"bench-{n}.pcap", n, "pcap", 0.03, 1))
        else:
            n = args.packets
            captures = [generate(args.workdir / f"bench-{n}.pcap", n, "pcap", 0.03, 1),
                        generate(args.workdir / f"bench-{n}.pcapng", n, "pcapng", 0.03, 1),
                        generate(args.workdir / f"bench-{n}-ede30.pcap", n, "pcap", 0.3, 1),
                        *(generate(args.workdir / f"bench-{n}-{encap}.pcap", n, "pcap", 0.03, 1,
                                   encap) for encap in args.encap)]
    kernels = subprocess.run([sys.executable, "-c", "from analyzer import speedups; "
                              "print(speedups.describe())"], capture_output=True, text=True,
                             env=CHILD_ENV).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}; ede-pcap: "
          f"{' '.join(ede_pcap_command())} ({kernels})")
    header = ("| capture | packets | MB | ede-pcap s | packets/s | MB/s | peak RSS MiB | "
              "tshark s | tshark RSS MiB | x tshark | truth |")
    if dnstaps:
        print("| dnstap log | messages | MB | ede-pcap s | messages/s | x target | MB/s | "
              "peak RSS MiB | truth |")
        print("|---" * 9 + "|")
    for path in dnstaps:
        r = bench_dnstap(path, args)
        print(f"| {r['capture']} | {r['messages']:,} | {r['MB']:.0f} | {r['seconds']:.2f} | "
              f"{r['messages_per_s']:,.0f} | {r['messages_per_s'] / DNSTAP_TARGET:.2f} | "
              f"{r['MB_per_s']:.0f} | {r['peak_rss_MiB']:.0f} | {r['truth']} |", flush=True)
    if not captures:
        return
    print(header)
    print("|---" * 11 + "|")
    for capture in captures:
        r = bench(capture, args)
        print(f"| {r['capture']} | {r['packets']:,} | {r['MB']:.0f} | {r['seconds']:.2f} | "
              f"{r['packets_per_s']:,.0f} | {r['MB_per_s']:.0f} | {r['peak_rss_MiB']:.0f} | "
              f"{r.get('tshark_seconds', float('nan')):.2f} | "
              f"{r.get('tshark_rss_MiB', float('nan')):.0f} | {r.get('ratio', float('nan')):.1f} | "
              f"{r['truth']} |", flush=True)


if __name__ == "__main__":
    main()
