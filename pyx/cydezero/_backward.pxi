# The backward pass: Functions in generation order, accumulation that never
# writes into an array someone else holds, and a commit once every Function has
# run; one pass at a time per graph; grad().
# Part of the _core module (included by _core.pyx).

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_acquire_lock,
                               PyThread_release_lock, PyLockStatus, PY_LOCK_INTR, NOWAIT_LOCK)
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free

import os

import numpy as np
cimport numpy as cnp

cdef struct _HeapItem:
    Py_ssize_t gen
    size_t seq
    PyObject* f


@cython.final
cdef class _FuncHeap:
    """A binary max-heap of Functions (and fused Variables, see _fused.pxi)
    keyed by (generation, insertion order).

    The latest generation runs first; among equal generations the one pushed
    last runs first, which is exactly the order DeZero's sorted list gives,
    so gradients are summed in the same order and come out bit-identical.
    """
    cdef _HeapItem* items
    cdef Py_ssize_t n, cap
    cdef size_t seq

    def __cinit__(self):
        # Small enough for pymalloc (16 items, 384 bytes): a request of
        # 1 KiB or more from glibc first consolidates its fast bins, which
        # other code's small frees fill (measured: 210,000 instructions in
        # one backward pass of 1,000 nodes after DeZero's run of the same).
        self.cap = 16
        self.items = <_HeapItem*>PyMem_Malloc(self.cap * sizeof(_HeapItem))
        if self.items == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            Py_DECREF(<object>self.items[i].f)
        PyMem_Free(self.items)

    cdef inline bint _before(self, Py_ssize_t a, Py_ssize_t b) noexcept:
        cdef _HeapItem* x = &self.items[a]
        cdef _HeapItem* y = &self.items[b]
        return x.gen > y.gen or (x.gen == y.gen and x.seq > y.seq)

    cdef int push(self, PyObject* node, Py_ssize_t gen) except -1:
        cdef Py_ssize_t i, parent
        cdef _HeapItem tmp
        cdef _HeapItem* grown
        if self.n == self.cap:
            grown = <_HeapItem*>PyMem_Realloc(self.items, 2 * self.cap * sizeof(_HeapItem))
            if grown == NULL:
                raise MemoryError()
            self.items = grown
            self.cap *= 2
        _incref(node)
        i = self.n
        self.items[i].gen = gen
        self.items[i].seq = self.seq
        self.items[i].f = node
        self.seq += 1
        self.n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not self._before(i, parent):
                break
            tmp = self.items[i]
            self.items[i] = self.items[parent]
            self.items[parent] = tmp
            i = parent
        return 0

    cdef object pop(self):
        cdef Py_ssize_t i = 0, child, best
        cdef _HeapItem tmp
        cdef object f = <object>self.items[0].f
        Py_DECREF(f)   # the reference the heap held; `f` holds its own
        self.n -= 1
        self.items[0] = self.items[self.n]
        while True:
            child = 2 * i + 1
            if child >= self.n:
                break
            best = child
            if child + 1 < self.n and self._before(child + 1, child):
                best = child + 1
            if not self._before(best, i):
                break
            tmp = self.items[i]
            self.items[i] = self.items[best]
            self.items[best] = tmp
            i = best
        return f


# Each backward pass has an epoch, a number no other pass has: functions it
# scheduled carry it in _mark (the seen set), variables whose gradient it
# accumulates carry it in _pass.
cdef size_t _epoch = 0

# Passes run one at a time: two threads accumulating into one graph's
# variables would add into each other's buffers. A thread may nest passes
# (a hook calling backward() on another graph); a nested pass that reaches
# a node an outer pass is still working on raises instead of corrupting it.
cdef PyThread_type_lock _pass_lock = PyThread_allocate_lock()
cdef unsigned long _pass_owner = 0      # the thread holding _pass_lock
cdef list _active = []                  # epochs of the passes in progress, outermost first
cdef size_t _active_floor = 0           # _active[0], or 0


