"""Real resolvers writing dnstap to ``ede-pcap watch unix:PATH``.

Unbound, BIND (named) and Knot Resolver (kresd) run as real processes on 127.0.0.1, each on
a free high port, sending their client queries and responses as dnstap to the socket of a
real ``watch`` process. They resolve from a local authoritative BIND, so they give EDEs
without the internet:

- ``www.broken.example``: unsigned, but Unbound has a trust anchor for ``broken.example``
  (a DS matching no key): SERVFAIL, EDE 9 (DNSKEY Missing).
- ``www.expired.example``: signed, with signatures that expired in 2020, under a valid
  signed ``example.`` whose key Unbound trusts: SERVFAIL, EDE 7 (Signature Expired).
- ``www.stale.example``: TTL 1 s; once the authoritative server is stopped, BIND answers it
  from stale cache: EDE 3 (Stale Answer).
- ``x.blocked.example``: a kresd policy DENY: NXDOMAIN, EDE 15 (Blocked).
- any query from 127.0.0.2 is refused by each resolver's ACL: EDE 18 (Prohibited).

The oracle is independent of ede-pcap: the EDE options in the responses this test itself
received, parsed by dnspython. The scraped ``ede_options_total`` must equal it code by code,
and ``dns_responses_total`` must equal the number of responses received (nothing lost).
Each resolver is stopped with SIGTERM, so it sends STOP and must get FINISH: its connection
counts as ``finished``, and its own log must show no dnstap error.

No root and no network namespace: every server listens on 127.0.0.1 (the client source
127.0.0.2 is on Linux's loopback too), runs as the current user and keeps its files in
tmp_path. Every wait is bounded (``WAIT_S``, or a query's timeout).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest
from conftest import require_tool
from watchproc import (
    ROOT,
    WAIT_S,
    by_label,
    expected,
    free_port,
    scrape,
    settled,
    start_watch,
    total,
    wait_for,
)

REAL = ROOT / "tests" / "real" / "dnstap"
LOGS = [REAL / f"{name}.dnstap" for name in ("unbound", "bind", "knot-resolver", "dnsdist")]
LOCAL, REFUSED_CLIENT = "127.0.0.1", "127.0.0.2"
QUERY_TIMEOUT_S = 5.0
# a dnstap complaint in a resolver's log (Unbound: "dnstap io: ...", BIND: "dnstap ...",
# kresd: "[dnstap] ...")
DNSTAP_ERROR = re.compile(r"(?i)^.*dnstap.*\b(error|fail\w*|cannot|could not|unable|refused)"
                          r"\b.*$", re.M)

STALE_ZONE = """$ORIGIN stale.example.
$TTL 1
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 1
@ NS ns.example.
www A 192.0.2.90
tcp A 192.0.2.91
"""
PARENT_ZONE = """$ORIGIN example.
$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
ns A 127.0.0.1
stale NS ns.example.
broken NS ns.example.
expired NS ns.example.
"""
EXPIRED_ZONE = """$ORIGIN expired.example.
$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
www A 192.0.2.93
"""
BROKEN_ZONE = """$ORIGIN broken.example.
$TTL 300
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
www A 192.0.2.92
"""


# -- the servers ------------------------------------------------------------------------------

class Daemon:
    """A server process with its log file; ``stop`` sends SIGTERM and returns the exit code."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int):
        self.name, self.port = name, port
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=workdir)

    def wait_listening(self) -> None:
        """Until the server accepts TCP on its port (it opens UDP at the same time)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.text()}")
            with socket.socket() as s:
                if s.connect_ex((LOCAL, self.port)) == 0:
                    return
            time.sleep(0.05)
        pytest.fail(f"{self.name} does not listen on port {self.port}:\n{self.text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(WAIT_S)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """The servers a test starts; any still running at the end are killed."""
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


def sign(work: Path, zone: str, text: str, *dates: str) -> str:
    """Sign ``zone`` (``text`` plus a new KSK and ZSK) into ``<zone>signed``; return the KSK
    as a DNSKEY line. ``dates``: dnssec-signzone's -s and -e, if given."""
    keygen, signzone = require_tool("dnssec-keygen"), require_tool("dnssec-signzone")
    keys = []
    for ksk in (["-f", "KSK"], []):
        made = subprocess.run([keygen, "-q", "-K", str(work), "-a", "ECDSAP256SHA256", *ksk,
                               zone], capture_output=True, check=True, timeout=WAIT_S, cwd=work)
        keys.append((work / f"{made.stdout.decode().strip()}.key").read_text())
    (work / f"{zone}.zone").write_text(text + "".join(keys))
    validity = ["-s", dates[0], "-e", dates[1]] if dates else []
    subprocess.run([signzone, "-P", "-q", "-K", str(work), "-d", str(work), *validity,
                    "-o", zone, "-f", f"{zone}.signed", f"{zone}.zone"],
                   capture_output=True, check=True, timeout=WAIT_S, cwd=work)
    return next(line for line in keys[0].splitlines() if not line.startswith(";"))


