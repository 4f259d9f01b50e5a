"""Build the compiled engine: every .pyx under pyx/cydezero becomes cydezero.<name>."""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

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

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(PYX.parent)],
        language_level=3,
        compiler_directives={
            "embedsignature": True,
            # The engine never indexes arrays with Python ints it has not checked.
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
    ),
)
