"""Write the pickles that tests/test_pickle_compat.py reads back.

    python tests/data/make_pickles.py

Run once per release whose pickle format must stay readable; the files are
kept, never regenerated over. A pickle names the classes and functions that
rebuild its objects by module path (cydezero._core.Variable, ...), so these
files fail the test if a refactoring moves one of them.
"""
import pathlib
import pickle
import sys

import numpy as np

import cydezero
from cydezero import Parameter, Variable

HERE = pathlib.Path(__file__).parent


def objects():
    """What the pickles hold: a leaf of each kind, with a gradient and
    requires_grad=False among them."""
    x = Variable(np.arange(6.0).reshape(2, 3), name='x')
    x.grad = Variable(np.full((2, 3), 0.5))
    W = Parameter(np.ones((3, 2), dtype=np.float32), name='W')
    c = Variable(np.array(2.0), requires_grad=False)
    return {'x': x, 'W': W, 'c': c}


def main():
    path = HERE / f'pickle-{cydezero.__version__}.pkl'
    if path.exists():
        sys.exit(f'{path} exists: pickles of a release are kept, not rewritten')
    with open(path, 'wb') as f:
        pickle.dump(objects(), f, protocol=2)
    print('wrote', path)


if __name__ == '__main__':
    main()
