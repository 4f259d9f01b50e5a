# cython: language_level=3
"""The graph engine of cydezero: Variable, Function, and backward.

Read this file top to bottom to see how a define-by-run graph is recorded and
differentiated: the per-thread configuration, the node types, the backward loop
(a generation-ordered heap, a seen mark, gradient accumulation), and the
built-in operations, each a small class whose backward states its derivative.

A built-in backward is written once and runs in two modes. Without
create_graph it receives and returns plain arrays (nothing is recorded, no
Variable is wrapped around an intermediate gradient); with create_graph it
receives Variables and the same expressions record a graph, so derivatives of
any order work. The ``graph`` flag picks the mode for the few helpers whose
array and Variable spellings differ.
"""
cimport numpy as cnp

cnp.import_array()

# The parts, in reading order. Each is a .pxi file (never .pyx: setup.py
# builds every .pyx as a module of its own) that opens by saying what it holds.
# An operation part holds, for each operation, its Function class (forward,
# backward with the derivative in its docstring) and then the function users
# call, with a one-line docstring.
# One module, not several: the per-thread flags, the pool and the hot inline
# helpers are shared, and __module__ (what pickles record) stays cydezero._core.
include "_cpython.pxi"     # reference counts, thread ids, FP flags, _live()
include "_config.pxi"      # enable_backprop, train, detect_anomaly per thread
include "_arrays.pxi"      # arrays, 0-d float64 arithmetic, sum_to_array
include "_variable.pxi"    # Variable and Parameter
include "_hooks.pxi"       # gradient hooks and their handles
include "_anomaly.pxi"     # detect_anomaly: recording sites, checking gradients
include "_profile.pxi"     # profile(): calls and time per Function type
include "_blocks.pxi"      # a table of freed memory blocks, what the two caches below share
include "_bufcache.pxi"    # the cache of big gradient buffers (a NumPy memory handler)
include "_arenas.pxi"      # the cache of freed object arenas (CPython's arena allocator)
include "_function.pxi"    # Function, recording a forward (_apply)
include "_fused.pxi"       # scalar operations fused into their output Variable
include "_tracking.pxi"    # which nodes the cycle collector sees
include "_backward.pxi"    # the backward pass and grad()
include "_ops.pxi"         # what the built-in operations share, _Builtin
include "_ops_math.pxi"    # + - * / neg pow sin cos tanh exp log
include "_ops_tensor.pxi"  # reshape transpose sum sum_to broadcast_to matmul get_item max min
include "_sum_order.pxi"   # which order NumPy sums in, for the fast paths below
include "_buffers.pxi"     # plain float32/float64 buffers and the result pool
include "_ops_nn.pxi"      # linear sigmoid relu mean_squared_error, fast paths
include "_optim.pxi"       # optimizer steps in one call (Adam)
include "_softmax_ce.pxi"  # softmax cross entropy in one call
