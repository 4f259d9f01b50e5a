# Configuration, one copy per thread: enable_backprop, train and detect_anomaly
# as C thread-locals, read and written by Config in core.py.
# Part of the _core module (included by _core.pyx).

# A C thread-local is the cheapest per-thread flag there is: every function
# call reads it. The values are stored inverted so that a new thread starts
# from zero-initialised memory with DeZero's defaults (backprop on, train on).
# They are one struct, so that code reading several finds them with one
# lookup of this thread's copy (cdz_flags_here(), a call into the C library
# in a shared object), and a loop that runs on one thread (a backward pass)
# keeps the pointer and reads the flags through it with no lookup at all.
cdef extern from *:
    """
    #if defined(_MSC_VER)
    #  define CDZ_TLS __declspec(thread)
    #else
    #  define CDZ_TLS __thread
    #endif
    typedef struct {
        int backprop_off;
        int test_mode;
        int anomaly;
        int profile;
    } cdz_flags;
    static CDZ_TLS cdz_flags cdz_tls = {0, 0, 0, 0};
    #define cdz_backprop_off (cdz_tls.backprop_off)
    #define cdz_test_mode (cdz_tls.test_mode)
    #define cdz_anomaly (cdz_tls.anomaly)
    #define cdz_profile (cdz_tls.profile)
    /* Not inlined, on purpose: inlined, the compiler computes the
       thread-local's address again (a call into the C library) at each
       use of the pointer in a loop instead of keeping it. */
    #if defined(_MSC_VER)
    #  define CDZ_NOINLINE __declspec(noinline)
    #elif defined(__GNUC__)
    #  define CDZ_NOINLINE __attribute__((noinline))
    #else
    #  define CDZ_NOINLINE
    #endif
    static CDZ_NOINLINE cdz_flags* cdz_flags_here(void) { return &cdz_tls; }
    """
    ctypedef struct cdz_flags:
        int backprop_off
        int test_mode
        int anomaly
        int profile     # how many profile() blocks this thread is inside
    # This thread's flags. The address is this thread's for its whole life.
    cdz_flags* cdz_flags_here()
    int cdz_backprop_off
    int cdz_test_mode
    int cdz_anomaly
    int cdz_profile

_CONFIG_FLAGS = ('enable_backprop', 'train', 'detect_anomaly')


def _config_get(str name):
    """Read a per-thread configuration flag (``Config`` is built on this)."""
    if name == 'enable_backprop':
        return not cdz_backprop_off
    if name == 'train':
        return not cdz_test_mode
    if name == 'detect_anomaly':
        return bool(cdz_anomaly)
    raise AttributeError(name)


def _config_set(str name, value):
    """Write a per-thread configuration flag for the calling thread only."""
    global cdz_backprop_off, cdz_test_mode, cdz_anomaly
    if name == 'enable_backprop':
        cdz_backprop_off = not value
    elif name == 'train':
        cdz_test_mode = not value
    elif name == 'detect_anomaly':
        cdz_anomaly = bool(value)
    else:
        raise AttributeError(name)
