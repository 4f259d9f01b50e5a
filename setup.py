"""Build the compiled engine: every .pyx under pyx/cydezero becomes cydezero.<name>."""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
PYX = HERE / "pyx" / "cydezero"

extensions = [
    Extension(
        f"cydezero.{src.stem}",
        [str(src.relative_to(HERE))],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for src in sorted(PYX.glob("*.pyx"))
]


class BuildExt(build_ext):
    """No fused multiply-add contraction: GCC contracts a * b + c by default
    where the target has FMA (aarch64, arm64), which would make the small
    matrix products in _kernels.pxd round differently per platform.
    MSVC does not contract by default."""

    def build_extensions(self):
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args.append("-ffp-contract=off")
        super().build_extensions()


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        include_path=[str(PYX.parent)],
        language_level=3,
        compiler_directives={
            "embedsignature": True,
            # Bounds checks stay on: they guard the indexing of tuples and
            # lists that Python code can change under the engine (a hook, a
            # Python backward). The C loops index raw pointers, which these
            # directives do not touch.
            "initializedcheck": False,
            "cdivision": True,
        },
    ),
)
