"""Build the optional C kernels; everything else is declared in pyproject.toml.

``optional=True``: where no C compiler is present the install still succeeds, and
``analyzer.speedups`` falls back to the Python twins of the kernels.

``build_ext`` always compiles (``force``): setuptools otherwise reuses an extension left in
a ``build/`` directory when its timestamps look newer than the sources, and a checkout
with an old ``build/`` would install an old kernel. Compiling takes about a second. For the
same reason ``build_py`` starts from an empty ``build/lib/analyzer``.
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


class FreshBuildPy(build_py):
    """Copy the package into an empty ``build/lib``: files an older build left there (C
    sources from before they left the wheel, modules since removed) would ship otherwise."""

    def run(self) -> None:
        shutil.rmtree(Path(self.build_lib) / "analyzer", ignore_errors=True)
        super().run()


class AlwaysBuildExt(build_ext):
    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True


setup(ext_modules=[Extension("analyzer._speedups",
                             ["analyzer/_speedups.c", "analyzer/_tcpstreams.c",
                              "analyzer/_zonecuts.c", "analyzer/_dnstap.c"],
                             depends=["analyzer/_speedups.h"],
                             extra_compile_args=["-O2"], optional=True)],
      cmdclass={"build_ext": AlwaysBuildExt, "build_py": FreshBuildPy})
