"""Analysis never goes online: no DNS lookup, no reverse lookup, no connection of any kind.

A capture names addresses and domains an investigator may not want contacted (and an
attacker may be watching for); resolving one would tip them off and leak the analyst's
address. The whole CLI runs here, in every format, over every sample (and the peer
captures when present), with the socket functions that reach the network replaced by ones
that fail and record the call. A second test runs the CLI in a Linux network namespace that
has no network at all, when ``unshare`` is allowed to make one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_safe_output import HOSTILE_CAPTURE
from typer.testing import CliRunner

from analyzer.cli import app

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parents[2] / "shared" / "peer-captures"
REPORT_FORMATS = ("text", "json", "csv", "markdown", "html")
EXTRACT_FORMATS = ("csv", "jsonl", "parquet")


class NetworkUsed(AssertionError):
    """The analyzer tried to reach the network."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every call that would reach the network fail; return the list of attempts."""
    calls: list[str] = []

    def refuse(what: str):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(f"{what}{args[1:] if what.startswith('socket.socket') else args}")
            raise NetworkUsed(f"{what} called during analysis")

        return call

    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        monkeypatch.setattr(socket.socket, name, refuse(f"socket.socket.{name}"))
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                 "getnameinfo", "getfqdn", "create_connection"):
        monkeypatch.setattr(socket, name, refuse(f"socket.{name}"))
    return calls


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every sample, the hostile capture, and the peer captures when present."""
    folder = tmp_path_factory.mktemp("offline")
    hostile = folder / "hostile.pcap"
    hostile.write_bytes(HOSTILE_CAPTURE)
    paths = sorted(str(p) for p in (ROOT / "samples").rglob("*.pcap*"))
    if PEERS.is_dir():
        paths += sorted(str(p) for p in PEERS.rglob("*") if p.is_file()
                        and p.suffix not in (".tsv", ".md"))
    return [*paths, str(hostile)]


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_the_guard_catches_a_lookup(no_network: list[str]) -> None:
    with pytest.raises(NetworkUsed):
        socket.gethostbyaddr("192.0.2.1")
    with pytest.raises(NetworkUsed):
        socket.create_connection(("192.0.2.1", 53))
    assert len(no_network) == 2


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_report_in_every_format_is_offline(no_network: list[str], captures: list[str],
                                           fmt: str) -> None:
    code, out, err = _run(["report", *captures, "--format", fmt, "--quiet"])
    # exit 1: samples/broken/garbage.pcap is not a capture; everything else is reported
    assert code == 1, err
    assert "garbage.pcap" in err and "internal error" not in err
    assert out
    assert no_network == []


@pytest.mark.parametrize("fmt", EXTRACT_FORMATS)
def test_extract_in_every_format_is_offline(no_network: list[str], captures: list[str],
                                            tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"rows.{fmt}"
    code, _, err = _run(["extract", *captures, "--format", fmt, "--output", str(target),
                         "--quiet", "--all-responses"])
    assert code == 1 and "internal error" not in err, err
    assert target.stat().st_size > 0
    assert no_network == []


def test_filters_jobs_and_codes_are_offline(no_network: list[str], captures: list[str]) -> None:
    # --resolver parses addresses and networks; --jobs forks workers (which inherit the
    # guard); codes reads the catalogue.
    code, out, err = _run(["report", *captures, "--resolver", "192.0.2.0/24", "--resolver",
                           "2001:db8::/32", "--domain", "example.com", "--since",
                           "2020-01-01", "--jobs", "2", "--format", "json", "--quiet"])
    assert code == 1 and "internal error" not in err, err
    code, out, _ = _run(["codes", "7", "--format", "json"])
    assert code == 0 and out
    assert no_network == []


def _unshare() -> str:
    path = shutil.which("unshare")
    if path is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run([path, "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unprivileged network namespaces are not allowed here")
    return path


def test_cli_runs_in_a_namespace_without_network(captures: list[str], tmp_path: Path) -> None:
    # Every format ran offline above; here two, at once, in a namespace with no network.
    unshare = _unshare()
    runs = {fmt: subprocess.Popen(
        [unshare, "-rn", sys.executable, "-m", "analyzer", "report", *captures, "--format",
         fmt, "--quiet", "--output", str(tmp_path / f"report.{fmt}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for fmt in ("text", "html")}
    for fmt, run in runs.items():
        _, err = run.communicate(timeout=300)
        assert run.returncode == 1, err
        assert "internal error" not in err
        assert (tmp_path / f"report.{fmt}").stat().st_size > 0