def start_auth(tmp_path: Path, started: list[Daemon]) -> Daemon:
    """An authoritative BIND for stale.example, broken.example and expired.example."""
    named = require_tool("named")
    work = tmp_path / "auth"
    work.mkdir()
    (work / "stale.example.zone").write_text(STALE_ZONE)
    (work / "broken.example.zone").write_text(BROKEN_ZONE)
    # example. is signed and valid, and vouches (DS) for expired.example, whose signatures
    # expired in 2020: a validator trusting example. sees the expiry while building the chain
    sign(work, "expired.example", EXPIRED_ZONE, "20200101000000", "20200201000000")
    ds = (work / "dsset-expired.example.").read_text()
    anchor = sign(work, "example", PARENT_ZONE + ds)
    (work / "example.anchor").write_text(anchor + "\n")
    port = free_port()
    (work / "named.conf").write_text(f"""
options {{ directory "{work}"; pid-file none; session-keyfile none;
  listen-on port {port} {{ {LOCAL}; }}; listen-on-v6 {{ none; }};
  recursion no; notify no; dnssec-validation no; }};
controls {{ }};
zone "stale.example" {{ type primary; file "stale.example.zone"; }};
zone "broken.example" {{ type primary; file "broken.example.zone"; }};
zone "expired.example" {{ type primary; file "expired.example.signed"; }};
zone "example" {{ type primary; file "example.signed"; }};
""")
    d = Daemon("auth", [named, "-g", "-c", str(work / "named.conf")], work, port)
    started.append(d)
    d.wait_listening()
    return d


def unbound_conf(work: Path, port: int, auth: int, sock: Path,
                 bidirectional: str = "yes") -> list[str]:
    unbound = require_tool("unbound")
    ds = "0" * 64  # of no key: broken.example's keys cannot be validated
    (work / "unbound.conf").write_text(f"""server:
    directory: "{work}"
    chroot: ""
    username: ""
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    interface: {LOCAL}
    port: {port}
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    access-control: {REFUSED_CLIENT}/32 refuse
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor: "broken.example. DS 12345 13 2 {ds}"
    trust-anchor-file: "{work.parent / 'auth' / 'example.anchor'}"  # start_auth's
    ede: yes
    # without it Unbound 1.17 gives EDE 9 (DNSKEY Missing), no text, for the expired zone
    val-log-level: 2
    qname-minimisation: no
stub-zone:
    name: "example."
    stub-addr: {LOCAL}@{auth}
remote-control:
    control-enable: no
dnstap:
    dnstap-enable: yes
    dnstap-bidirectional: {bidirectional}
    dnstap-socket-path: "{sock}"
    dnstap-identity: "unbound-test"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
""")
    return [unbound, "-d", "-c", str(work / "unbound.conf")]


