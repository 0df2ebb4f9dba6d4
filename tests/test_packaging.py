"""What the wheel and the sdist carry: the wheel no C sources, the sdist what its tests need.

Both are built from this checkout with the project's own build backend (setuptools), as
``pip install .`` and a release would build them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built).namelist()


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("sdist")
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.build_sdist(sys.argv[1]))")
    name = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=600).stdout.split()[-1]
    with tarfile.open(out / name) as archive:
        return [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]


def test_wheel_has_no_c_sources_and_has_the_license(wheel: list[str]) -> None:
    assert not [n for n in wheel if n.endswith((".c", ".h"))]
    assert "analyzer/py.typed" in wheel
    assert any(n.endswith("/LICENSE") for n in wheel)
    assert "analyzer/api.py" in wheel and "analyzer/render/html.py" in wheel


def test_sdist_carries_sources_samples_and_tests(sdist: list[str]) -> None:
    tracked = subprocess.run(["git", "ls-files", "samples", "tests", "analyzer"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    missing = sorted(set(tracked) - set(sdist))
    assert missing == []
    assert {"LICENSE", "analyzer/_speedups.c", "analyzer/_tcpstreams.c",
            "analyzer/_speedups.h", "README.md", "pyproject.toml"} <= set(sdist)
    assert not [n for n in sdist if n.endswith((".so", ".pyc")) or ".partial" in n]


def test_extras_split_the_base_install() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "dask" not in base and "fsspec" not in base
    assert any(d.startswith("dask[distributed]") for d in extras["dask"])
    assert {"dask[distributed]", "fsspec"} <= {d.split(">")[0] for d in extras["test"]}
    assert {"jupyterlab", "matplotlib", "ipykernel"} <= {d.split(">")[0]
                                                         for d in extras["notebook"]}


def test_license_file_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    assert os.path.getsize(ROOT / "LICENSE") > 1000
