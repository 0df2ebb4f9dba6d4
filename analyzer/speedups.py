"""Which kernels run: the compiled ``_speedups`` when it was built, else the Python twins.

``pip install`` compiles ``analyzer/_speedups.c`` and ``_tcpstreams.c`` where a C compiler
is present (Debian ships gcc and the Python headers with python3-dev); without one the
install still succeeds and the same results come from numpy and Python, more slowly.
``EDE_PCAP_PURE_PYTHON=1`` forces the Python twins, which is how the tests compare the two.
"""

from __future__ import annotations

import os
from types import ModuleType

kernels: ModuleType | None
try:
    from analyzer import _speedups as kernels
except ImportError:  # no compiler at install time: the Python twins do the work
    kernels = None

if os.environ.get("EDE_PCAP_PURE_PYTHON"):
    kernels = None


def describe() -> str:
    """One line for ``--version`` and bug reports: which implementation is running."""
    return "compiled kernels" if kernels is not None else "pure Python kernels"