def bind_conf(work: Path, port: int, auth: int, sock: Path) -> list[str]:
    named = require_tool("named")
    (work / "named.conf").write_text(f"""
options {{
    directory "{work}";
    pid-file none;
    session-keyfile none;
    listen-on port {port} {{ {LOCAL}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ !{REFUSED_CLIENT}; any; }};
    allow-recursion {{ !{REFUSED_CLIENT}; any; }};
    dnssec-validation no;
    stale-answer-enable yes;
    stale-cache-enable yes;
    stale-answer-client-timeout 0;
    max-stale-ttl 3600;
    dnstap {{ client; }};
    dnstap-output unix "{sock}";
    dnstap-identity "bind-test";
    fstrm-set-reopen-interval 1;
}};
controls {{ }};
zone "example" {{ type forward; forward only; forwarders port {auth} {{ {LOCAL}; }}; }};
""")
    return [named, "-g", "-c", str(work / "named.conf")]


def kresd_conf(work: Path, port: int, auth: int, sock: Path) -> list[str]:
    kresd = require_tool("kresd")
    (work / "kresd.conf").write_text(f"""
net.listen('{LOCAL}', {port}, {{ kind = 'dns' }})
modules = {{
    'view',
    dnstap = {{
        socket_path = '{sock}',
        identity = 'kresd-test',
        client = {{ log_queries = true, log_responses = true }},
    }},
}}
-- nothing may leave the machine: no root trust anchor, no priming, no time-skew check
trust_anchors.remove('.')
modules.unload('priming')
modules.unload('detect_time_skew')
cache.size = 10 * MB
view:addr('{REFUSED_CLIENT}/32', policy.all(policy.REFUSE))
policy.add(policy.suffix(policy.DENY, {{ todname('blocked.example.') }}))
policy.add(policy.suffix(policy.STUB({{ '{LOCAL}@{auth}' }}), {{ todname('example.') }}))
""")
    return [kresd, "-n", "-c", str(work / "kresd.conf"), str(work)]


CONFS: dict[str, Callable[[Path, int, int, Path], list[str]]] = {
    "unbound": unbound_conf, "bind": bind_conf, "kresd": kresd_conf,
    # Unbound speaking the unidirectional protocol: START first, no ACCEPT, no FINISH
    "unbound-unidirectional": lambda *a: unbound_conf(*a, bidirectional="no")}
# Unbound 1.17 hands messages to its dnstap thread in batches (up to a second later) and
# drops the batch still queued when it exits: fstrm_capture gets nothing either from a
# query answered just before SIGTERM. So a test waits for Unbound's messages to arrive
# before stopping it; BIND and kresd (libfstrm) flush their queue before STOP.
FLUSHES_ON_EXIT = {"unbound": False, "unbound-unidirectional": False, "bind": True,
                   "kresd": True}
# what each resolver answers to ask_before_stale (see docs/watch.md)
EDES_BEFORE_STALE = {"unbound": {"18": 1, "9": 1, "7": 1},
                     "unbound-unidirectional": {"18": 1, "9": 1, "7": 1},
                     "bind": {"18": 1}, "kresd": {"18": 1, "15": 1}}


def start_resolver(name: str, tmp_path: Path, auth: Daemon, sock: Path,
                   started: list[Daemon], run: int = 1) -> Daemon:
    work = tmp_path / f"{name}-{run}"
    work.mkdir()
    port = free_port()
    d = Daemon(name, CONFS[name](work, port, auth.port, sock), work, port)
    started.append(d)
    return d


# -- the client and its oracle ----------------------------------------------------------------