cdef void _enter_pass() except *:
    """Take the pass lock for this thread (again, when it holds it)."""
    global _pass_owner
    cdef unsigned long me = _thread_id()
    cdef PyLockStatus r
    if _active and _pass_owner == me:
        return
    if not PyThread_acquire_lock(_pass_lock, NOWAIT_LOCK):
        while True:
            with nogil:
                r = _acquire_timed(_pass_lock, -1, 1)
            if r != PY_LOCK_INTR:
                break
            PyErr_CheckSignals()    # raises KeyboardInterrupt (nothing held)
    _pass_owner = me


cdef size_t _begin_pass() except 0:
    global _epoch, _active_floor
    _enter_pass()
    _arena_new_pass()
    try:
        _epoch += 1
        _active.append(_epoch)
    except BaseException:
        if not _active:
            _release_pass()
        raise
    _active_floor = _active[0]
    return _epoch


cdef void _end_pass(size_t epoch) noexcept:
    global _active_floor
    if _active and _active[len(_active) - 1] == epoch:
        _active.pop()
    _active_floor = _active[0] if _active else 0
    if not _active:
        _release_pass()


cdef void _release_pass() noexcept:
    global _pass_owner
    _pass_owner = 0
    PyThread_release_lock(_pass_lock)


def _after_fork_in_child():
    # A thread that held the lock does not exist in the child.
    global _pass_lock, _pass_owner, _active_floor
    if _active and _pass_owner == _thread_id():
        return      # forked from inside a pass of this very thread
    _pass_lock = PyThread_allocate_lock()
    _pass_owner = 0
    del _active[:]
    _active_floor = 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef object _conflict(object what):
    return RuntimeError(
        'backward: {} is part of a backward pass still in progress (a gradient hook or '
        'a Python backward called backward() or grad() on a graph that the outer pass '
        'is differentiating); differentiate it after that pass, or from a copy'
        .format(what))


cdef inline bint _outer_pass(size_t mark) except -1:
    """Whether mark (a Function's _mark, a fused Variable's _pass) is the
    epoch of a pass still in progress, an outer one when read by a pass
    that has checked it is not its own."""
    return mark >= _active_floor and mark != 0 and mark in _active


cdef inline int _schedule(_FuncHeap heap, Function c, size_t epoch) except -1:
    """Push c unless this pass already did; a c that an outer pass still in
    progress scheduled is that pass's, and is not taken over."""
    if c._mark == epoch:
        return 0
    if _outer_pass(c._mark):
        raise _conflict('a {} whose output gradients'.format(type(c).__name__))
    c._mark = epoch
    return heap.push(<PyObject*>c, c.generation)


cdef inline bint _schedule_maker(_FuncHeap heap, Variable x, size_t prior, int fused,
                                 size_t epoch) except -1:
    """Schedule what made x, which has just been given a gradient: its
    creator, or x itself if an operation was fused into it and this is its
    first gradient of the pass, as _schedule does. prior and fused are x's
    _pass and _is_fused before the gradient was added: adding it can run
    Python code that makes x's creator (with the mark of x's _pass, now
    this pass's), which must not stop x from running. Returns whether x
    was cut by unchain()."""
    if fused:
        if prior == epoch:
            return False
        if _outer_pass(prior):
            raise _conflict('a {} whose output gradients'
                            .format((<type>_fused_type[fused]).__name__))
        heap.push(<PyObject*>x, x.generation - 1)
        return False
    if x._creator is not None:
        _schedule(heap, x._creator, epoch)
    return x._op == _OP_CUT


cdef inline object _own_acc(Variable x, size_t epoch):
    """x's gradient accumulated so far by this pass (None if none); an
    outer pass's is not this pass's to read. One left by a pass that has
    ended (it failed before x's step could release it, see _backward) is
    dropped."""
    if x._acc is None:
        return None
    if x._pass != epoch:
        if _outer_pass(x._pass):
            raise _conflict('a variable of shape {}'.format(_shape_of(x)))
        x._acc = None
        return None
    return x._acc


