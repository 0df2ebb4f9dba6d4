"""Mnemonics for DNS RR types, classes and RCODEs (RFC 1035, RFC 6895 registries)."""

from __future__ import annotations

RRTYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV",
    35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS",
    44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS",
    60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS",
    99: "SPF", 108: "EUI48", 109: "EUI64", 128: "NXNAME", 249: "TKEY", 250: "TSIG",
    251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}

CLASSES: dict[int, str] = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}

RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
    16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
    22: "BADTRUNC", 23: "BADCOOKIE",
}


def rrtype_name(value: int) -> str:
    """Return the mnemonic of an RR type, or ``TYPEnnn`` (RFC 3597 §5) when unassigned."""
    return RRTYPES.get(value) or f"TYPE{value}"


def class_name(value: int) -> str:
    """Return the mnemonic of a DNS class, or ``CLASSnnn`` (RFC 3597 §5)."""
    return CLASSES.get(value) or f"CLASS{value}"


def rcode_name(value: int) -> str:
    """Return the mnemonic of an (extended) RCODE, or ``RCODEnnn`` when unassigned."""
    return RCODES.get(value) or f"RCODE{value}"
