"""Tests for analyzer.codes: every INFO-CODE has a usable catalogue entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analyzer import codes
from analyzer.codes import CATALOGUE, EdeCode, describe

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ede-codes.md"


@pytest.mark.parametrize("code", range(34))
def test_every_assigned_code_has_an_entry(code: int) -> None:
    info = CATALOGUE[code]
    assert info.code == code
    assert info.name and info.document and info.meaning
    assert info.category in codes.CATEGORIES
    assert info.status == "assigned"
    assert len(info.next_step) > 40
    assert describe(code) is info


@pytest.mark.parametrize("member", list(EdeCode), ids=lambda m: m.name)
def test_enum_names_are_the_registry_names(member: EdeCode) -> None:
    # Modulo spelling: case, spaces and hyphens ("Stale NXDomain Answer" -> STALE_NXDOMAIN_ANSWER).
    spelled = re.sub(r"[^A-Z0-9]+", "_", CATALOGUE[member].name.upper()).strip("_")
    assert member.name == spelled


def test_enum_and_catalogue_cover_the_same_codes() -> None:
    assert [int(m) for m in EdeCode] == list(CATALOGUE) == list(range(34))


def test_categories_match_the_families() -> None:
    by_category = {c: {i.code for i in CATALOGUE.values() if i.category == c}
                   for c in codes.CATEGORIES}
    assert {1, 2, 6, 7, 8, 9, 10, 11, 12, 25, 27} <= by_category["dnssec"]
    assert {3, 13, 19} <= by_category["cache"]
    assert {15, 16, 17, 18} <= by_category["policy"]
    assert {22, 23} <= by_category["transport"]


@pytest.mark.parametrize(
    ("code", "name", "status"),
    [
        (0, "Other Error", "assigned"),
        (33, "Negative Trust Anchor", "assigned"),
        (34, "Unassigned (34)", "unassigned"),
        (35, "Unassigned (35)", "unassigned"),
        (49151, "Unassigned (49151)", "unassigned"),
        (49152, "Private Use (49152)", "private-use"),
        (65535, "Private Use (65535)", "private-use"),
    ],
)
def test_describe_boundaries(code: int, name: str, status: str) -> None:
    info = describe(code)
    assert (info.code, info.name, info.status) == (code, name, status)
    assert info.category in codes.CATEGORIES
    assert info.meaning and info.next_step


def test_unverified_proposals_are_mentioned_but_unassigned() -> None:
    assert "draft-ietf-deleg" in describe(34).meaning
    assert "structured-dns-error" in describe(35).meaning
    assert "deleg" not in describe(36).meaning


def test_private_use_points_at_the_vendor() -> None:
    assert "vendor" in describe(50000).next_step


@pytest.mark.parametrize("code", [-1, 65536, 10**9])
def test_describe_rejects_out_of_range(code: int) -> None:
    with pytest.raises(ValueError, match="0..65535"):
        describe(code)


def test_describe_accepts_enum_members() -> None:
    assert describe(EdeCode.SIGNATURE_EXPIRED).name == "Signature Expired"


def test_records_are_json_ready() -> None:
    records = json.loads(json.dumps(codes.to_records()))
    assert [r["code"] for r in records] == list(range(34))
    assert set(records[0]) == {"code", "name", "document", "category", "meaning",
                               "next_step", "status"}


def test_markdown_has_a_row_and_section_per_code() -> None:
    text = codes.to_markdown()
    for info in CATALOGUE.values():
        assert f"| {info.code} | {info.name} |" in text
        assert f"## {info.code} — {info.name}" in text
    assert "49152–65535" in text


def test_docs_file_is_generated_from_the_catalogue() -> None:
    # Regenerate after changing analyzer/codes.py:
    #   python -c "import analyzer.codes as c; open('docs/ede-codes.md','w').write(c.to_markdown())"
    assert DOCS.read_text(encoding="utf-8") == codes.to_markdown()
