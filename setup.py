"""Build the compiled engine: every .pyx under pyx/cydezero becomes cydezero.<name>.

Two builds, one switch:

- Release (the default): Python's own optimised flags (-O3), Cython's bounds
  checks on (see ``directives``), C from Cython next to the .pyx files. With
  GCC, its inliner is also let inline more (``INLINE_ARGS``, below).
- Debug: ``CYDEZERO_DEBUG=1 pip install .`` (or ``CYDEZERO_DEBUG=1 python setup.py
  build_ext --inplace``). Cython also checks that memoryviews are initialised
  (``initializedcheck``), that
  typed objects are not None before their fields are read (``nonecheck``) and that
  C integer arithmetic does not overflow (``overflowcheck``): each turns a memory
  error into a Python exception. The C is compiled with ``-O0 -g`` (for gdb), with
  ``-UNDEBUG`` (the C ``assert``s of CPython's and NumPy's headers check types and
  indices again) and ``-fstack-protector-strong``. These go through the
  Extension's extra arguments, after Python's defaults (setting CFLAGS would
  replace them, ``-fwrapv`` included). The debug C is generated into
  build/cython-debug/, always afresh, so it never mixes with the release C; and
  the compiled module is rebuilt whenever the switch or CFLAGS/LDFLAGS/CC change
  since the last build in this tree, so neither build silently reuses the other.
  Any value other than empty or ``0`` turns it on.

scripts/sanitize.sh builds with AddressSanitizer and UBSan through CFLAGS/LDFLAGS
(optionally with the debug switch as well) and runs the test suite.
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.errors import CompileError
except ImportError:     # setuptools < 59
    from distutils.errors import CompileError

HERE = Path(__file__).parent
PYX = HERE / "pyx" / "cydezero"
DEBUG = os.environ.get("CYDEZERO_DEBUG", "") not in ("", "0")

extensions = [
    Extension(
        f"cydezero.{src.stem}",
        [str(src.relative_to(HERE))],
        include_dirs=[np.get_include()],
        # NPY_TARGET_VERSION: the oldest NumPy C API the module may use. 1.22
        # brings the memory-handler API (the buffer cache, _bufcache.pxi);
        # without it, NumPy < 2.3's headers hide PyDataMem_SetHandler and
        # the import fails. The runtime requirement (numpy>=2.0) is above it.
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_22_API_VERSION")],
    )
    for src in sorted(PYX.glob("*.pyx"))
]

# Bounds checks stay on in both builds: they guard the indexing of tuples
# and lists that Python code can change under the engine (a hook, a Python
# backward). The C loops index raw pointers, which these directives do not
# touch (1% more instructions per node on a scalar chain).
directives = {
    # Signatures in the clinic format (`__text_signature__`), so that
    # inspect.signature, help() and Sphinx see the compiled functions' and
    # methods' parameters; a class states its own at the head of its docstring.
    "embedsignature": True,
    "embedsignature.format": "clinic",
    "boundscheck": True,
    "wraparound": True,
    "initializedcheck": DEBUG,
    "cdivision": True,
}
if DEBUG:
    directives.update(nonecheck=True, overflowcheck=True)

DEBUG_ARGS = {
    "unix": ["-O0", "-g", "-UNDEBUG", "-fstack-protector-strong"],
    "msvc": ["/Od", "/Zi", "/UNDEBUG"],
}


# GCC's inliner, let go further than -O3's limits. The engine's hot path is
# many small `cdef inline` steps (_pass_on, _accumulate, _schedule_maker...)
# that GCC otherwise keeps as calls once _backward is large: measured with
# callgrind, a node of `deep` 1,878 instructions -> 1,772 and a link of
# `chain` 5,859 -> 5,487 (GCC 12, CPython 3.11), for a stripped module of
# 1.4 MB instead of 0.8 and a compile about twice as long. Only where the
# compiler takes them without a warning (clang ignores --param with one).
INLINE_ARGS = ["--param", "max-inline-insns-single=1000",
               "--param", "max-inline-insns-auto=200",
               "--param", "large-function-growth=1000",
               "--param", "inline-unit-growth=1000"]


def _takes(compiler, args):
    """Whether compiler compiles a C file with args, without a warning."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.c"
        probe.write_text("int cydezero_probe(void) { return 0; }\n")
        try:
            compiler.compile([str(probe)], output_dir=tmp,
                             extra_postargs=[*args, "-Werror"])
        except CompileError:
            return False
    return True


class BuildExt(build_ext):
    """No fused multiply-add contraction: GCC contracts a * b + c by default
    where the target has FMA (aarch64, arm64), which would make the small
    matrix products in _kernels.pxd round differently per platform.
    MSVC does not contract by default.

    A build whose switches differ from the last one in this build tree
    recompiles everything: setuptools only compares file times, so it would
    otherwise keep a release module after a debug build (or the reverse)."""

    def build_extensions(self):
        kind = self.compiler.compiler_type
        inline = (not DEBUG and kind != "msvc"
                  and _takes(self.compiler, INLINE_ARGS))
        for ext in self.extensions:
            if kind != "msvc":
                ext.extra_compile_args.append("-ffp-contract=off")
            if inline:
                ext.extra_compile_args += INLINE_ARGS
            if DEBUG:
                ext.extra_compile_args += DEBUG_ARGS.get(kind, DEBUG_ARGS["unix"])
        key = json.dumps({"debug": DEBUG, **{v: os.environ.get(v) for v in
                                            ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS")}})
        stamp = Path(self.build_temp) / "cydezero-build-switches.json"
        if not stamp.is_file() or stamp.read_text() != key:
            self.force = True
        super().build_extensions()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        include_path=[str(PYX.parent)],
        language_level=3,
        compiler_directives=directives,
        build_dir="build/cython-debug" if DEBUG else None,
        force=DEBUG,
    ),
)
