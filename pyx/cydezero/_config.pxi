# Configuration, one copy per thread: enable_backprop, train and detect_anomaly
# as C thread-locals, read and written by Config in core.py.
# Part of the _core module (included by _core.pyx).

# A C thread-local is the cheapest per-thread flag there is: every function
# call reads it. The values are stored inverted so that a new thread starts
# from zero-initialised memory with DeZero's defaults (backprop on, train on).
cdef extern from *:
    """
    #if defined(_MSC_VER)
    #  define CDZ_TLS __declspec(thread)
    #else
    #  define CDZ_TLS __thread
    #endif
    static CDZ_TLS int cdz_backprop_off = 0;
    static CDZ_TLS int cdz_test_mode = 0;
    static CDZ_TLS int cdz_anomaly = 0;
    static CDZ_TLS int cdz_profile = 0;
    """
    int cdz_backprop_off
    int cdz_test_mode
    int cdz_anomaly
    int cdz_profile     # how many profile() blocks this thread is inside

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
