"""examples/seq_models.py: both models train with tiny settings into a
temporary directory, the loss goes down, and the plot and the saved
training state are written (and load back)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'examples', 'seq_models.py')


@pytest.mark.parametrize('model', ['gru', 'attention'])
def test_seq_models_train_and_write_their_files(model, tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path), '--model', model,
                           '--epochs', '3', '--hidden', '8'],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    bars = [ln for ln in proc.stdout.splitlines() if ln.startswith('epoch')]
    assert len(bars) == 3 and '[########################] 12/12' in bars[-1]
    m = re.search(r'first loss ([\d.]+), final loss ([\d.]+)', proc.stdout)
    assert m and float(m.group(2)) < float(m.group(1))
    with open(tmp_path / f'seq_{model}.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with np.load(tmp_path / f'seq_{model}_optimizer.npz') as npz:
        assert '"t": 36' in str(npz['meta'])  # Adam's step count: 3 epochs x 12
        assert any(k.startswith('state/out/W/') for k in npz.files)