cdef inline object _pass_acc(Variable x, size_t epoch):
    """x's accumulated gradient if this pass owns it, else None (for the
    pass's own bookkeeping, where another pass's is simply not ours)."""
    return x._acc if x._pass == epoch else None


cdef inline void _release_acc(Variable x, size_t epoch) noexcept:
    """Drop x's accumulated gradient if this pass owns it."""
    if x._pass == epoch:
        _keep_spare(<PyObject*>x._acc)
        x._acc = None


cdef inline int _accumulate(Variable x, object gx, bint graph, list touched,
                            list deferred, size_t epoch, bint pending) except -1:
    """Add gx into x's gradient for this pass. A gradient another variable
    may hold is never modified: in place only into buffers the engine
    allocated.

    x's first gradient of the pass is added to x.grad, as DeZero sums,
    unless deferred is None (a root, whose seed started from x.grad, or
    the functional grad(), which reads no .grad) or x has hooks: they see
    this pass's gradient alone, so x goes into deferred, and a leaf's
    .grad is added after them (_add_deferred_priors). Decided here, once:
    a hook registered or removed later in the pass changes nothing about
    it (a hook registered later sees x.grad in the sum).

    x goes into touched, for the pass's commit and cleanup, unless pending
    says its own step is now scheduled to release the gradient and x.grad
    is None, so that the commit would have nothing to do for it (see
    _backward's lean)."""
    cdef double a, b
    acc = _own_acc(x, epoch)
    if acc is None:
        prior = None
        if deferred is not None and x.grad is not None:
            if x._hooked:
                deferred.append(x)
            else:
                prior = _prior_grad(x, graph)
        if not pending or x.grad is not None:
            touched.append(x)
        x._pass = epoch
        if prior is None:
            x._acc = gx
            x._acc_owned = False
        elif graph:
            x._acc = prior + gx
        else:
            x._acc = _as_arr(_arith(OP_ADD, prior, gx))
            x._acc_owned = True
    elif graph:
        x._acc = acc + gx
    elif x._acc_owned and type(acc) is ndarray and type(gx) is ndarray:
        if _scalar_f64(acc, &a) and _scalar_f64(gx, &b) and _plain(a + b, True):
            (<double*>cnp.PyArray_DATA(<cnp.ndarray>acc))[0] = a + b
        elif _same_shape(acc, gx) and (<cnp.ndarray>acc).dtype == (<cnp.ndarray>gx).dtype:
            acc += gx
        else:
            x._acc = _as_arr(_arith(OP_ADD, acc, gx))
    else:
        x._acc = _as_arr(_arith(OP_ADD, acc, gx))
        x._acc_owned = True
    return 0


cdef object _prior_grad(Variable x, bint graph):
    """x.grad as the start of this pass's sum: a Variable under create_graph,
    else its array. DeZero lets user code store an array there too."""
    g = x.grad
    if g is None or graph:
        return g
    d = _grad_data(g)
    if d is None:
        raise TypeError('backward: the .grad of a variable of shape {} is a {!r}; expected '
                        'a Variable, an array or None'.format(_shape_of(x), type(g)))
    return d


cdef object _commit_grad(object acc, bint graph):
    if graph:
        return acc
    # Broadcast views are read-only; a leaf's gradient is the user's to edit
    # (optimizer hooks scale it in place), so give it its own buffer.
    if type(acc) is ndarray and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>acc):
        acc = acc.copy()
    return _new_var(acc)


