"""Write the outputs in docs/walkthrough.md from real runs of the commands it shows.

Run ``python docs/gen_walkthrough.py`` after changing what a command prints, and read the
diff: the prose around the outputs may need the new numbers. tests/test_docs.py fails while
the document is stale.

Every line of every ```sh block in the walk-through is run with bash, from a scratch
directory whose ``samples`` is the repository's (paths print as shown, and the files the
commands write land there), with ``ede-pcap`` running this checkout, COLUMNS=80, TZ=UTC
and the C locale. A command that fails or writes to stderr (other than tshark's warning
when run as root) stops the generator. Each output
is between ``<!-- output: NAME -->`` and ``<!-- end output -->``; OUTPUTS says which
command printed it and which part of a long output is shown (``...`` marks a cut). FACTS
are numbers the prose quotes: the generator stops if an output no longer shows them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = Path(__file__).resolve().parent / "walkthrough.md"

Pick = Callable[[list[str]], list[str]]


def lines_from(start: str | None, stop: str | None) -> Pick:
    """Pick the lines from the first that starts with ``start`` (None: the first line) to
    the one before the next that starts with ``stop`` (None: the next blank line)."""
    def pick(lines: list[str]) -> list[str]:
        first = 0 if start is None else next(
            i for i, line in enumerate(lines) if line.startswith(start))
        ends = (i for i in range(first + 1, len(lines))
                if (lines[i].startswith(stop) if stop is not None else not lines[i]))
        part = lines[first:next(ends, len(lines))]
        while part and not part[-1]:
            part.pop()
        return part
    return pick


def head(until: str) -> Pick:
    """Pick the lines before the first that starts with ``until``, then ``...``."""
    return lambda lines: [*lines_from(None, until)(lines), "..."]


def section(title: str, until: str | None = None) -> Pick:
    """Pick the section under the heading line ``title``, up to ``until`` or its end."""
    return lines_from(title, until)


def joined(*picks: Pick) -> Pick:
    """Pick each part in turn, with ``...`` between them."""
    def pick(lines: list[str]) -> list[str]:
        out: list[str] = []
        for p in picks:
            out += ([] if not out or out[-1] == "..." else ["..."]) + p(lines)
        return out
    return pick


def whole(lines: list[str]) -> list[str]:
    return lines


REPORT = "ede-pcap report samples/incident.pcap"
ZOOMED = "ede-pcap report samples/incident.pcap --domain shop.example.com --interval 1min"

# name -> (the command as shown in a ```sh block, the part of its output shown)
OUTPUTS: dict[str, tuple[str, Pick]] = {
    "report-head": (REPORT, head("What to do")),
    "report-zones": (REPORT, section("Affected zones")),
    "report-first-action": (REPORT, section("What to do", until="2. ")),
    "report-resolvers": (REPORT, section("Resolvers")),
    "date": ("date -u -d @1710234718", whole),
    "codes": ("ede-pcap codes 7", whole),
    "zoomed": (ZOOMED, joined(head("What to do"), section("Timeline"))),
    "extract": ("ede-pcap extract samples/incident.pcap --code 7 --since "
                "2024-03-12T09:12:00Z --until 2024-03-12T09:20:30Z | cut -d, "
                "-f2,3,4,6,15,18,29 | head -6", whole),
    "tshark": ("tshark -r samples/incident.pcap -Y 'frame.number == 1648' -T fields -e "
               "frame.number -e dns.qry.name -e dns.flags.rcode -e "
               "dns.opt.ext_error.info_code -e dns.opt.ext_error.extra_text", whole),
    "incidents-json": ("ede-pcap report samples/incident.pcap --format json | python3 -c "
                       "'import json, sys; [print(i[\"code\"], i[\"name\"], i[\"start\"], "
                       "i[\"end\"], i[\"top_zones\"][0][\"zone\"]) for i in "
                       "json.load(sys.stdin)[\"incidents\"]]'", whole),
    "after": ("ede-pcap report samples/after.pcap --code 7 --code 6", whole),
}

# (output name, text it must show): what the prose around it states
FACTS: list[tuple[str, str]] = [
    ("report-head", "4,468: dns-query"),
    ("report-head", "308 with EDE (13.8%)"),
    ("report-head", "   7   09:12:00   09:20:30    137"),
    ("report-head", "   6   09:12:00   09:20:30    110"),
    ("report-zones", "shop.example.com (key"),
    ("report-first-action", "expiration = 1710234718"),  # the date command converts it
    ("date", "09:11:58"),
    ("zoomed", "   7   09:12:00   09:21:00    137"),
    ("zoomed", "  22   No Reachable Authority      4"),
    ("extract", "frame_number,ts,src_ip,dst_ip,qname,rcode,ede_code\n"),  # cut's fields
    ("extract", "\n1648,2024-03-12T09:12:00"),  # the first failure, the frame tshark shows
    ("tshark", "for DNSKEY shop.example.com., id = 24160"),
    ("after", "0 EDE options"),
    ("after", "No Extended DNS Errors matched the filters."),
]

# tshark's warning when run as root (in CI), which a reader running it never sees
ROOT_WARNING = re.compile(r'^Running as user "root" and group "root"\. This could be dangerous\.\n',
                          re.M)

MARKED = re.compile(r"(<!-- output: ([\w-]+) -->\n).*?(<!-- end output -->)", re.S)


def shown_commands(text: str) -> list[str]:
    """Return every command line of the ```sh blocks in ``text``, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def run_all(commands: list[str]) -> dict[str, str]:
    """Run each command as the reader would; return its standard output by command."""
    outputs: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "samples").symlink_to(ROOT / "samples")
        (work / "bin").mkdir()
        shim = work / "bin" / "ede-pcap"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m analyzer "$@"\n')
        shim.chmod(0o755)
        env = dict(os.environ, PATH=f"{work / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])),
                   COLUMNS="80", TZ="UTC", LC_ALL="C.UTF-8", NO_COLOR="1", TERM="dumb")
        for command in dict.fromkeys(commands):
            done = subprocess.run(["bash", "-c", command], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
            if done.returncode or ROOT_WARNING.sub("", done.stderr).strip():
                raise SystemExit(f"gen_walkthrough: `{command}` exited {done.returncode}:\n"
                                 f"{done.stderr}")
            outputs[command] = done.stdout
    return outputs


def to_markdown(text: str) -> str:
    """Return ``text`` (docs/walkthrough.md) with every marked output run afresh."""
    commands = shown_commands(text)
    unshown = [c for c, _ in OUTPUTS.values() if c not in commands]
    if unshown:
        raise SystemExit(f"gen_walkthrough: OUTPUTS runs commands the document does not "
                         f"show: {unshown}")
    outputs = run_all(commands)

    shown: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        command, pick = OUTPUTS[name]
        shown[name] = "\n".join(pick(outputs[command].rstrip("\n").splitlines()))
        return f"{match.group(1)}```text\n{shown[name]}\n```\n{match.group(3)}"

    result = MARKED.sub(fill, text)
    missing = set(OUTPUTS) - set(shown)
    if missing:
        raise SystemExit(f"gen_walkthrough: no <!-- output: NAME --> for {sorted(missing)}")
    for name, fact in FACTS:
        if fact not in "\n" + shown[name]:
            raise SystemExit(f"gen_walkthrough: the {name} output no longer shows {fact!r}, "
                             "which the prose states: update the prose and FACTS")
    return result


if __name__ == "__main__":
    DOC.write_text(to_markdown(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
