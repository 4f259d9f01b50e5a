# Anomaly detection: where each Function was recorded, and the check of
# every backward result for NaN and infinity.
# Part of the _core module (included by _core.pyx).

import linecache
import os
import sys
import weakref
from functools import partial

import numpy as np

# With detect_anomaly on, each recorded Function remembers where the forward
# pass created it, and backward checks every gradient it produces. Sites are
# kept by identity ({id: (weak reference, site)}), never by a Function's own
# __hash__ or __eq__, which a subclass may define (or make unhashable).
cdef dict _anomaly_sites = {}


def _forget_site(Py_ssize_t key, ref):
    entry = _anomaly_sites.get(key)
    if entry is not None and entry[0] is ref:
        del _anomaly_sites[key]


cdef void _record_site(Function f) except *:
    key = id(f)
    _anomaly_sites[key] = (weakref.ref(f, partial(_forget_site, key)), _creation_site())


cdef object _site_of(Function f):
    entry = _anomaly_sites.get(id(f))
    if entry is not None and entry[0]() is f:
        return entry[1]
    return None
cdef str _PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


cdef str _creation_site():
    """The innermost caller outside cydezero: 'file:line in func: code'."""
    frame = sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
    if frame is None:
        return 'an unknown place'
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return '{}:{} in {}{}'.format(frame.f_code.co_filename, frame.f_lineno,
                                  frame.f_code.co_name, ': ' + code if code else '')


cdef inline bint _finite(object g):
    g = _arr(_val(<Variable>g) if isinstance(g, Variable) else g)
    return g.dtype.kind not in 'fc' or bool(np.isfinite(g).all())


cdef void _check_anomaly(type kind, Function f, tuple gys, tuple gxs) except *:
    """Raise if a backward of a kind Function produced a non-finite
    gradient; f is that Function, None for an operation fused into its
    output (which was made outside anomaly mode, so has no site)."""
    cdef Py_ssize_t i
    for i in range(len(gxs)):
        gx = gxs[i]
        if gx is None or _finite(gx):
            continue
        g = _arr(_val(<Variable>gx) if isinstance(gx, Variable) else gx)
        what = 'NaN' if np.isnan(g).any() else 'inf'
        upstream = [gy for gy in gys if gy is not None and not _finite(gy)]
        site = None if f is None else _site_of(f)
        raise FloatingPointError(
            '{name}.backward produced {what} in the gradient of its input {i} (shape {shape}){up}. '
            'This {name} was created at {site}'.format(
                name=kind.__name__, what=what, i=i, shape=g.shape,
                up=' from an already non-finite incoming gradient' if upstream else '',
                site=site or 'a place unknown (it was created before detect_anomaly was on)'))
