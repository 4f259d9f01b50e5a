# Marks pyx/cydezero as the package cydezero for Cython, so that _core.pyx
# can cimport its sibling _kernels.pxd in a clean build (no package on sys.path).
