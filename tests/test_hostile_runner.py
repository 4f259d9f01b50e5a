"""The runner of hostile snippets forks only when the test run has no other
Python thread: a fork copies the locks another thread holds, and CPython
3.12+ warns about it (a DeprecationWarning). The warning CPython 3.12.1
still gives for a moment after a thread ended is not let out either."""
import threading
import warnings

import hostile_runner
from hostile_runner import run

# 'pytest' is imported in the test run, so a forked child has it and a new
# interpreter does not.
SNIPPET = "print('forked', 'pytest' in sys.modules)"


def run_recording_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lines = run(SNIPPET)
    return lines, [str(w.message) for w in caught]


def test_a_live_thread_sends_the_snippet_to_a_new_interpreter(monkeypatch):
    alone = hostile_runner._alone
    monkeypatch.setattr(hostile_runner, '_alone', lambda: alone(wait=0.05))
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(30,))
    worker.start()
    try:
        lines, caught = run_recording_warnings()
    finally:
        release.set()
        worker.join()
    assert lines == ['forked False']
    assert caught == []


def test_the_runner_forks_again_once_the_thread_has_ended():
    for _ in range(20):      # join() can return while the thread still counts
        worker = threading.Thread(target=lambda: None)
        worker.start()
        worker.join()
        lines, caught = run_recording_warnings()
        assert lines == ['forked {}'.format(hostile_runner.FORK)]
        assert caught == []
