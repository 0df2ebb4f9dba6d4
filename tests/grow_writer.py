"""Append a capture's bytes to a file over some seconds, as a live writer does: the
pieces are cut anywhere (inside records too), each flushed, with pauses between them.

    python tests/grow_writer.py SRC DST --seconds 3 --pieces 30 [--append] [--skip BYTES]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pieces", type=int, default=30)
    parser.add_argument("--append", action="store_true", help="append to DST (else create)")
    parser.add_argument("--skip", type=int, default=0, help="bytes of SRC written already")
    args = parser.parse_args()
    with open(args.src, "rb") as f:
        data = f.read()[args.skip:]
    step = max(1, len(data) // args.pieces + 7)  # not a record size: cuts land mid-record
    with open(args.dst, "ab" if args.append else "wb") as out:
        for at in range(0, len(data), step):
            out.write(data[at:at + step])
            out.flush()
            time.sleep(args.seconds / args.pieces)


if __name__ == "__main__":
    main()
