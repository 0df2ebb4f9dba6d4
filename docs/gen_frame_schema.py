"""Write docs/frame-schema.md from analyzer.frame's dtypes and the descriptions below.

Run ``python docs/gen_frame_schema.py`` after changing a column; tests/test_docs.py fails
while the document is stale or a column has no description here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analyzer import frame, textfacts

OUT = Path(__file__).resolve().parent / "frame-schema.md"

# One line per column, in words a pandas user needs: what it holds, its unit, when it is
# missing. Keys must be exactly the columns of EDE_DTYPES, RESPONSE_DTYPES and
# textfacts.FACT_DTYPES.
DESCRIPTIONS: dict[str, str] = {
    "capture": "The capture or dnstap file the row came from, as given on the command line "
    "(`-` for standard input).",
    "frame_number": "Frame number of the response in its capture, counted from 1 as "
    "Wireshark does; for a response split over IP fragments or TCP segments, the frame that "
    "completed it. In a dnstap file, the position of the data frame (control frames not "
    "counted), from 1.",
    "ts": "When the response was captured (capture timestamp, UTC); from dnstap, the "
    "message's response time (its query time for a query, or when that is all it has).",
    "src_ip": "Source address of the response: the server (resolver) that answered.",
    "src_port": "Source port of the response.",
    "dst_ip": "Destination address of the response: the client.",
    "dst_port": "Destination port of the response.",
    "transport": "`udp` or `tcp`; from dnstap, the logged socket protocol: also `dot`, "
                 "`doh`, `doq`, `dnscrypt-udp`, `dnscrypt-tcp`, or `unknown` when the message "
                 "did not say.",
    "dnstap_type": "The dnstap message type the row came from (`CLIENT_RESPONSE`, "
                   "`RESOLVER_RESPONSE`, `AUTH_RESPONSE`...); empty for a packet. Responses "
                   "the server received upstream (`RESOLVER_RESPONSE`, "
                   "`FORWARDER_RESPONSE`) are kept out of the report's headline. "
                   "See [dnstap](dnstap.md).",
    "dnstap_identity": "The logging server's dnstap identity (often its host name); empty "
                       "for a packet or when the server did not send one.",
    "dnstap_version": "The logging server's dnstap version string (e.g. `unbound 1.17.1`, "
                      "`BIND 9.18.28`); empty for a packet or when not sent.",
    "encap": "The encapsulation the packet arrived in, outermost first, `/` between layers: "
             "`vxlan:100/vlan:10` (VXLAN VNI 100, then VLAN 10 on the inner Ethernet). "
             "Elements: `vlan:ID`, `vxlan:VNI`, `geneve:VNI`, `vxlan-gpe:VNI`, `gtp-u`, "
             "`l2tp:TUNNEL`, `gre` or "
             "`gre:KEY`, `erspan` or "
             "`erspan:SESSION`, `mpls:LABEL,...`, `pppoe:SESSION`, `pptp:CALL`, `ip4-in-ip`, "
             "`ip6-in-ip`. "
             "Empty for a packet captured as it was sent. Addresses and ports are the "
             "innermost ones. See [tunnels](tunnels.md).",
    "ip_version": "4 or 6.",
    "dns_id": "DNS message ID.",
    "qname": "Query name of the first question, in presentation format without the final "
    "dot (`.` for the root), case as sent; `<NA>` when the response has no question.",
    "qtype": "Query type mnemonic (`A`, `AAAA`, `DNSKEY`...), `TYPEnnn` when unassigned "
    "(RFC 3597).",
    "qclass": "Query class mnemonic (`IN`...), `CLASSnnn` when unassigned.",
    "rcode": "Response code mnemonic (`NOERROR`, `SERVFAIL`, `NXDOMAIN`...), extended with "
    "the OPT record's upper bits (RFC 6891 §6.1.3); `RCODEnnn` when unassigned.",
    "aa": "AA flag: Authoritative Answer.",
    "tc": "TC flag: the response was truncated.",
    "rd": "RD flag: Recursion Desired (copied from the query).",
    "ra": "RA flag: Recursion Available.",
    "ad": "AD flag: Authentic Data (the resolver validated the answer with DNSSEC).",
    "cd": "CD flag: Checking Disabled (the client asked for no DNSSEC validation).",
    "edns_udp_size": "The UDP payload size the responder advertised in its OPT record; "
    "`<NA>` without OPT.",
    "do": "DO bit of the OPT record (DNSSEC OK); `<NA>` without OPT.",
    "ede_count": "How many EDE options the response carried (RFC 8914 allows several).",
    "ede_index": "Position of this EDE option among the response's EDE options, from 0.",
    "ede_code": "INFO-CODE (0-65535). Reports key on this number, never on the name.",
    "ede_name": "Name of the INFO-CODE in the IANA registry (`Signature Expired`), or "
    "`Unassigned (N)` / `Private Use (N)`; see [the catalogue](ede-codes.md).",
    "ede_category": "The code's family: `dnssec`, `cache`, `policy`, `transport` or `other`.",
    "extra_text": "EXTRA-TEXT, UTF-8 decoded, one trailing NUL removed (RFC 8914 §2); empty "
    "when the option has none. Bytes that are not UTF-8 appear as `\\xNN` escapes.",
    "extra_text_utf8_valid": "False when EXTRA-TEXT was not valid UTF-8 (then counted as the "
    "problem `ede-text-not-utf8`).",
    "ede_codes": "The INFO-CODEs the response carried, comma-separated in option order "
    "(`7,22`); empty when it carried none.",
    "report_channel": "The agent domain of the response's Report-Channel option (EDNS0 "
    "option 18, RFC 9567 §5): where the resolver asks for DNS error reports to be sent; "
    "`<NA>` when the response has none.",
    "query_ts": "When the matching query was captured: the latest query with the endpoints "
    "reversed and the same transport, DNS ID and question bytes, at most 10 s before the "
    "response; `NaT` when the capture holds no such query.",
    "latency": "`ts - query_ts`: how long the server took to answer, as seen at the capture "
    "point; `NaT` without a matching query.",
    "fact_zone": "The zone the EXTRA-TEXT names (lower-case, no final dot): often the broken "
    "zone above the query name, e.g. `for DNSKEY example.com., id = 12345`. A query name or "
    "a DS owner the text names is not a zone and leaves this empty.",
    "fact_key_tag": "The DNSKEY key tag the text names (`id = 12345`).",
    "fact_rrtype": "The RR type the text names (`A`, `DNSKEY`...).",
    "fact_expiration": "The RRSIG expiration the text quotes (`expiration = ...`), read as "
    "epoch seconds or `YYYYMMDDHHmmSS` (RFC 4034 §3.2).",
    "fact_inception": "The RRSIG inception the text quotes, read the same way.",
    "fact_upstream_ip": "The upstream server the text names (`192.0.2.1:53 timed out for ...`, "
    "Unbound's `from 192.0.2.1`).",
    "fact_upstream_port": "That server's port, when the text gives one.",
    "fact_upstream_rcode": "The RCODE the upstream answered with (`rcode=SERVFAIL`).",
    "fact_upstream_timeout": "True when the text says the upstream timed out.",
    "fact_reason": "The failure the text states, as a stable kebab-case slug "
    "(`signature-expired`, `no-sep-matching-ds`, `upstream-timeout`...).",
    "fact_vendor": "The software whose wording the text matches (`cloudflare`, `unbound`, "
    "`bind`, `knot-resolver`, `powerdns`, `technitium`, `structured-dns-error`).",
}

FRAMES = (
    (
        "EDE frame: one row per EDE option",
        frame.EDE_DTYPES,
        "`analyzer.read_ede(captures)` and `analyzer.scan(captures).ede` "
        "return this frame and `ede-pcap extract` writes it. A response with three EDE "
        "options gives three rows that differ only in the option's columns, `ede_index` to "
        "`extra_text_utf8_valid`.",
    ),
    (
        "Facts from EXTRA-TEXT: the fact_* columns",
        textfacts.FACT_DTYPES,
        "`ede-pcap extract` appends these to the EDE frame, and "
        "`analyzer.add_fact_columns(df)` adds them to a frame in Python. They hold what the "
        "EXTRA-TEXT states in a wording `analyzer.textfacts` knows (1.1.1.1, Unbound, BIND, "
        "Knot Resolver, PowerDNS, Technitium, structured DNS errors); a fact the text does not "
        "state is `<NA>` (`NaT` for times), and nothing is guessed. Each distinct "
        "(`extra_text`, `ede_code`) pair is parsed once.",
    ),
    (
        "Response frame: one row per DNS response",
        frame.RESPONSE_DTYPES,
        "`analyzer.read_responses(captures)` returns this frame and "
        "`ede-pcap extract --all-responses` writes it: every DNS response, with or without "
        "EDE, for shares and baselines.",
    ),
)


def to_markdown() -> str:
    """Return docs/frame-schema.md as generated from the dtypes and DESCRIPTIONS."""
    lines = [
        "# Frame schema",
        "",
        "<!-- Generated from analyzer/frame.py by docs/gen_frame_schema.py; "
        "do not edit by hand. -->",
        "",
        "The row-level data comes as pandas DataFrames with one declared schema "
        "(`analyzer.frame.EDE_DTYPES` and `RESPONSE_DTYPES`): the same columns, in the same "
        "order and with the same dtypes, for every capture, including an empty one. Integer "
        "and boolean columns use pandas' nullable dtypes, so a missing value is `<NA>` (`NaT` "
        "for times) rather than a float NaN. Rows are sorted by capture, then frame number, "
        "then option index.",
        "",
        "Text that repeats (addresses, names, EXTRA-TEXT, mnemonics) is `category`: a few "
        "thousand distinct values over millions of rows cost a small integer per row, and "
        "group-bys on them are fast. Categories are the values seen, sorted; comparisons, "
        "`.str` methods, `isin` and `value_counts()` work as on text (after filtering, "
        "`value_counts()` also lists the categories left with 0 rows; "
        "`.cat.remove_unused_categories()` drops them). Frames from separate scans "
        "concatenate to plain objects unless joined with "
        "`pandas.api.types.union_categoricals`; `astype(str)` gives plain text.",
        "",
        "In files written by `ede-pcap extract`, times are ISO-8601 UTC ending in `Z`, "
        "`latency` is in seconds, and CSV cells that a spreadsheet would read as a formula "
        "get a leading `'`. Parquet files (one file, or a dataset directory) have one fixed "
        "Arrow type per column, whatever the capture holds, so the files of many captures "
        "read as one table in pandas, pyarrow, DuckDB and Dask: categories stay "
        "dictionary-encoded, times are microseconds, unsigned integers the signed type one "
        "size up ([scale-out.md](scale-out.md#column-types) has the table). The aggregated "
        "JSON report is described in [report-schema.md](report-schema.md).",
    ]
    for title, dtypes, intro in FRAMES:
        lines += [
            "",
            f"## {title}",
            "",
            intro,
            "",
            "| Column | dtype | Description |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{name}` | `{dtype}` | {DESCRIPTIONS[name]} |" for name, dtype in dtypes.items()
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(to_markdown(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT}\n")