cdef object _seed(Variable root, object given, bint graph):
    """The gradient a pass starts from at root: ones, or what was given."""
    cdef int t
    d = root._data
    if d is None:
        raise ValueError('backward() called on a Variable whose data is None')
    if given is None:
        if d is _LAZY:
            seed = _f64(1.0)
        else:
            t = _fast_type(d)
            seed = (_scalar_array(t, 1.0) if t >= 0 and _ndim(d) == 0
                    else np.ones_like(d))
        return _new_var(seed) if graph else seed
    if isinstance(given, Variable):
        return given if graph else _val(<Variable>given)
    g = _as_arr(given)
    if not _is_array(g) or g.shape != _shape_of(root):
        raise ValueError('grad_outputs: expected an array of shape {}, got {!r}'
                         .format(_shape_of(root), getattr(g, 'shape', type(g))))
    return _new_var(g) if graph else g


cdef tuple _live_outputs(Function f):
    """Strong references to f's outputs (None for a dead one), taken before
    any Python code runs for f: a hook or a Python backward may drop the
    last other reference to an output, or relink f's outputs."""
    cdef Py_ssize_t i, n = f._nout
    cdef tuple ys = PyTuple_New(n)
    for i in range(n):
        y = _live(f._outs[i])
        Py_INCREF(y)
        PyTuple_SET_ITEM(ys, i, y)
    return ys


cdef inline void _run_output_hooks(Variable y, bint graph, size_t epoch) except *:
    """y's hooks, on its gradient in this pass, now complete (its creator
    is up); what they return replaces it."""
    acc = _own_acc(y, epoch)
    if acc is not None:
        y._acc = _run_hooks(y, acc, graph)


cdef inline bint _pass_on(_FuncHeap heap, object x_obj, object gx, bint graph, list touched,
                          list deferred, size_t epoch, bint lean) except -1:
    """Add gx, a gradient for input x_obj, into x_obj's gradient, and
    schedule what made x_obj. Returns whether x_obj is a Variable cut by
    unchain() (for grad()'s error). Nothing for a gradient of None, a raw
    constant or a variable that needs none. lean: see _backward."""
    cdef Variable x
    cdef size_t prior
    cdef int fused
    if gx is None or not isinstance(x_obj, Variable):
        return False
    x = <Variable>x_obj
    if x._needs_no_grad:
        return False
    if not graph:
        gx = _as_arr(gx)
    prior = x._pass
    fused = x._op if _is_fused(x) else 0
    # A fused x's first gradient of the pass schedules x itself.
    _accumulate(x, gx, graph, touched, deferred, epoch, lean and fused != 0 and prior != epoch)
    return _schedule_maker(heap, x, prior, fused, epoch)


cdef inline object _take_gy(object y, size_t epoch):
    """Output y's gradient for its creator's backward (None for a dead
    output). Handed on: a backward may pass it through as an input's
    gradient, so it is not added into in place from now on."""
    if y is None:
        return None
    gy = _own_acc(<Variable>y, epoch)
    (<Variable>y)._acc_owned = False
    return gy


