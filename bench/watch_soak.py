"""Feed `ede-pcap watch` hours of rotating captures, time-compressed, and sample its memory.

A real `watch` process follows a directory; this script writes into it one capture per
--file-minutes of simulated traffic, with consecutive timestamps, as `tcpdump -G` would,
keeps the newest --keep files (a rotation ring) and writes the next file as soon as
`capture_files_read_total` says the previous one was read. The captures are a few
generated ones (make_capture.py, distinct seeds) with their record times shifted to where
they belong, so hours of traffic cost seconds to prepare. After every file it samples the
process's VmRSS (/proc/PID/status) and prints the samples and a summary: the peak of the
first half and of the second half. Flat memory: the second half's peak stays within a few
MiB of the first half's.

    python bench/watch_soak.py --hours 24 --file-minutes 5 --packets 20000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the benchmark generator, beside the checkout (../shared/bench), as for bench/run.py
MAKE_CAPTURE = ROOT.parent / "shared" / "bench" / "make_capture.py"
START_S = 1_735_689_600
WAIT_S = 60  # the longest one file may take to be read


def make_bases(workdir: Path, count: int, packets: int, seconds: int,
               ede_share: float = 0.03) -> list[bytes]:
    """``count`` generated captures of ``seconds`` each, starting at START_S."""
    bases = []
    for seed in range(1, count + 1):
        out = workdir / f"base-{seed}.pcap"
        subprocess.run([sys.executable, str(MAKE_CAPTURE), str(out), "-n", str(packets),
                        "--duration", str(seconds), "--start", str(START_S), "--seed",
                        str(seed), "--ede-share", str(ede_share), "-q"],
                       check=True, capture_output=True)
        bases.append(out.read_bytes())
        out.unlink()
        out.with_name(out.name + ".truth.json").unlink()
    return bases


def shifted(capture: bytes, offset_s: int) -> bytes:
    """A little-endian microsecond pcap with every record's time moved by ``offset_s``."""
    if struct.unpack_from("<I", capture)[0] != 0xA1B2C3D4:
        raise ValueError("expected a little-endian microsecond pcap (make_capture.py's)")
    out = bytearray(capture)
    at = 24
    while at + 16 <= len(out):
        sec, _, incl = struct.unpack_from("<III", out, at)
        struct.pack_into("<I", out, at, sec + offset_s)
        at += 16 + incl
    return bytes(out)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def files_read(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    for line in text.splitlines():
        if line.startswith("capture_files_read_total "):
            return int(float(line.split()[1]))
    return None


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def soak(workdir: Path, hours: float, file_minutes: int, packets: int, bases: int = 4,
         keep: int = 3, window: str = "1h", interval: str = "1min",
         ede_share: float = 0.03) -> dict[str, Any]:
    """Run the soak; return the samples and the summary."""
    seconds = file_minutes * 60
    captures = make_bases(workdir, bases, packets, seconds, ede_share)
    spool = workdir / "spool"
    spool.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "watch", str(spool), "--metrics",
         f"127.0.0.1:{port}", "--settle", "0.1", "--window", window, "--interval", interval,
         "--events", str(workdir / "events.jsonl")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while files_read(port) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"watch did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        started = time.monotonic()
        total = max(1, round(hours * 60 / file_minutes))
        for k in range(total):
            name = f"dns-{START_S + k * seconds}.pcap"
            hidden = spool / f".{name}"
            hidden.write_bytes(shifted(captures[k % len(captures)], k * seconds))
            os.replace(hidden, spool / name)
            deadline = time.monotonic() + WAIT_S
            while (files_read(port) or 0) < k + 1:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"watch stopped reading at file {k}: "
                                       f"{proc.stderr.read().decode() if proc.poll() else ''}")
                time.sleep(0.02)
            samples.append({"file": k + 1, "simulated_h": round((k + 1) * seconds / 3600, 3),
                            "wall_s": round(time.monotonic() - started, 2),
                            "rss_mib": round(rss_kib(proc.pid) / 1024, 1)})
            for old in sorted(spool.glob("dns-*.pcap"))[:-keep]:  # the rotation ring
                old.unlink()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    half = len(samples) // 2
    first = max(s["rss_mib"] for s in samples[:half]) if half else 0.0
    second = max(s["rss_mib"] for s in samples[half:])
    events = (workdir / "events.jsonl").read_text().splitlines()
    return {"samples": samples, "exit_code": code, "files": len(samples),
            "simulated_hours": samples[-1]["simulated_h"], "packets": len(samples) * packets,
            "wall_s": samples[-1]["wall_s"], "first_half_peak_mib": first,
            "second_half_peak_mib": second, "growth_mib": round(second - first, 1),
            "events": len(events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0, help="simulated hours [2]")
    parser.add_argument("--file-minutes", type=int, default=5, help="minutes per file [5]")
    parser.add_argument("--packets", type=int, default=20_000, help="packets per file")
    parser.add_argument("--ede-share", type=float, default=0.03,
                        help="share of responses with an EDE (make_capture.py) [0.03]")
    parser.add_argument("--window", default="1h")
    parser.add_argument("--interval", default="1min")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watch-soak-") as tmp:
        result = soak(Path(tmp), args.hours, args.file_minutes, args.packets,
                      window=args.window, interval=args.interval, ede_share=args.ede_share)
    if args.json:
        print(json.dumps(result))
        return
    print("| file | simulated h | wall s | RSS MiB |\n|---|---|---|---|")
    step = max(1, len(result["samples"]) // 24)
    for s in result["samples"][::step]:
        print(f"| {s['file']} | {s['simulated_h']} | {s['wall_s']} | {s['rss_mib']} |")
    print(f"\n{result['files']} files, {result['packets']:,} packets, "
          f"{result['simulated_hours']} h of traffic in {result['wall_s']} s; "
          f"RSS peak {result['first_half_peak_mib']} MiB in the first half, "
          f"{result['second_half_peak_mib']} MiB in the second ({result['growth_mib']:+} MiB); "
          f"{result['events']} incident events; exit code {result['exit_code']}")


if __name__ == "__main__":
    main()
