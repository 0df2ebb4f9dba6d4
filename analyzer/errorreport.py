"""RFC 9567 DNS error reporting: the report queries resolvers send to a monitoring agent.

A resolver that saw an error while answering a query whose response carried a
Report-Channel option (EDNS option 18, naming an agent domain) reports it by querying
``_er.<QTYPE>.<QNAME>.<INFO-CODE>._er.<agent domain>`` (RFC 9567 §6.1.1) for TXT.
"""

from __future__ import annotations

from typing import NamedTuple

MARK = b"\x03_er"  # the "_er" label as it appears on the wire, first in a report's QNAME


class ErrorReport(NamedTuple):
    """What an error-report query says: which query failed, how, and who collects it."""

    qname: str        # the name the failing query asked for, without the final dot
    qtype: int
    info_code: int
    agent: str        # the monitoring agent's domain


def parse_report_name(qname: str) -> ErrorReport | None:
    """Return the report a query name encodes, or None if it is not an RFC 9567 report.

    The labels come in presentation form from ``message.read_name``; the reported name
    may itself contain ``_er`` labels, so the code label is the last decimal label
    followed by ``_er`` (RFC 9567 §6.1.1).
    """
    labels = qname.split(".")
    if len(labels) < 5 or labels[0].lower() != "_er" or not labels[1].isdigit():
        return None
    for i in range(len(labels) - 2, 2, -1):
        if labels[i + 1].lower() == "_er" and labels[i].isdigit():
            reported, agent = labels[2:i], labels[i + 2:]
            qtype, code = int(labels[1]), int(labels[i])
            if not reported or not agent or qtype > 0xFFFF or code > 0xFFFF:
                return None
            return ErrorReport(".".join(reported), qtype, code, ".".join(agent))
    return None