cdef list _backward(list roots, list seeds, bint retain, bint graph, list wanted):
    """The backward pass from roots. With wanted None it is
    ``Variable.backward``: gradients add into ``.grad``. Otherwise no
    ``.grad`` is read or written and the gradients of ``wanted`` are
    returned (the functional ``grad``)."""
    global cdz_backprop_off
    cdef Function f
    cdef Variable x, y
    cdef size_t prior
    cdef int op, fused
    cdef Py_ssize_t i, n
    cdef list touched = []
    cdef _FuncHeap heap = _FuncHeap.__new__(_FuncHeap)
    cdef tuple ys, gys, gxs
    cdef bint native, two
    cdef int saved = cdz_backprop_off
    cdef bint functional = wanted is not None
    cdef set keep = {id(v) for v in wanted} if functional else None
    cdef list deferred = None if functional else []     # see _accumulate
    cdef Variable cut = None
    cdef size_t epoch
    # Lean: a fused variable that gets its first gradient is scheduled
    # itself, and its step releases that gradient; unless the pass keeps
    # gradients (retain, or grad()'s wanted) or it has a .grad to clear, it
    # is not recorded in touched, so the commit does not walk it. Should
    # the pass fail first, the cleanup releases it from the heap (or as the
    # node that was running), and a gradient left anyway is dropped by the
    # next pass that reads it (_own_acc).
    cdef bint lean = not retain and not functional
    node = None
    cdef long long t0
    # Set once the pass meets a big gradient: NumPy allocates through the
    # cache of big buffers until the pass ends (see _bufcache.pxi).
    cdef bint cached = False
    cdef object before_cache = None
    # This thread's configuration flags, read on every step: a hook may
    # turn profiling or anomaly mode on mid-pass, and the pass sees it.
    cdef cdz_flags* cfg = cdz_flags_here()

    # The pass in four phases: seed the roots; run the Functions in
    # generation order (each step: outputs' hooks, the backward, accumulate
    # into the inputs, free the outputs' gradients); run the leaves' hooks;
    # commit. Seeds are made before anything is touched, so bad ones change
    # nothing.
    n = len(roots)
    seeds = [_seed(<Variable>roots[i], seeds[i], graph) for i in range(n)]
    epoch = _begin_pass()
    cdz_backprop_off = not graph
    try:
        for i in range(n):
            x = <Variable>roots[i]
            prior = x._pass
            fused = x._op if _is_fused(x) else 0
            _accumulate(x, seeds[i], graph, touched, None, epoch, False)
            if _schedule_maker(heap, x, prior, fused, epoch):
                cut = x

        # Run.
        while heap.n:
            node = heap.pop()
            # (A fused Variable is always a Variable itself, and is told
            # from a Function without a walk of the Function's bases.)
            if type(node) is not Variable and isinstance(node, Function):
                f = <Function>node
            elif _is_fused(<Variable>node):
                # An operation fused into y: the same steps as below, for
                # one output and the inputs y holds (kept for the step).
                y = <Variable>node
                in0, in1 = y._fin0, y._fin1
                op = y._op
                if y._hooked:
                    _run_output_hooks(y, graph, epoch)
                gy1 = _take_gy(y, epoch)
                t0 = _profile_clock() if cfg.profile else 0     # 0: not profiling
                # Both gradients before either is passed on, as a Function's
                # _bw gives them (and with no tuple). The second input is
                # often a constant, which an operation of two inputs gives
                # no gradient.
                two = _fused_arity(op) == 2
                gx0 = _fused_gx(op, 0, gy1, y, in0, in1, graph)
                gx1 = (_fused_gx(op, 1, gy1, y, in0, in1, graph)
                       if two and _needs_grad(in1) else None)
                if t0:
                    _profile_add(<type>_fused_type[op], 1, _profile_clock() - t0)
                if cfg.anomaly:
                    _check_anomaly(<type>_fused_type[op], None, (gy1,),
                                   (gx0, gx1) if two else (gx0,))
                if _pass_on(heap, in0, gx0, graph, touched, deferred, epoch, lean):
                    cut = <Variable>in0
                if two and _pass_on(heap, in1, gx1, graph, touched, deferred, epoch, lean):
                    cut = <Variable>in1
                if not retain:
                    gy1 = gx0 = gx1 = None
                    if keep is None or id(y) not in keep:
                        _release_acc(y, epoch)
                continue
            else:
                # Its creator was made (y.creator was read) since it was
                # scheduled; it runs here, as nothing scheduled it.
                f = (<Variable>node)._creator
                if (f is None or f._mark != epoch or f._nout != 1
                        or f._outs[0] != <PyObject*>node):
                    if lean:
                        # Not run (unchained, or relinked), so its gradient
                        # is the commit's to decide on, as for any node.
                        touched.append(node)
                    continue
            native = _is_native(f)
            # Strong references to the outputs, taken before any Python code
            # runs for f: a hook or a Python backward may drop the last other
            # reference to an output, or relink f's outputs. The usual single
            # output is held in y1, without a tuple.
            n = f._nout
            if n == 1:
                y1 = _live(f._outs[0])
                ys = None
            else:
                y1 = None
                ys = _live_outputs(f)
            # An output's gradient is complete once its creator is up.
            for i in range(n):
                y_obj = y1 if ys is None else ys[i]
                if y_obj is not None and (<Variable>y_obj)._hooked:
                    _run_output_hooks(<Variable>y_obj, graph, epoch)
            # Each output's gradient: gy1 for a single output, else gys.
            gy1 = _take_gy(y1, epoch) if ys is None else None
            gys = None
            if ys is not None or not native or cfg.anomaly:
                gys = PyTuple_New(n)
                for i in range(n):
                    gy = gy1 if ys is None else _take_gy(ys[i], epoch)
                    Py_INCREF(gy)
                    PyTuple_SET_ITEM(gys, i, gy)
                gy = None
                if n > 0:
                    gy1 = gys[0]
            if not cached and n > 0 and _is_big(gy1):
                before_cache = _cache_enter()
                cached = True
            t0 = _profile_clock() if cfg.profile else 0
            # A built-in operation has one output; given more (relinked from
            # Python), it differentiates the first, as it always has.
            if native and n == 0:
                raise RuntimeError('backward: a {} has no outputs (Function.outputs was set '
                                   'to none), so it has no gradient to differentiate'
                                   .format(type(f).__name__))
            if native and not graph and not f._f64_aware():
                gy1 = _arr(gy1)
            gxs = f._bw(gy1, graph) if native else f._py_bw(gys, graph)
            if cfg.profile:
                _profile_add(type(f), 1, _profile_clock() - t0)
            if gxs is None:
                raise TypeError('{}.backward returned no gradients'.format(type(f).__name__))
            if cfg.anomaly:
                _check_anomaly(type(f), f, gys, gxs)
            # f._nin is read on every step: accumulating runs Python code
            # (array subclasses, Variable arithmetic under create_graph).
            i = 0
            while i < f._nin and i < len(gxs):
                gx = gxs[i]
                x_obj = f._inp(i)
                i += 1
                if _pass_on(heap, x_obj, gx, graph, touched, deferred, epoch, lean):
                    cut = <Variable>x_obj
            if not retain:
                # Outputs' gradients are consumed: free them now, not at the
                # end (the loop's own references first, so that they may
                # become spares).
                gys = gy1 = None
                for i in range(n):
                    y_obj = y1 if ys is None else ys[i]
                    if y_obj is not None and (keep is None or id(y_obj) not in keep):
                        _release_acc(<Variable>y_obj, epoch)

        # Finish: leaves' hooks, then the results, all or nothing.
        _run_leaf_hooks(wanted if functional else touched, graph, epoch)
        if functional:
            return [_wanted_grad(<Variable>v, i, cut, graph, epoch) for i, v in enumerate(wanted)]
        _add_deferred_priors(deferred, graph, epoch)
        _commit(touched, retain, graph, epoch)
        return None
    finally:
        cdz_backprop_off = saved
        for x_obj in touched:
            _release_acc(<Variable>x_obj, epoch)
        # After a failure: the node that was running, and those scheduled.
        if isinstance(node, Variable):
            _release_acc(<Variable>node, epoch)
        node = None
        while heap.n:
            node = heap.pop()
            if isinstance(node, Variable):
                _release_acc(<Variable>node, epoch)
        node = None
        _end_pass(epoch)
        if cached:
            _cache_exit(before_cache)
        if _pool_doomed:
            _pool_sweep()


