"""Tests for the ede-pcap command line, through typer's CliRunner, with golden files.

Golden files live in tests/golden/<sample>.<format>; docs/cli.md is generated from the
commands' --help. After a deliberate change, regenerate both and review the diff:

    UPDATE_GOLDEN=1 python3 -m pytest tests/test_cli.py -q
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden"
DOCS = REPO / "docs" / "cli.md"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text()) if (
    SAMPLES / "expected.json").exists() else {}

MAIN_SAMPLES = ["incident.pcap", "all-codes.pcapng", "transports.pcap"]
BROKEN_SAMPLES = ["broken/bad-utf8.pcap", "broken/bogus-linktype.pcap",
                  "broken/compression-loop.pcap", "broken/empty.pcap", "broken/garbage.pcap",
                  "broken/html-injection.pcap", "broken/lying-lengths.pcap",
                  "broken/snaplen.pcap", "broken/truncated.pcap"]
REPORT_FORMATS = ["text", "json", "csv", "markdown", "html"]

pytestmark = pytest.mark.skipif(not (SAMPLES / "incident.pcap").exists(),
                                reason="samples not generated: python3 samples/make_samples.py")


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # reports name captures as given on the command line: keep paths relative and stable
    monkeypatch.chdir(REPO)


def run(*args: str, input: bytes | str | None = None, **kw: object):
    runner = CliRunner()
    return runner.invoke(cli.app, list(args), input=input, prog_name="ede-pcap",
                         env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}, **kw)


def report_json(*args: str) -> dict:
    result = run("report", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"{path} missing; run UPDATE_GOLDEN=1 python3 -m pytest {__file__}"
    assert data.decode() == path.read_bytes().decode(), f"{name} differs from the golden file"


def golden_name(sample: str, fmt: str) -> str:
    stem = sample.replace("/", "-").rsplit(".", 1)[0]
    return f"{stem}.{fmt}"


# --- help, version, docs -------------------------------------------------------------------

COMMANDS = [[], ["report"], ["extract"], ["codes"], ["diff"], ["watch"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ede-pcap")
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: ede-pcap" in result.stdout
    assert "Example: ede-pcap" in result.stdout


def test_short_help_flag_and_completion_options() -> None:
    result = run("-h")
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    for command in ("report", "extract", "codes", "diff"):
        assert command in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    from analyzer import speedups

    assert result.stdout.startswith(f"ede-pcap {cli.version()} (")
    assert cli.version() != "unknown"
    if speedups.kernels is not None:
        assert f"(compiled kernels: {speedups.kernels.__file__})" in result.stdout


def test_version_names_pure_python_kernels() -> None:
    env = {**os.environ, "EDE_PCAP_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-m", "analyzer", "--version"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out == (f"ede-pcap {cli.version()} (pure Python kernels: EDE_PCAP_PURE_PYTHON is "
                   "set)\n")


def test_scale_out_without_dask_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer

    for name in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    result = run("report", "samples/incident.pcap", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr == ("ede-pcap: error: --scheduler needs Dask, which is not installed; "
                             "install it with pip install 'ede-pcap[dask]' (or use --jobs N on "
                             "one machine)\n")
    with pytest.raises(ImportError, match=r"read_ede_dask\(\) needs Dask"):
        analyzer.read_ede_dask(["samples/incident.pcap"])


def cli_reference() -> str:
    """Return docs/cli.md as generated from the --help of every command."""
    parts = [
        "# ede-pcap command line",
        "",
        "<!-- Generated from the commands' --help by tests/test_cli.py; do not edit by hand.",
        "     Regenerate: UPDATE_GOLDEN=1 python3 -m pytest tests/test_cli.py -k docs -->",
        "",
        "Exit status: 0 on success, also when packets were malformed (they are counted and",
        "reported); 1 when a capture cannot be read (after reporting the readable ones) or",
        "another error stops the run; 2 for a usage error. Reports and rows go to stdout or",
        "`--output`; progress and diagnostics go to stderr. `--format` defaults from the",
        "`--output` suffix (`.json`, `.csv`, `.md`, `.html`, `.jsonl`, `.parquet`); a",
        "suffix the command does not write, or one that contradicts `--format`, is a usage",
        "error.",
        "The report's JSON and CSV schemas are described in [report-schema.md](report-schema.md).",
    ]
    for command in COMMANDS:
        result = run(*command, "--help")
        assert result.exit_code == 0
        title = " ".join(["ede-pcap", *command])
        parts += ["", f"## {title}", "", "```text", f"$ {title} --help",
                  result.stdout.rstrip(), "```"]
    return "\n".join(parts) + "\n"


def test_docs_cli_md_is_current() -> None:
    text = cli_reference()
    if UPDATE:
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(text)
    assert DOCS.exists(), "docs/cli.md missing; regenerate (see module docstring)"
    assert DOCS.read_text() == text, "docs/cli.md is stale; regenerate (see module docstring)"


def test_docs_mention_every_option() -> None:
    import typer.main

    text = DOCS.read_text()
    group = typer.main.get_command(cli.app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert f"## ede-pcap {name}" in text
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in text, f"{name} {opt} not in docs/cli.md"


# --- golden reports ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", REPORT_FORMATS)
@pytest.mark.parametrize("sample", MAIN_SAMPLES)
def test_report_golden(sample: str, fmt: str) -> None:
    result = run("report", f"samples/{sample}", "--format", fmt, "--port", "53",
                 "--port", "5300")
    assert result.exit_code == 0, result.stderr
    golden(golden_name(sample, fmt), result.stdout_bytes)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("sample", BROKEN_SAMPLES)
def test_report_golden_broken(sample: str, fmt: str) -> None:
    result = run("report", f"samples/{sample}", "--format", fmt)
    assert result.exit_code == (1 if sample.endswith("garbage.pcap") else 0), result.stderr
    golden(golden_name(sample, fmt), result.stdout_bytes + b"--- stderr\n"
           + result.stderr_bytes)


@pytest.mark.parametrize("sample", MAIN_SAMPLES + BROKEN_SAMPLES)
def test_text_report_fits_80_columns(sample: str) -> None:
    result = run("report", f"samples/{sample}")
    for line in result.stdout.splitlines():
        assert len(line) <= 80, line


@pytest.mark.parametrize("sample", [s for s in MAIN_SAMPLES + BROKEN_SAMPLES
                                    if not s.endswith("garbage.pcap")])
def test_report_counts_match_the_generator(sample: str) -> None:
    expected = EXPECTED[sample]
    report = report_json(f"samples/{sample}", "--port", "53", "--port", "5300")
    summary = report["summary"]
    # the decoder counts a record cut off by the end of the file as one more packet
    # ("capture-truncated"); the generator counts whole records only
    cut = report["accounting"].get("capture-truncated", 0)
    assert summary["packets"] - cut == expected["packets"]
    assert summary["dns_responses"] == expected["dns_responses"]
    assert summary["responses_with_ede"] == expected["responses_with_ede"]
    assert summary["ede_options"] == expected["ede_options"]
    assert {str(c["code"]): c["count"] for c in report["codes"]} == expected["ede_by_code"]
    assert sum(report["accounting"].values()) == summary["packets"]


def test_incident_sample_finds_the_outage() -> None:
    report = report_json("samples/incident.pcap")
    found = {i["code"]: i for i in report["incidents"]}
    assert set(found) == {6, 7}
    for incident in found.values():
        assert incident["start"] == "2024-03-12T09:12:00Z"
        assert incident["end"] == "2024-03-12T09:20:30Z"
        assert incident["top_zones"][0]["zone"] == "shop.example.com"
    zones = {(z["code"], z["zone"]): z for z in report["zones"]}
    assert zones[(7, "shop.example.com")]["source"] == "extra-text"
    assert zones[(22, "lame.example.net")]["source"] == "extra-text"
    codes = {c["code"]: c for c in report["codes"]}
    assert codes[7]["first_seen"].startswith("2024-03-12T09:12:")


# --- filters and options --------------------------------------------------------------------

def test_code_filter_by_number_and_name() -> None:
    by_number = report_json("samples/incident.pcap", "--code", "7", "--code", "9")
    by_name = report_json("samples/incident.pcap", "-c", "signature-expired", "-c",
                          "DNSKEY Missing")
    assert [c["code"] for c in by_number["codes"]] == [7, 9]
    assert by_number["codes"] == by_name["codes"]
    assert by_number["summary"]["ede_options"] == 137 + 5
    assert by_number["filters"]["codes"] == [7, 9]


def test_domain_filter_is_a_label_suffix() -> None:
    report = report_json("samples/incident.pcap", "--domain", "shop.example.com")
    assert {c["code"] for c in report["codes"]} >= {6, 7}
    assert all(d["qname"] == "shop.example.com" or d["qname"].endswith(".shop.example.com")
               for d in report["domains"])
    none = report_json("samples/incident.pcap", "--domain", "hop.example.com")
    assert none["codes"] == []


def test_resolver_filter_ip_and_cidr() -> None:
    v6 = report_json("samples/incident.pcap", "--resolver", "2001:db8::/32")
    assert [r["resolver"] for r in v6["resolvers"]] == ["2001:db8::53"]
    v4 = report_json("samples/incident.pcap", "-r", "192.0.2.53")
    assert [r["resolver"] for r in v4["resolvers"]] == ["192.0.2.53"]
    assert v4["summary"]["ede_options"] + v6["summary"]["ede_options"] == 312


def test_since_until_window() -> None:
    report = report_json("samples/incident.pcap", "--since", "2024-03-12T09:12:00Z",
                         "--until", "2024-03-12 09:21")
    first = datetime.fromisoformat(report["summary"]["ede_first_seen"])
    last = datetime.fromisoformat(report["summary"]["ede_last_seen"])
    assert datetime(2024, 3, 12, 9, 12, tzinfo=UTC) <= first
    assert last < datetime(2024, 3, 12, 9, 21, tzinfo=UTC)
    assert report["timeseries"]["start"] == "2024-03-12T09:12:00Z"
    assert report["filters"]["since"] == "2024-03-12T09:12:00Z"


def test_port_option() -> None:
    only53 = report_json("samples/transports.pcap")
    both = report_json("samples/transports.pcap", "-p", "53", "-p", "5300")
    assert both["summary"]["dns_responses"] == only53["summary"]["dns_responses"] + 1
    none = report_json("samples/incident.pcap", "--port", "5353")
    assert none["summary"]["dns_responses"] == 0
    assert none["accounting"] == {"not-dns-port": 4468}


def test_jobs_give_the_same_report() -> None:
    files = ["samples/before.pcap", "samples/after.pcap", "samples/transports.pcap"]
    assert report_json(*files, "--jobs", "2") == report_json(*files)


def test_interval_and_top() -> None:
    report = report_json("samples/incident.pcap", "--interval", "1min", "--top", "2")
    assert report["timeseries"]["interval"] == "1min"
    assert report["timeseries"]["buckets"] == 30
    assert report["options"] == {"top": 2, "interval": "1min", "interval_chosen": False}
    per_code: dict[int, int] = {}
    for d in report["domains"]:
        per_code[d["code"]] = per_code.get(d["code"], 0) + 1
    assert max(per_code.values()) == 2
    assert len(report["resolvers"]) <= 2


def test_too_fine_interval_is_a_usage_error() -> None:
    result = run("report", "samples/before.pcap", "samples/after.pcap", "--interval", "1s",
                 "--format", "json")
    assert result.exit_code == 2
    assert "--interval" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("args", [
    ["report", "samples/incident.pcap", "--format", "parquet"],
    ["report", "samples/incident.pcap", "--format", "yaml"],
    ["extract", "samples/incident.pcap", "--format", "html"],
    ["codes", "--format", "csv"],
    ["report", "samples/incident.pcap", "--code", "99999"],
    ["report", "samples/incident.pcap", "--code", "bogosity"],
    ["report", "samples/incident.pcap", "--domain", "a..b"],
    ["report", "samples/incident.pcap", "--resolver", "not-an-ip"],
    ["report", "samples/incident.pcap", "--since", "last tuesday"],
    ["report", "samples/incident.pcap", "--since", "2024-03-13", "--until", "2024-03-12"],
    ["report", "samples/incident.pcap", "--interval", "soon"],
    ["report", "samples/incident.pcap", "--interval", "0s"],
    ["report", "samples/incident.pcap", "--top", "0"],
    ["report", "samples/incident.pcap", "--port", "70000"],
    ["report", "samples/incident.pcap", "--no-such-option"],
    ["report"],
    ["frobnicate"],
    ["codes", "123456"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "Usage: ede-pcap" in result.stdout + result.stderr
    assert result.exit_code in (0, 2)


# --- inputs: files, directories, globs, stdin ------------------------------------------------

def test_directory_is_searched_recursively() -> None:
    result = run("report", "samples/broken", "--quiet", "--format", "json")
    paths = [c["path"] for c in json.loads(result.stdout)["captures"]]
    assert paths == sorted(f"samples/{s}" for s in BROKEN_SAMPLES)


def test_directory_run_exits_1_for_the_unreadable_file_after_reporting() -> None:
    result = run("report", "samples/broken", "--format", "json", "--quiet")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["summary"]["captures_failed"] == 1
    lines = result.stderr.splitlines()
    assert lines == [line for line in lines if line.startswith("ede-pcap: error: ")]
    assert len(lines) == 1 and "samples/broken/garbage.pcap" in lines[0]


def test_glob_patterns_are_expanded() -> None:
    report = report_json("samples/transports-*.pcap")
    assert [c["path"] for c in report["captures"]] == [
        "samples/transports-null.pcap", "samples/transports-raw.pcap",
        "samples/transports-sll.pcap"]
    assert report["summary"]["ede_options"] == 9


def test_glob_without_matches_is_an_error() -> None:
    result = run("report", "samples/nothing-*.pcap")
    assert result.exit_code == 1
    assert result.stderr.startswith("ede-pcap: error: samples/nothing-*.pcap: no files match")


def test_directory_without_captures_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = run("report", str(tmp_path))
    assert result.exit_code == 1
    assert "no capture files" in result.stderr


def test_stdin() -> None:
    data = (SAMPLES / "incident.pcap").read_bytes()
    result = run("report", "-", "--format", "json", input=data)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["captures"][0]["path"] == "-"
    assert report["summary"]["ede_options"] == 312


def test_stdin_twice_is_a_usage_error() -> None:
    assert run("report", "-", "-", input=b"").exit_code == 2


# --- exit codes and stderr -----------------------------------------------------------------

def test_missing_file_exits_1_with_one_line() -> None:
    result = run("report", "samples/no-such.pcap")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ede-pcap: error: samples/no-such.pcap: no such file; check the path"]


def test_not_a_capture_exits_1_naming_the_file_and_what_to_do() -> None:
    result = run("report", "samples/broken/garbage.pcap")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("ede-pcap: error: samples/broken/garbage.pcap: ")
    assert "editcap" in line or "tshark" in line


def test_readable_captures_are_reported_before_exit_1() -> None:
    result = run("report", "samples/no-such.pcap", "samples/incident.pcap", "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["summary"]["ede_options"] == 312
    assert [c["error"] is not None for c in report["captures"]] == [True, False]
    assert "samples/no-such.pcap" in result.stderr


def test_malformed_packets_exit_0_and_are_reported() -> None:
    result = run("report", "samples/broken/lying-lengths.pcap")
    assert result.exit_code == 0
    assert "malformed-udp-length 1" in result.stdout
    assert result.stderr.startswith("ede-pcap: skipped ")
    assert "malformed-udp-length 1" in result.stderr.splitlines()[0]
    quiet = run("report", "samples/broken/lying-lengths.pcap", "--quiet")
    assert quiet.stderr == ""
    assert quiet.stdout == result.stdout


def test_strict_stops_at_the_first_malformed_packet() -> None:
    result = run("report", "samples/broken/compression-loop.pcap", "--strict")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "ede-pcap: error: --strict: stopped at a malformed packet "
        "(samples/broken/compression-loop.pcap frame 2: dns-bad-pointer); run "
        "without --strict to count such packets and go on, or with --debug for the traceback"]
    debug = run("report", "samples/broken/compression-loop.pcap", "--strict", "--debug")
    from analyzer.errors import Malformed

    assert isinstance(debug.exception, Malformed)


def test_truncated_capture_keeps_the_rows_read() -> None:
    result = run("report", "samples/broken/truncated.pcap", "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["accounting"]["capture-truncated"] == 1
    assert report["summary"]["ede_options"] == 2


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd", "lz4"])
def test_truncated_compressed_capture_behaves_like_a_truncated_pcap(kind: str,
                                                                    tmp_path: Path) -> None:
    import gzip
    import lzma

    import lz4.frame
    import zstandard

    compress = {"gzip": gzip.compress, "xz": lzma.compress, "lz4": lz4.frame.compress,
                "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}[kind]
    whole = compress((SAMPLES / "incident.pcap").read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    result = run("report", str(cut), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "ede-pcap: skipped 1 packet: capture-truncated 1\n"
    report = json.loads(result.stdout)
    capture = report["captures"][0]
    assert capture["error"] is None and capture["compression"] == kind
    assert 1000 < report["summary"]["dns_responses"] < 2234
    text = " ".join(run("report", str(cut)).stdout.split())
    assert (f"cut off: the {kind} data ends early, at byte {capture['truncated_at']:,} of the "
            "decompressed capture; the records before it are reported") in text


def test_compressed_capture_cut_inside_its_first_block_is_an_error(tmp_path: Path) -> None:
    import bz2

    whole = bz2.compress((SAMPLES / "incident.pcap").read_bytes())  # one 900 kB block
    cut = tmp_path / "cut.pcap.bz2"
    cut.write_bytes(whole[: len(whole) // 2])
    result = run("report", str(cut))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"ede-pcap: error: {cut}: is cut off before its first bzip2 block ends, so nothing in "
        "it can be read; the file was truncated; copy it again in full")


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    result = run("report", "samples/incident.pcap")
    assert "reading" not in result.stderr
    assert result.stderr == ""


def test_progress_callback_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    with cli._progress(["samples/incident.pcap"], quiet=False) as update:
        assert update is not None
        update(1000, 10)
        update(559_393, 4468)
    with cli._progress(["samples/incident.pcap"], quiet=True) as update:
        assert update is None


def test_output_to_a_directory_is_one_line_then_debug_raises(tmp_path: Path) -> None:
    result = run("report", "samples/incident.pcap", "--output", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"ede-pcap: error: {tmp_path}: is a directory; give a file name for --output"]
    debug = run("report", "samples/incident.pcap", "--output", str(tmp_path), "--debug")
    assert debug.exit_code == 1
    from analyzer.errors import EdePcapError

    assert isinstance(debug.exception, EdePcapError)


def test_output_file_format_from_suffix(tmp_path: Path) -> None:
    for name, check in (("r.json", lambda t: json.loads(t)["schema_version"] == 1),
                        ("r.html", lambda t: t.startswith("<!DOCTYPE html>")),
                        ("r.md", lambda t: t.startswith("# Extended DNS Errors report")),
                        ("r.csv", lambda t: t.startswith("section,")),
                        ("r.txt", lambda t: t.startswith("Extended DNS Errors"))):
        target = tmp_path / name
        result = run("report", "samples/all-codes.pcapng", "-o", str(target))
        assert result.exit_code == 0 and result.stdout == ""
        assert check(target.read_text(encoding="utf-8")), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["r.json", "r.html", "r.md", "r.csv", "r.txt"])  # no partial files left


@pytest.mark.parametrize(("args", "message"), [
    (["report", "samples/incident.pcap", "-o", "{tmp}/r.parquet"],
     "means parquet, which this command does not write (it writes text, json, csv, "
     "markdown, html)"),
    (["extract", "samples/incident.pcap", "-o", "{tmp}/r.html"],
     "means html, which this command does not write (it writes csv, jsonl, parquet)"),
    (["codes", "-o", "{tmp}/c.html"],
     "means html, which this command does not write (it writes text, json, markdown)"),
    (["diff", "samples/before.pcap", "samples/after.pcap", "-o", "{tmp}/d.jsonl"],
     "means jsonl, which this command does not write"),
    (["report", "samples/incident.pcap", "-f", "json", "-o", "{tmp}/r.html"],
     "means html but --format is json"),
    (["extract", "samples/incident.pcap", "-f", "csv", "-o", "{tmp}/r.parquet"],
     "means parquet but --format is csv"),
])
def test_output_suffix_that_contradicts_is_a_usage_error(args: list[str], message: str,
                                                          tmp_path: Path) -> None:
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(("command", "valid", "invalid"), [
    (["report", "samples/incident.pcap"], "text, json, csv, markdown, html", "jsonl"),
    (["extract", "samples/incident.pcap"], "csv, jsonl, parquet", "html"),
    (["codes"], "text, json, markdown", "csv"),
    (["diff", "samples/before.pcap", "samples/after.pcap"], "text, json, csv, markdown, html",
     "parquet"),
])
def test_format_help_and_errors_list_only_valid_choices(command: list[str], valid: str,
                                                        invalid: str) -> None:
    result = run(*command, "--format", invalid)
    assert result.exit_code == 2
    quoted = ", ".join(f"'{v}'" for v in valid.split(", "))
    assert f"'{invalid}' is not one of {quoted}." in " ".join(result.stderr.split())
    names = valid.replace(", ", "|")
    assert f"--format [{names}]" in run(command[0], "--help").stdout


def test_format_and_suffix_that_agree(tmp_path: Path) -> None:
    target = tmp_path / "r.PARQUET"
    result = run("extract", "samples/incident.pcap", "-f", "Parquet", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes()[:4] == b"PAR1"
    other = tmp_path / "rows.out"  # a suffix that names no format: --format decides
    assert run("extract", "samples/incident.pcap", "-f", "jsonl", "-o", str(other)).exit_code == 0
    assert json.loads(other.read_text().splitlines()[0])["capture"] == "samples/incident.pcap"


def test_csv_formula_cells_are_neutralised_in_report_and_extract() -> None:
    for command in ("report", "extract"):
        result = run(command, "samples/broken/html-injection.pcap", "--format", "csv")
        assert result.exit_code == 0
        rows = list(csv.reader(io.StringIO(result.stdout_bytes.decode(), newline="")))
        cells = [c for row in rows for c in row]
        assert any(c.startswith("'=") for c in cells), command
        for cell in cells:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (command, cell)


# --- extract -------------------------------------------------------------------------------

def test_extract_csv_rows_are_ede_options() -> None:
    result = run("extract", "samples/incident.pcap")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode(), newline="")))
    assert len(rows) == 312
    from analyzer import frame, textfacts

    assert list(rows[0]) == [*frame.EDE_COLUMNS, *textfacts.FACT_COLUMNS]
    assert {r["ede_code"] for r in rows} == {"3", "6", "7", "9", "15", "18", "22"}
    seven = next(r for r in rows if r["ede_code"] == "7")
    assert (seven["fact_zone"], seven["fact_key_tag"], seven["fact_expiration"]) == (
        "shop.example.com", "24160", "2024-03-12T09:11:58.000000Z")


def test_extract_all_responses_has_no_fact_columns() -> None:
    result = run("extract", "samples/incident.pcap", "--all-responses", "-f", "jsonl")
    assert result.exit_code == 0
    assert not any(k.startswith("fact_") for k in json.loads(result.stdout.splitlines()[0]))


def test_extract_jsonl_with_filters() -> None:
    result = run("extract", "samples/incident.pcap", "--format", "jsonl", "--code", "9",
                 "--resolver", "192.0.2.53")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5
    assert {r["ede_code"] for r in records} == {9}
    assert records[0]["ts"].endswith("Z")


def test_extract_all_responses_parquet(tmp_path: Path) -> None:
    import pandas as pd

    target = tmp_path / "responses.parquet"
    result = run("extract", "samples/incident.pcap", "--all-responses", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    df = pd.read_parquet(target)
    assert len(df) == 2234
    assert (df["ede_codes"].fillna("") != "").sum() == 308
    filtered = tmp_path / "seven.parquet"
    run("extract", "samples/incident.pcap", "--all-responses", "-c", "7", "-o", str(filtered))
    assert len(pd.read_parquet(filtered)) == 137


def test_extract_parquet_to_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: True, raising=False)
    result = run("extract", "samples/incident.pcap", "--format", "parquet")
    assert result.exit_code in (0, 2)  # CliRunner swaps stdout; the check is on the real one


# --- codes ---------------------------------------------------------------------------------

def test_codes_text_json_markdown() -> None:
    text = run("codes")
    assert text.exit_code == 0
    assert "Signature Expired" in text.stdout and "49152-65535 private use" in text.stdout
    for line in text.stdout.splitlines():
        assert len(line) <= 80
    records = json.loads(run("codes", "--format", "json").stdout)
    assert [r["code"] for r in records] == list(range(34))
    assert {"code", "name", "category", "meaning", "next_step"} <= set(records[0])
    markdown = run("codes", "-f", "markdown").stdout
    assert markdown.startswith("# Extended DNS Error codes")


def test_codes_detail() -> None:
    result = run("codes", "7", "dnssec-bogus", "65000")
    assert result.exit_code == 0
    assert "7 Signature Expired" in result.stdout
    assert "6 DNSSEC Bogus" in result.stdout
    assert "65000 Private Use (65000)" in result.stdout
    assert "Next step:" in result.stdout
    records = json.loads(run("codes", "300", "--format", "json").stdout)
    assert records[0]["status"] == "unassigned"
    assert run("codes", "7", "-f", "markdown").stdout.startswith("## 7 — Signature Expired")


# --- process-level -------------------------------------------------------------------------

def test_cli_import_is_light() -> None:
    code = ("import sys; from analyzer import cli; "
            "cli.app(['codes', '--format', 'json'], standalone_mode=False); "
            "heavy = {'pandas', 'pyarrow', 'numpy', 'matplotlib'} & set(sys.modules); "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "analyzer", "report", "samples/incident.pcap",
                           "--format", "json", "--code", "9"], cwd=REPO, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["ede_options"] == 5


def test_broken_pipe_is_quiet() -> None:
    done = subprocess.run(
        f"{sys.executable} -m analyzer extract samples/incident.pcap samples/incident.pcap "
        "| head -c 100 >/dev/null", shell=True, cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert "Traceback" not in done.stderr


# --- small report wording ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "html"])
def test_filters_matching_nothing_say_so(fmt: str) -> None:
    result = run("report", "samples/after.pcap", "--code", "7", "--code", "6", "-f", fmt)
    assert result.exit_code == 0
    assert "matched the filters" in result.stdout
    assert "none of the DNS responses carried" not in result.stdout


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_a_cut_file_says_where_it_ends(fmt: str) -> None:
    report = report_json("samples/broken/truncated.pcap")
    at = report["captures"][0]["truncated_at"]
    assert at == 1137
    result = run("report", "samples/broken/truncated.pcap", "-f", fmt)
    assert "ends mid-record at byte 1,137" in " ".join(result.stdout.split())


# --- diff ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_diff_golden(fmt: str) -> None:
    result = run("diff", "samples/before.pcap", "samples/after.pcap", "--format", fmt)
    assert result.exit_code == 0, result.stderr
    golden(f"diff-before-after.{fmt}", result.stdout_bytes)


def test_diff_shows_the_fix_working() -> None:
    result = run("diff", "samples/before.pcap", "samples/after.pcap", "-f", "json")
    d = json.loads(result.stdout)
    zones = {(z["code"], z["zone"]): z["change"] for z in d["zones"] if z["notable"]}
    assert zones[(7, "shop.example.com")] == zones[(6, "shop.example.com")] == "disappeared"
    codes = {c["code"]: c["change"] for c in d["codes"]}
    assert codes[15] == "appeared" and codes[7] == codes[6] == "disappeared"
    assert codes[3] == codes[22] == "unchanged"
    text = run("diff", "samples/before.pcap", "samples/after.pcap").stdout
    assert "gone: 7 Signature Expired, 6 DNSSEC Bogus; new: 15 Blocked" in " ".join(
        text.split())
    for line in text.splitlines():
        assert len(line) <= 80, line


def test_diff_of_two_windows_and_options() -> None:
    result = run("diff", "samples/incident.pcap", "--split-at", "2024-03-12T09:12:00Z",
                 "-f", "json", "--factor", "3", "--min-change", "10", "--code", "7")
    assert result.exit_code == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["options"] == {"factor": 3.0, "min_change": 10, "split_at": "2024-03-12T09:12:00Z"}
    assert d["filters"]["codes"] == [7]
    assert [(c["code"], c["change"], c["before"], c["after"]) for c in d["codes"]] == [
        (7, "appeared", 0, 137)]


@pytest.mark.parametrize("args", [
    ["diff", "samples/before.pcap"],
    ["diff", "samples/before.pcap", "samples/after.pcap", "samples/incident.pcap"],
    ["diff", "samples/before.pcap", "samples/after.pcap", "--factor", "1"],
    ["diff", "samples/before.pcap", "--split-at", "yesterday"],
    ["diff", "samples/before.pcap", "samples/after.pcap", "--format", "jsonl"],
])
def test_diff_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(("at", "where"), [
    ("2020-01-01", "before"), ("2024-03-12T09:00:01Z", "before"),
    ("2024-03-12T09:29:59Z", "after"), ("2030-01-01", "after")])
def test_diff_split_outside_the_capture_is_an_error(at: str, where: str) -> None:
    result = run("diff", "samples/incident.pcap", "--split-at", at)
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    assert f"is {where} the capture, which runs from 2024-03-12T09:00:01.165130Z to " \
        "2024-03-12T09:29:58.714376Z; choose a time inside it" in result.stderr
    inside = run("diff", "samples/incident.pcap", "--split-at", "2024-03-12T09:29:58Z")
    assert inside.exit_code == 0


def test_diff_with_an_unreadable_side_exits_1() -> None:
    result = run("diff", "samples/before.pcap", "samples/no-such.pcap")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "ede-pcap: error: samples/no-such.pcap: no such file; check the path"]


def test_a_report_imports_only_what_it_needs() -> None:
    """Start-up is a third of a million-packet report: keep heavy modules out of it.

    pydantic came in with typer 0.29 (pyproject.toml caps typer below it); rich, dask and
    the Parquet writer are for other commands and formats.
    """
    heavy = ("pydantic", "dask", "distributed", "rich", "pyarrow.parquet", "matplotlib")
    code = (
        "import sys\n"
        "from analyzer import cli\n"
        "try:\n"
        f"    cli.app(['report', {str(SAMPLES / 'incident.pcap')!r}, '--format', 'json',"
        " '--output', '/dev/null'], standalone_mode=False)\n"
        "finally:\n"
        f"    print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- small things a user trips over ---------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_counts_of_one_are_singular(fmt: str) -> None:
    import re

    for sample in ("samples/all-codes.pcapng", "samples/broken/bad-utf8.pcap",
                   "samples/transports.pcap"):
        out = run("report", sample, "-f", fmt).stdout
        wrong = re.findall(r"(?<![\d,.])1 (EDEs|codes|domains|zones|resolvers|packets|"
                           r"EDE options)\b", out)
        assert wrong == [], (sample, wrong)
    assert "1 EDE," in " ".join(run("report", "samples/all-codes.pcapng", "-f", fmt)
                                .stdout.split())


def test_accounting_line_has_thousands_separators() -> None:
    summary = report_json("samples/incident.pcap")["summary"]
    assert summary["accounting_line"] == (
        "4,468 packets: dns-query 2,234, dns-response 2,234")


def test_extract_csv_writes_exact_seconds_and_lower_case_booleans() -> None:
    out = run("extract", "samples/all-codes.pcapng").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    latencies = [r["latency"] for r in rows if r["latency"]]
    assert latencies and all(len(v.split(".")[-1]) <= 9 for v in latencies)
    responses = run("extract", "samples/incident.pcap", "--all-responses").stdout
    assert ",1.800825\r\n" in responses or ",1.800825\n" in responses
    assert "1.8008250000000001" not in responses
    for column in ("aa", "tc", "rd", "ra", "ad", "cd", "extra_text_utf8_valid"):
        assert {r[column] for r in rows} <= {"true", "false", ""}, column
    diff = run("diff", "samples/before.pcap", "samples/after.pcap", "-f", "csv").stdout
    assert "True" not in diff and ",true" in diff and ",false" in diff  # the same spelling


def test_jsonl_does_not_escape_slashes() -> None:
    out = run("extract", "samples/incident.pcap", "-f", "jsonl").stdout
    first = out.splitlines()[0]
    assert first.startswith('{"capture":"samples/incident.pcap",')
    assert "\\/" not in out
    assert all(json.loads(line)["capture"] == "samples/incident.pcap"
               for line in out.splitlines())


def test_errors_on_stdin_say_standard_input() -> None:
    result = run("report", "-", input=b"this is not a capture")
    assert result.exit_code == 1
    assert result.stderr == ("ede-pcap: error: standard input: is not a pcap, pcapng or "
                             "dnstap file at byte 0; convert a capture with editcap or "
                             "tshark -F pcap\n")


def test_output_in_a_missing_directory_names_the_path_given(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.html"
    result = run("report", "samples/incident.pcap", "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr == (f"ede-pcap: error: {target}: the directory {target.parent} does "
                             "not exist; create it or give another --output path\n")
    assert ".partial" not in result.stderr


def test_usage_names_the_captures_plainly() -> None:
    result = run("report")
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ede-pcap report [OPTIONS] CAPTURE...\n")
    assert "{" not in run("diff").stderr.splitlines()[0]


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef ede-pcap"),
                                               ("bash", "complete -o default -F"),
                                               ("fish", "complete --command ede-pcap")])
def test_show_completion_for_a_named_shell(shell: str, marker: str) -> None:
    out = subprocess.run([sys.executable, "-c", "from analyzer.cli import main; main()",
                          "--show-completion", shell], capture_output=True, text=True,
                         check=True).stdout
    assert marker in out


def test_timeline_says_how_many_codes_it_leaves_out() -> None:
    out = run("report", "samples/all-codes.pcapng").stdout
    timeline = out[out.index("Timeline:"):].splitlines()
    shown = [line for line in timeline[1:] if "max " in line]
    assert len(shown) == 12
    assert "+25 more codes: --code N shows one, --format json or csv shows all" in timeline
    assert not [line for line in run("report", "samples/incident.pcap").stdout.splitlines()
                if line.startswith("+")]


def test_width_option_and_names_unbroken_when_there_is_room(tmp_path: Path) -> None:
    narrow = run("report", "samples/all-codes.pcapng").stdout
    wide = run("report", "samples/all-codes.pcapng", "--width", "140").stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert max(len(line) for line in wide.splitlines()) > 100
    assert "No Reachable Auth…" in narrow
    assert "22 No Reachable Authority " in wide and "…" not in wide[wide.index("Timeline"):]
    target = tmp_path / "r.txt"  # --width also holds for a file
    assert run("report", "samples/all-codes.pcapng", "-w", "140", "-o", str(target)) \
        .exit_code == 0
    assert target.read_text() == wide
    codes = run("codes", "--width", "120").stdout
    assert max(len(line) for line in codes.splitlines()) > 80
    assert run("report", "samples/incident.pcap", "--width", "10").exit_code == 2
