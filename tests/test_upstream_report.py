"""``report --upstream``: the resolvers' upstream legs and the forwarders, from a crafted
capture (the one tests/test_legs.py checks ``analyzer.legs`` on), in every format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import cli

scapy = pytest.importorskip("scapy.all")

from test_legs import (  # noqa: E402 - after the scapy check, like test_legs itself
    AUTHORITY,
    CLIENT,
    CLIENT2,
    FORWARDER,
    RESOLVER,
    _ede,
    _q,
    _r,
    _udp,
)


@pytest.fixture()
def capture(tmp_path: Path) -> Path:
    www, shop = "www.shop.example.com", "shop.example.com"
    packets = [
        # the resolver asks the authority twice: one timeout, one SERVFAIL; then EDE 22
        _udp(0.000, CLIENT, RESOLVER, 40000, 53, _q(www, 1)),
        _udp(0.001, RESOLVER, AUTHORITY, 50000, 53, _q(shop, 2, "DNSKEY")),
        _udp(0.002, RESOLVER, AUTHORITY, 50001, 53, _q(www, 3)),
        _udp(0.010, AUTHORITY, RESOLVER, 53, 50001, _r(www, 3, 2)),
        _udp(0.020, RESOLVER, CLIENT, 53, 40000,
             _r(www, 1, 2, _ede(22, b"at delegation shop.example.com."))),
        # a forwarder gets EDE 6 from the resolver and drops it towards its client
        _udp(1.000, CLIENT2, FORWARDER, 40001, 53, _q("x.example.org", 4)),
        _udp(1.001, FORWARDER, RESOLVER, 50002, 53, _q("x.example.org", 5)),
        _udp(1.010, RESOLVER, FORWARDER, 53, 50002, _r("x.example.org", 5, 2, _ede(6))),
        _udp(1.011, FORWARDER, CLIENT2, 53, 40001, _r("x.example.org", 4, 2)),
    ]
    path = tmp_path / "legs.pcap"
    scapy.wrpcap(str(path), packets)
    return path


def run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.app, list(args), prog_name="ede-pcap", input=input,
                              env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})


def test_upstream_section(capture: Path) -> None:
    result = run("report", str(capture), "--upstream", "-f", "json")
    assert result.exit_code == 0, result.stderr
    section = json.loads(result.stdout)["upstream"]
    codes = {(e["code"], e["zone"]): e for e in section["codes"]}
    lame = codes[(22, "shop.example.com")]
    assert (lame["edes"], lame["edes_with_upstream"], lame["upstream_queries"],
            lame["timeouts"], lame["rcodes"], lame["servers"]) == (
        1, 1, 2, 1, {"SERVFAIL": 1}, [AUTHORITY])
    assert section["forwarders"] == [{
        "resolver": FORWARDER, "upstream_server": RESOLVER, "verdict": "dropped", "count": 1,
        "upstream_ede": [6], "client_ede": [], "examples": ["x.example.org"]}]


def test_upstream_is_opt_in(capture: Path) -> None:
    result = run("report", str(capture), "-f", "json")
    assert "upstream" not in json.loads(result.stdout)


@pytest.mark.parametrize("fmt", ["text", "csv", "markdown", "html"])
def test_every_format_shows_the_legs(capture: Path, fmt: str) -> None:
    result = run("report", str(capture), "--upstream", "-f", fmt)
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert AUTHORITY in out and "SERVFAIL 1" in out
    assert "dropped" in out and FORWARDER in out
    if fmt == "text":
        assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_upstream_with_stdin_is_a_usage_error(capture: Path) -> None:
    result = run("report", "-", "--upstream", input=capture.read_bytes())
    assert result.exit_code == 2
    assert "--upstream" in result.stderr