cdef void _run_leaf_hooks(list leaves, bint graph, size_t epoch) except *:
    """Leaves' hooks run last, once each leaf's gradient is complete, and
    before anything is committed."""
    cdef Variable x
    if not _hooks:
        return      # no variable has hooks (a hooked one has an entry)
    for x_obj in leaves:
        x = <Variable>x_obj
        if x._hooked and _is_leaf(x) and _pass_acc(x, epoch) is not None:
            x._acc = _run_hooks(x, x._acc, graph)


cdef void _add_deferred_priors(list deferred, bint graph, size_t epoch) except *:
    """A hooked leaf's hooks saw this pass's gradient alone; its earlier
    .grad is added now (see _accumulate)."""
    cdef Variable x
    for x_obj in deferred:
        x = <Variable>x_obj
        if _is_leaf(x) and x.grad is not None and _pass_acc(x, epoch) is not None:
            prior = _prior_grad(x, graph)
            x._acc = prior + x._acc if graph else _as_arr(_arith(OP_ADD, prior, x._acc))


cdef void _commit(list touched, bint retain, bint graph, size_t epoch) except *:
    """Store the pass's gradients in .grad, all or none: every new value is
    made first (which may fail), then all are stored (which cannot), and
    the old values are released last, after every .grad is in place (their
    release may run Python code). A variable whose .grad does not change
    (an intermediate one without a gradient, the usual case) costs a look.
    The pass's own gradients are released here too and touched is emptied,
    so the pass's cleanup has nothing left to do: one walk over the touched
    variables instead of two, which shows on graphs larger than the caches."""
    cdef Py_ssize_t i, n
    cdef Variable x
    cdef list changed = []      # the variables whose .grad changes
    cdef list new = []          # and what it becomes
    for x_obj in touched:
        x = <Variable>x_obj
        if _is_leaf(x) or retain:
            if _pass_acc(x, epoch) is not None:
                changed.append(x)
                new.append(_commit_grad(x._acc, graph))
        elif x.grad is not None:
            # DeZero frees an intermediate gradient once it is consumed.
            changed.append(x)
            new.append(None)
        else:
            _release_acc(x, epoch)
    n = len(changed)
    cdef list old = [None] * n
    for i in range(n):
        x = <Variable>changed[i]
        old[i] = x.grad
        x.grad = new[i]
    if graph:
        # A gradient that carries a graph can reach back to its variable.
        for i in range(n):
            if isinstance(new[i], Variable):
                _track_graph(changed[i])
                _track_graph(new[i])
    for i in range(n):
        _release_acc(<Variable>changed[i], epoch)
    del touched[:]
    del old


