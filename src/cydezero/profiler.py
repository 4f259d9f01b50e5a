"""Where the time goes: ``cydezero.profile()`` counts and times each
Function type's forward and backward calls made inside it::

    with cydezero.profile() as report:
        loss = model(x)
        loss.backward()
    print(report.table())
    report.stats['Linear']['backward_s']

The clock is read around each Function's own computation (its forward or
backward), in the thread that entered the block, so the table says which
operations cost; what the engine does around them (recording the graph,
accumulating gradients) is the difference between the block's wall time and
the table's total. Outside a block the engine pays one test of a C flag per
call.
"""
import contextlib
import time

from cydezero import _core

__all__ = ['profile', 'ProfileReport']


class ProfileReport:
    """What a ``profile()`` block recorded; complete once the block ends."""

    def __init__(self):
        self._table = {}
        self.wall_s = None  #: seconds the block took, wall clock

    @property
    def stats(self):
        """``{name: {'forward_calls', 'forward_s', 'backward_calls',
        'backward_s', 'total_s'}}`` per Function type (its class name; the
        qualified name where two types share one)."""
        names = {}
        for cls in self._table:
            names.setdefault(cls.__name__, []).append(cls)
        out = {}
        for cls, (nf, tf, nb, tb) in self._table.items():
            name = cls.__name__ if len(names[cls.__name__]) == 1 else \
                f'{cls.__module__}.{cls.__qualname__}'
            out[name] = {'forward_calls': nf, 'forward_s': tf / 1e9,
                         'backward_calls': nb, 'backward_s': tb / 1e9,
                         'total_s': (tf + tb) / 1e9}
        return out

    def table(self, limit=None):
        """A text table, one row per Function type, most time first."""
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1]['total_s'])
        if limit is not None:
            rows = rows[:limit]
        total = sum(s['total_s'] for _, s in rows) or 1.0
        width = max([len('function')] + [len(n) for n, _ in rows])
        lines = [f"{'function':<{width}}  {'fwd calls':>9}  {'fwd ms':>9}  "
                 f"{'bwd calls':>9}  {'bwd ms':>9}  {'total ms':>9}  {'share':>6}"]
        for name, s in rows:
            lines.append(f"{name:<{width}}  {s['forward_calls']:>9}  {s['forward_s'] * 1e3:>9.3f}  "
                         f"{s['backward_calls']:>9}  {s['backward_s'] * 1e3:>9.3f}  "
                         f"{s['total_s'] * 1e3:>9.3f}  {s['total_s'] / total:>6.1%}")
        if self.wall_s is not None:
            lines.append(f'(block: {self.wall_s * 1e3:.3f} ms wall; the rest is the engine and '
                         'Python around the Functions)')
        return '\n'.join(lines)

    def __repr__(self):
        return f'<ProfileReport of {len(self._table)} Function types>'


@contextlib.contextmanager
def profile():
    """Record, per Function type, the number of forward and backward calls
    and the time spent in them, for code run in this thread inside the
    block; yields a ``ProfileReport``. Blocks nest: each sees what ran
    inside it."""
    report = ProfileReport()
    start = time.perf_counter()
    report._table = _core._profile_begin()
    try:
        yield report
    finally:
        _core._profile_end(report._table)
        report.wall_s = time.perf_counter() - start
