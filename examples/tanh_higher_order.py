"""Higher-order derivatives of tanh by differentiating the backward pass
itself (``backward(create_graph=True)``), as in step 35 of "Deep Learning
from Scratch 3", with cydezero standing in for DeZero.

Prints the first ``--order`` derivatives of tanh at ``--x`` next to their
closed forms, writes the computational graph of the last one as Graphviz
DOT text to ``OUTDIR/tanh.dot``, and renders ``OUTDIR/tanh.png`` with
``plot_dot_graph`` (with Graphviz's ``dot`` program when it is installed,
else with cydezero's own renderer; at most a few thousand pixels a side).

    python examples/tanh_higher_order.py [OUTDIR] [--order 6] [--x 1.0]
"""
import argparse
import os
import shutil
import warnings

import numpy as np

import cydezero.functions as F
from cydezero import Variable
from cydezero.utils import GraphvizNotFoundWarning, get_dot_graph, plot_dot_graph


def tanh_derivatives_closed_form(x, order):
    """d^k/dx^k tanh(x) for k = 1..order, from the polynomials P_k with
    d^k tanh = P_k(tanh) and P_{k+1}(y) = P_k'(y) (1 - y^2), P_0(y) = y."""
    y = np.tanh(x)
    p = np.polynomial.Polynomial([0, 1])
    one_minus_y2 = np.polynomial.Polynomial([1, 0, -1])
    values = []
    for _ in range(order):
        p = p.deriv() * one_minus_y2
        values.append(p(y))
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('outdir', nargs='?', default='.',
                        help='directory for tanh.dot / tanh.png (default: current directory)')
    parser.add_argument('--order', type=int, default=6, help='highest derivative (>= 1)')
    parser.add_argument('--x', type=float, default=1.0, help='where to differentiate')
    args = parser.parse_args(argv)
    if args.order < 1:
        parser.error('--order must be at least 1')
    os.makedirs(args.outdir, exist_ok=True)

    x = Variable(np.array(args.x))
    y = F.tanh(x)
    x.name = 'x'
    y.name = 'y'
    y.backward(create_graph=True)

    expected = tanh_derivatives_closed_form(args.x, args.order)
    for k in range(1, args.order + 1):
        gx = x.grad
        print(f'd^{k} tanh / dx^{k} at x = {args.x}: {float(gx.data): .10f}'
              f'   (closed form {expected[k - 1]: .10f})')
        if k == args.order:
            break
        x.cleargrad()
        gx.backward(create_graph=True)

    gx.name = f'gx{args.order}'
    dot_path = os.path.join(args.outdir, 'tanh.dot')
    with open(dot_path, 'w') as f:
        f.write(get_dot_graph(gx, verbose=False))
    print('wrote ' + dot_path)

    png_path = os.path.join(args.outdir, 'tanh.png')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', GraphvizNotFoundWarning)    # said below
        plot_dot_graph(gx, verbose=False, to_file=png_path)
    how = ('Graphviz' if shutil.which('dot') else
           "cydezero's own renderer: Graphviz's `dot` program is not installed")
    print(f'wrote {png_path} ({how})')

if __name__ == '__main__':
    main()
