"""Find, count and explain Extended DNS Errors (RFC 8914) in packet captures.

Example: ``analyzer.read_ede("samples/incident.pcap").ede_code.value_counts()``

The names below are loaded on first use, so ``import analyzer`` (and the ``ede-pcap``
command's start-up) loads neither pandas nor Dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["scan", "read_ede", "read_responses", "iter_ede_frames", "read_ede_dask",
           "add_fact_columns", "report_frames", "ScanResult", "EdeCode", "EdePcapError",
           "CaptureError", "CaptureWarning", "FilterError"]

_HOMES = {
    "scan": "analyzer.api",
    "read_ede": "analyzer.api",
    "read_responses": "analyzer.api",
    "CaptureWarning": "analyzer.api",
    "report_frames": "analyzer.sections",
    "EdeCode": "analyzer.codes",
    "EdePcapError": "analyzer.errors",
    "CaptureError": "analyzer.errors",
    "FilterError": "analyzer.filters",
    "iter_ede_frames": "analyzer.pipeline",
    "read_ede_dask": "analyzer.distributed",
    "add_fact_columns": "analyzer.textfacts",
    "ScanResult": "analyzer.result",
}

if TYPE_CHECKING:
    from analyzer.api import CaptureWarning, read_ede, read_responses, scan
    from analyzer.codes import EdeCode
    from analyzer.distributed import read_ede_dask
    from analyzer.errors import CaptureError, EdePcapError
    from analyzer.filters import FilterError
    from analyzer.pipeline import iter_ede_frames
    from analyzer.result import ScanResult
    from analyzer.sections import report_frames
    from analyzer.textfacts import add_fact_columns


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
