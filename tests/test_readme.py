"""The README's Python snippets run as they are written and print what the
README says they print.

Each ```python block is a whole program. A ``print(...)`` line's trailing
comment is the line it prints; comment lines at the end of a block that
begin with an exception's name (``# FloatingPointError: ...``) are the
error the program ends with (the comment lines joined by spaces, the file
named as in the README)."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md')


def snippets():
    with open(README, encoding='utf-8') as f:
        text = f.read()
    blocks = re.findall(r'^```python\n(.*?)^```', text, flags=re.M | re.S)
    return [pytest.param(b, id=f'snippet{i + 1}') for i, b in enumerate(blocks)]


def expected(block):
    """(stdout lines, error text or None) that the README shows."""
    lines = block.splitlines()
    prints = [ln.split('# ', 1)[1].rstrip() for ln in lines
              if ln.lstrip().startswith('print(') and '# ' in ln]
    tail = []
    for ln in reversed(lines):
        if not ln.startswith('# '):
            break
        tail.insert(0, ln[2:].strip())
    error = ' '.join(tail) if tail and re.match(r'\w+(Error|Exception):', tail[0]) else None
    return prints, error


def test_the_readme_has_snippets():
    assert len(snippets()) >= 5


@pytest.mark.parametrize('block', snippets())
def test_snippet_runs_and_prints_what_the_readme_shows(block, tmp_path):
    script = tmp_path / 'script.py'
    script.write_text(block)
    p = subprocess.run([sys.executable, 'script.py'], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, check=False)
    prints, error = expected(block)
    assert [ln.rstrip() for ln in p.stdout.splitlines()] == prints
    if error is None:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode == 1
        last = p.stderr.strip().splitlines()[-1]
        assert last.replace(str(script), 'script.py') == error
