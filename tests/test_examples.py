"""examples/: each program runs as a subprocess with tiny settings into a
temporary directory, writes its files, and its loss goes down; spiral_mlp.py
prints what DeZero prints for the same program."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'examples')


def run(script, *args, cwd=None):
    proc = subprocess.run([sys.executable, script, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def first_and_final_loss(out):
    m = re.search(r'first loss ([\d.]+), final loss ([\d.]+)', out)
    assert m, out
    return float(m.group(1)), float(m.group(2))


def is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_spiral_mlp_trains_and_writes_both_plots(tmp_path):
    out = run(os.path.join(EXAMPLES, 'spiral_mlp.py'), tmp_path / 'out', '--epochs', 4)
    lines = [ln for ln in out.splitlines() if ln.startswith('epoch')]
    assert len(lines) == 4 and lines[0].startswith('epoch 1/4 [####################]')
    first, final = first_and_final_loss(out)
    assert final < first
    for name in ('spiral_loss.png', 'spiral_boundary.png'):
        assert is_png(tmp_path / 'out' / name)


def test_spiral_mlp_writes_into_the_current_directory_by_default(tmp_path):
    run(os.path.join(EXAMPLES, 'spiral_mlp.py'), '--epochs', 1, cwd=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ['spiral_boundary.png', 'spiral_loss.png']


def test_spiral_mlp_prints_what_dezero_prints(dezero, tmp_path):
    """The same program on DeZero 0.0.13 (imports swapped) prints the same
    losses and accuracies, epoch by epoch."""
    with open(os.path.join(EXAMPLES, 'spiral_mlp.py')) as f:
        source = f.read()
    source = source.replace('import cydezero as dezero',
                            'import numpy\nnumpy.int = int\nimport dezero')
    source = source.replace('cydezero', 'dezero')
    oracle = tmp_path / 'spiral_mlp_dezero.py'
    oracle.write_text(source)
    ours = run(os.path.join(EXAMPLES, 'spiral_mlp.py'), tmp_path / 'a', '--epochs', 3)
    theirs = run(oracle, tmp_path / 'b', '--epochs', 3)

    def numbers(out):
        return [ln for ln in out.splitlines() if not ln.startswith('wrote')]
    assert numbers(ours) == numbers(theirs)


def test_sin_curve_loss_goes_down_and_plot_is_written(tmp_path):
    png = tmp_path / 'sin.png'
    for cell in ('lstm', 'rnn'):
        out = run(os.path.join(EXAMPLES, 'sin_curve.py'), '--epochs', 3, '--hidden', 20,
                  '--cell', cell, '--plot', png)
        assert len(re.findall(r'^\| epoch \d+ \| loss', out, re.MULTILINE)) == 3
        first, final = first_and_final_loss(out)
        assert final < first
        assert is_png(png)
        os.remove(png)
    out = run(os.path.join(EXAMPLES, 'sin_curve.py'), '--epochs', 1, '--hidden', 5)
    assert 'wrote' not in out  # no plot unless asked


def test_tanh_higher_order_matches_closed_forms_and_writes_dot(tmp_path):
    out = run(os.path.join(EXAMPLES, 'tanh_higher_order.py'), tmp_path, '--order', 4,
              '--x', 0.5)
    rows = re.findall(r'd\^(\d) tanh / dx\^\d at x = 0.5: +(-?[\d.]+) +\(closed form +(-?[\d.]+)\)',
                      out)
    assert [int(k) for k, _, _ in rows] == [1, 2, 3, 4]
    y = np.tanh(0.5)
    exact = [1 - y**2, -2 * y * (1 - y**2), (1 - y**2) * (6 * y**2 - 2),
             8 * y * (1 - y**2) * (2 - 3 * y**2)]
    np.testing.assert_allclose([float(v) for _, v, _ in rows], exact, rtol=1e-8)
    np.testing.assert_allclose([float(v) for _, _, v in rows], exact, rtol=1e-8)
    dot = (tmp_path / 'tanh.dot').read_text()
    assert dot.startswith('digraph g {') and dot.rstrip().endswith('}')
    assert 'label="gx4"' in dot and 'label="x"' in dot and '->' in dot
    png = tmp_path / 'tanh.png'
    assert is_png(png)      # drawn by Graphviz, or without it by cydezero
    from PIL import Image
    with Image.open(png) as im:
        assert max(im.size) <= 4000
    if shutil.which('dot') is None:
        assert "`dot` program is not installed" in out


def test_every_example_is_listed_in_the_readme():
    with open(os.path.join(EXAMPLES, 'README.md')) as f:
        readme = f.read()
    scripts = sorted(n for n in os.listdir(EXAMPLES) if n.endswith('.py'))
    assert scripts
    for name in scripts:
        assert f'`{name}`' in readme and f'python examples/{name}' in readme


@pytest.mark.parametrize('name', ['spiral_mlp.py', 'sin_curve.py', 'tanh_higher_order.py'])
def test_help_works(name):
    assert 'usage' in run(os.path.join(EXAMPLES, name), '--help')
