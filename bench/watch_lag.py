"""How long a record written to a watched directory's newest file takes to show in /metrics.

    python bench/watch_lag.py [--records 20] [--gap 0.5] [--rotate] [--python PY] [--cwd DIR]
        [-- ARGS]

Starts ``PY -m analyzer watch DIR --metrics`` (in ``--cwd``, so another checkout's code can
be measured), writes a pcap's header to ``DIR/dns-1.pcap``, then appends one record of
``samples/incident.pcap`` at a time; after each, polls /metrics every 10 ms until
``packets_total`` counts every record written so far, and prints the time from the write
to then. No newer file ever appears (the writer is mid-rotation-period, as with
``tcpdump -G 60``). With
``--rotate``, each record goes to a new file instead (``dns-N.pcap``: a header and the
record), as a writer rotating after every record: the hand-over from one file to the next.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def packets(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("packets_total{"))


def records(capture: bytes) -> list[bytes]:
    """The records of a little-endian pcap, header first."""
    out, at = [capture[:24]], 24
    while at + 16 <= len(capture):
        end = at + 16 + int.from_bytes(capture[at + 8:at + 12], "little")
        out.append(capture[at:end])
        at = end
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between records")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cwd", default=str(ROOT))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rotate", action="store_true", help="a new file for each record")
    parser.add_argument("args", nargs="*", help="more watch arguments (after --)")
    args = parser.parse_args()
    parts = records((ROOT / "samples" / "incident.pcap").read_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as spool:
        proc = subprocess.Popen([args.python, "-m", "analyzer", "watch", spool, "--metrics",
                                 f"127.0.0.1:{port}", *args.args], cwd=args.cwd,
                                stdout=subprocess.DEVNULL)
        lags = []
        try:
            deadline = time.monotonic() + args.timeout
            while packets(port) is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("watch did not start")
                time.sleep(0.05)
            out = open(Path(spool) / "dns-1.pcap", "wb")  # noqa: SIM115 - closed below
            out.write(parts[0] + parts[1])  # a header and a first record
            out.flush()
            for n, part in enumerate(parts[2:2 + args.records], 2):
                time.sleep(args.gap)
                written = time.monotonic()
                if args.rotate:
                    out.close()
                    out = open(Path(spool) / f"dns-{n}.pcap", "wb")  # noqa: SIM115
                    out.write(parts[0])
                out.write(part)
                out.flush()
                while (packets(port) or 0.0) < n:  # records 1 to n
                    if time.monotonic() - written > args.timeout:
                        sys.exit(f"not counted within {args.timeout} s")
                    time.sleep(0.01)
                lags.append(time.monotonic() - written)
            out.close()
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{len(lags)} records: lag median {statistics.median(lags):.3f} s, "
          f"min {min(lags):.3f} s, max {max(lags):.3f} s")


if __name__ == "__main__":
    main()