cdef object _wanted_grad(Variable v, Py_ssize_t i, Variable cut, bint graph, size_t epoch):
    if _pass_acc(v, epoch) is not None:
        return _commit_grad(v._acc, graph)
    if cut is not None:
        raise ValueError(
            'grad: input {} (shape {}) is not reachable from the outputs: the graph '
            'was cut by unchain()/unchain_backward() at a variable of shape {}{}'.format(
                i, _shape_of(v), _shape_of(cut),
                '' if cut.name is None else " named '{}'".format(cut.name)))
    return None


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_grad=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned as a
    list (one Variable or None per input) without reading or writing any
    ``.grad``. ``grad_outputs`` seeds each output (ones by default). With
    ``create_graph`` the result is differentiable again, so ``grad`` composes
    for higher orders and gradient penalties.
    """
    single = isinstance(inputs, Variable)
    outs = [outputs] if isinstance(outputs, Variable) else list(outputs)
    ins = [inputs] if single else list(inputs)
    for v in outs + ins:
        if not isinstance(v, Variable):
            raise TypeError('grad: outputs and inputs must be Variables, got {!r}'
                            .format(type(v)))
    for i, v in enumerate(ins):
        if v.data is not None and v.data.dtype.kind not in 'fc':
            raise TypeError('grad: input {} has dtype {} (shape {}); only floating-point '
                            'variables have gradients'.format(i, v.data.dtype, v.data.shape))
    if grad_outputs is None:
        seeds = [None] * len(outs)
    else:
        seeds = [grad_outputs] if isinstance(outputs, Variable) else list(grad_outputs)
        if len(seeds) != len(outs):
            raise ValueError('grad: {} grad_outputs for {} outputs'
                             .format(len(seeds), len(outs)))
    return _backward(outs, seeds, retain_grad, create_graph, ins)
