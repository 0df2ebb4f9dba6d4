"""Build the optional C kernels; everything else is declared in pyproject.toml.

``optional=True``: where no C compiler is present the install still succeeds, and
``analyzer.speedups`` falls back to the Python twins of the kernels.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("analyzer._speedups",
                             ["analyzer/_speedups.c", "analyzer/_tcpstreams.c",
                              "analyzer/_zonecuts.c"],
                             depends=["analyzer/_speedups.h"],
                             extra_compile_args=["-O2"], optional=True)])
