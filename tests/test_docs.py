"""The docs: generated parts current, quick start of two commands, every link resolves."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from analyzer import frame, textfacts

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def load_generator(name: str = "gen_frame_schema"):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_frame_column_is_described() -> None:
    described = set(load_generator().DESCRIPTIONS)
    columns = set(frame.EDE_DTYPES) | set(frame.RESPONSE_DTYPES) | set(textfacts.FACT_DTYPES)
    assert columns - described == set(), "describe these in docs/gen_frame_schema.py"
    assert described - columns == set(), "these columns no longer exist"


def test_frame_schema_doc_is_current() -> None:
    expected = load_generator().to_markdown()
    assert (DOCS / "frame-schema.md").read_text(encoding="utf-8") == expected, (
        "docs/frame-schema.md is stale: run python docs/gen_frame_schema.py"
    )


def test_walkthrough_shows_what_its_commands_print(tshark: str) -> None:
    # every command is run again (tshark's too, hence the fixture: CI must have it)
    text = (DOCS / "walkthrough.md").read_text(encoding="utf-8")
    assert load_generator("gen_walkthrough").to_markdown(text) == text, (
        "docs/walkthrough.md is stale: run python docs/gen_walkthrough.py, then check the prose"
    )


def section(markdown: str, heading: str) -> str:
    """Return the text under ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def quick_start_commands() -> list[str]:
    blocks = re.findall(
        r"^```sh\n(.*?)^```$", section(README.read_text(), "Quick start"), re.M | re.S
    )
    return [b.rstrip("\n") for b in blocks]


def test_readme_quick_start_is_two_one_line_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    for command in commands:
        assert "\n" not in command and command.strip() == command
    install_and_report, install_and_test = commands
    assert install_and_report.endswith("ede-pcap report samples/incident.pcap")
    assert "'.[test]'" in install_and_test and "pytest" in install_and_test


def test_ci_runs_the_readme_test_command() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run"), "--print-command"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == quick_start_commands()[1] + "\n"


def test_readme_example_is_the_first_command_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example is real output: the report's first lines, as the first command prints them.
    from typer.testing import CliRunner

    from analyzer.cli import app

    example = re.search(r"^```text\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert example, "README.md has no example report"
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        app, ["report", "samples/incident.pcap", "--quiet"], catch_exceptions=False
    )
    assert result.exit_code == 0
    shown = [line for line in example.group(1).splitlines() if line != "..."]
    output = result.stdout.splitlines()
    assert shown == output[: len(shown)], "refresh the example in README.md"


def test_architecture_names_every_module() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "analyzer"
    modules = {p.name for p in package.glob("*.py")} - {"__init__.py", "__main__.py"}
    missing = {m for m in modules if f"`{m}`" not in text}
    assert missing == set(), "add these modules to docs/architecture.md"
    existing = {p.name for p in package.rglob("*.py")}
    named = set(re.findall(r"`([a-z_]+\.py)`", text))
    assert named - existing == set(), "docs/architecture.md names modules that do not exist"
    assert "`render/`" in text and (package / "render").is_dir()


# --- links ---------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    return [
        README,
        ROOT / "CHANGELOG.md",
        ROOT / "samples" / "README.md",
        *sorted(DOCS.glob("*.md")),
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
    ]


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


def without_code(markdown: str) -> str:
    # Links inside code blocks and spans are examples, not links.
    markdown = re.sub(r"^```.*?^```$", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", markdown)


def slug(heading: str) -> str:
    """Return GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```$", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(doc: Path) -> None:
    if not doc.exists():
        pytest.fail(f"{doc.relative_to(ROOT)} is missing")
    broken = []
    for target in LINK.findall(without_code(markdown_of(doc))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert broken == []