class Client:
    """Queries by dnspython; counts what came back (the oracle)."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.responses = 0
        self.by_resolver: dict[str, Counter[str]] = {}

    def counted(self, port: int, proc: Any) -> dict[Any, float]:
        """Wait until watch has counted every response received so far."""
        return wait_for(settled(port, lambda s: total(s, "dns_responses_total")
                                >= self.responses), f"{self.responses} responses", proc)

    def ask(self, resolver: Daemon, name: str, source: str = LOCAL,
            tcp: bool = False) -> dns.message.Message:
        query = dns.message.make_query(name, "A", use_edns=0)
        send = dns.query.tcp if tcp else dns.query.udp
        response = send(query, LOCAL, port=resolver.port, source=source,
                        timeout=QUERY_TIMEOUT_S)
        self.responses += 1
        mine = self.by_resolver.setdefault(resolver.name, Counter())
        for option in response.options:
            if option.otype == dns.edns.EDE:
                self.codes[str(option.code)] += 1
                mine[str(option.code)] += 1
        return response


def ask_before_stale(client: Client, r: Daemon) -> None:
    """The queries each resolver gets while the authoritative server runs."""
    ok = client.ask(r, "www.stale.example")
    assert ok.rcode() == dns.rcode.NOERROR and ok.answer
    # each name once: a second query a second later would already be answered stale
    client.ask(r, "tcp.stale.example", tcp=True)
    refused = client.ask(r, "www.stale.example", source=REFUSED_CLIENT)
    assert refused.rcode() == dns.rcode.REFUSED
    client.ask(r, "www.broken.example")
    client.ask(r, "www.expired.example")
    client.ask(r, "x.blocked.example")


def wait_writers(port: int, n: int, proc: Any) -> None:
    wait_for(lambda: (s := scrape(port)) and total(s, "dnstap_writers_connected") == n,
             f"{n} dnstap writers connected", proc)


def stop_resolver(r: Daemon, clean_log: bool = True) -> None:
    """SIGTERM: the resolver flushes, sends STOP, gets FINISH and exits 0."""
    code = r.stop()
    log = r.text()
    assert code == 0, f"{r.name} exited {code}:\n{log}"
    if clean_log:
        assert not DNSTAP_ERROR.search(log), f"{r.name} logged a dnstap problem:\n{log}"


def start_socket_watch(tmp_path: Path, started: list[Any]) -> tuple[Any, Path, int, Path]:
    sock, port, events = tmp_path / "dnstap.sock", free_port(), tmp_path / "events.jsonl"
    proc = start_watch(f"unix:{sock}", "--metrics", f"{LOCAL}:{port}", "--events", str(events))
    started.append(proc)
    wait_for(lambda: sock.exists() and scrape(port), "the socket and the metrics", proc)
    return proc, sock, port, events


def stop_watch(proc: Any, sock: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT_S) == 0
    assert not sock.exists()
    return proc.stderr.read().decode()


# -- the tests --------------------------------------------------------------------------------

def test_three_resolvers_and_replays_at_once(tmp_path: Path, processes: list[Any],  # noqa: F811
                                             daemons: list[Daemon], fstrm_replay: str) -> None:
    """Unbound, BIND and kresd on one socket at once, then four fstrm_replay writers at
    once beside them: every counter is the sum of what each writer sent."""
    proc, sock, port, events = start_socket_watch(tmp_path, processes)
    auth = start_auth(tmp_path, daemons)
    resolvers = [start_resolver(name, tmp_path, auth, sock, daemons)
                 for name in ("unbound", "bind", "kresd")]
    # each connects before it has anything to send, then idles until the first query
    wait_writers(port, len(resolvers), proc)
    for r in resolvers:
        r.wait_listening()
    client = Client()
    for r in resolvers:
        ask_before_stale(client, r)
    # the authoritative server goes away; once the TTL of 1 s has passed, only stale data
    assert auth.stop() == 0
    time.sleep(1.5)
    for r in resolvers:
        if r.name == "unbound":  # without serve-expired it retries the closed port for long
            continue
        client.ask(r, "www.stale.example")
    client.counted(port, proc)  # Unbound's last batch (FLUSHES_ON_EXIT)
    # simultaneous writers beside the resolvers' connections, all on the same socket
    replays = [subprocess.Popen([fstrm_replay, "-t", "protobuf:dnstap.Dnstap", "-r", str(log),
                                 "-u", str(sock)], stderr=subprocess.PIPE) for log in LOGS]
    for replay in replays:
        assert replay.wait(WAIT_S) == 0, replay.stderr.read().decode()  # type: ignore[union-attr]
        replay.stderr.close()  # type: ignore[union-attr]
    for r in resolvers:
        stop_resolver(r)
    connections = len(resolvers) + len(LOGS)
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                     outcome="finished") == connections),
                       f"{connections} finished connections", proc)
    replayed = expected(LOGS)
    want = Counter(client.codes) + Counter(replayed["codes"])
    assert by_label(samples, "ede_options_total", "code") == dict(want)
    assert total(samples, "dns_responses_total") == client.responses + replayed["dns_responses"]
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"finished": connections}
    assert total(samples, "dnstap_writers_connected") == 0
    # what each resolver gave here (see docs/watch.md); each must give some EDE
    assert client.by_resolver == {"unbound": EDES_BEFORE_STALE["unbound"],
                                  "bind": {"18": 1, "3": 1},
                                  "kresd": EDES_BEFORE_STALE["kresd"]}
    err = stop_watch(proc, sock)
    assert "warning" not in err, err
    # a few EDEs within seconds are no incident for report's detector (a run of buckets
    # above a baseline), so no event, not even at shutdown
    assert events.read_text() == ""


@pytest.mark.parametrize("name", list(CONFS))
def test_resolver_restart_is_a_new_connection(name: str, tmp_path: Path,
                                              processes: list[Any],  # noqa: F811
                                              daemons: list[Daemon]) -> None:
    """A resolver stopped and started again: two connections, both finished, and every
    response of both runs counted once."""
    proc, sock, port, _ = start_socket_watch(tmp_path, processes)
    auth = start_auth(tmp_path, daemons)
    client = Client()
    for run in (1, 2):
        r = start_resolver(name, tmp_path, auth, sock, daemons, run)
        wait_writers(port, 1, proc)
        r.wait_listening()
        ask_before_stale(client, r)
        if not FLUSHES_ON_EXIT[name]:
            client.counted(port, proc)
        stop_resolver(r)
        samples = wait_for(settled(port, lambda s, run=run: total(
            s, "dnstap_connections_total", outcome="finished") == run),
            f"connection {run} to finish", proc)
        assert by_label(samples, "ede_options_total", "code") == dict(client.codes)
        assert total(samples, "dns_responses_total") == client.responses
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"finished": 2}
    assert client.responses == 12
    assert client.codes == {code: 2 * n for code, n in EDES_BEFORE_STALE[name].items()}
    stop_watch(proc, sock)


def quiet(port: int, seconds: float, proc: Any) -> dict[Any, float]:
    """The counters once they have not moved for ``seconds`` (longer than the resolvers'
    delivery delays: libfstrm's 1 s flush timeout, Unbound's batches)."""
    since: list[Any] = [None, 0.0]

    def check() -> Any:
        now = scrape(port)
        if now is None:
            return None
        counters = {k: v for k, v in now.items() if k[0] != "lag_seconds"}
        if counters != since[0]:
            since[:] = [counters, time.monotonic()]
            return None
        return now if time.monotonic() - since[1] >= seconds else None
    return wait_for(check, f"the counters to rest for {seconds} s", proc)


def delta(after: dict[Any, float], before: dict[Any, float], name: str,
          label: str) -> dict[str, int]:
    grown = Counter(by_label(after, name, label))
    grown.subtract(by_label(before, name, label))
    return {k: v for k, v in grown.items() if v}


def test_resolvers_reconnect_when_watch_restarts(tmp_path: Path,
                                                 processes: list[Any],  # noqa: F811
                                                 daemons: list[Daemon]) -> None:
    """watch stopped and started again on the same path while the resolvers run: each
    reconnects, and the new watch counts everything sent once all are back.

    Unbound notices at once (it reads its socket) and reconnects by itself. BIND and kresd
    (libfstrm) notice only when they next write: what they write then is lost, and they
    reconnect after their reopen interval (BIND: fstrm-set-reopen-interval 1 s here). So the
    test asks them until they are back."""
    proc, sock, port, _ = start_socket_watch(tmp_path, processes)
    auth = start_auth(tmp_path, daemons)
    resolvers = [start_resolver(name, tmp_path, auth, sock, daemons)
                 for name in ("unbound", "bind", "kresd")]
    wait_writers(port, len(resolvers), proc)
    for r in resolvers:
        r.wait_listening()
        Client().ask(r, "www.stale.example")
    wait_for(settled(port, lambda s: total(s, "dns_responses_total") == len(resolvers)),
             "the first answers", proc)
    stop_watch(proc, sock)  # the resolvers' connections are cut
    proc, sock, port, _ = start_socket_watch(tmp_path, processes)
    started = time.monotonic()
    nudges = Client()

    def back() -> Any:
        samples = scrape(port)
        if samples and total(samples, "dnstap_writers_connected") == len(resolvers):
            return samples
        for r in resolvers[1:]:  # BIND and kresd: a message to write
            nudges.ask(r, "www.stale.example")
        time.sleep(0.3)
        return None
    wait_for(back, "the resolvers to reconnect", proc)
    reconnect_s = time.monotonic() - started
    before = quiet(port, 2.5, proc)
    client = Client()
    for r in resolvers:
        client.ask(r, "www.broken.example")
        client.ask(r, "www.stale.example", source=REFUSED_CLIENT)
    for r in resolvers:
        if not FLUSHES_ON_EXIT[r.name]:
            wait_for(settled(port, lambda s: total(s, "dns_responses_total") >= total(
                before, "dns_responses_total") + client.responses), "Unbound's batch", proc)
        stop_resolver(r, clean_log=False)  # a reader going away is worth a line in their logs
    after = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total",
                                                   outcome="finished") == len(resolvers)),
                     "the resolvers' STOP", proc)
    assert delta(after, before, "ede_options_total", "code") == dict(client.codes)
    assert total(after, "dns_responses_total") - total(before, "dns_responses_total") \
        == client.responses == 6
    assert by_label(after, "dnstap_connections_total", "outcome") == {"finished": 3}
    # of the nudges, those written before the resolver noticed the closed socket are lost
    assert total(before, "dns_responses_total") <= nudges.responses
    print(f"reconnected in {reconnect_s:.1f} s; {nudges.responses} nudges, "
          f"{total(before, 'dns_responses_total'):.0f} of them counted")
    stop_watch(proc, sock)


def test_a_killed_resolver_is_a_cut_connection(tmp_path: Path,
                                               processes: list[Any],  # noqa: F811
                                               daemons: list[Daemon]) -> None:
    """kresd killed (SIGKILL: no STOP): its connection counts as cut, what it had delivered
    stays counted, and watch goes on with the next writer."""
    proc, sock, port, _ = start_socket_watch(tmp_path, processes)
    auth = start_auth(tmp_path, daemons)
    client = Client()
    for run, how in ((1, "killed"), (2, "stopped")):
        r = start_resolver("kresd", tmp_path, auth, sock, daemons, run)
        wait_writers(port, 1, proc)
        r.wait_listening()
        ask_before_stale(client, r)
        client.counted(port, proc)
        if how == "killed":
            r.proc.kill()
            r.proc.wait(WAIT_S)
            wait_for(settled(port, lambda s: total(s, "dnstap_writers_connected") == 0),
                     "the cut", proc)
        else:
            stop_resolver(r)
    samples = wait_for(settled(port, lambda s: total(s, "dnstap_connections_total") == 2),
                       "both connections", proc)
    assert by_label(samples, "dnstap_connections_total", "outcome") == {"cut": 1, "finished": 1}
    assert by_label(samples, "ede_options_total", "code") == dict(client.codes) \
        == {"15": 2, "18": 2}
    assert total(samples, "dns_responses_total") == client.responses == 12
    assert stop_watch(proc, sock) == ""  # a cut is counted, not warned about
