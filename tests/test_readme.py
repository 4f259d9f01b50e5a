"""The Python snippets of the README and of docs/*.md run as they are written and print what the
README says they print.

Each ```python block is a whole program. A ``print(...)`` line's trailing
comment is the line it prints; comment lines at the end of a block that
begin with an exception's name (``# FloatingPointError: ...``) are the
error the program ends with (the comment lines joined by spaces, the file
named as in the README)."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md')


DOCS = os.path.join(os.path.dirname(README), 'docs')
# The README and the guides written in Markdown beside the Sphinx pages.
PAGES = [README] + sorted(os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith('.md'))


def snippets():
    out = []
    for page in PAGES:
        with open(page, encoding='utf-8') as f:
            text = f.read()
        blocks = re.findall(r'^```python\n(.*?)^```', text, flags=re.M | re.S)
        name = os.path.splitext(os.path.basename(page))[0]
        out += [pytest.param(b, id=f'{name}-{i + 1}') for i, b in enumerate(blocks)]
    return out


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


def test_the_pages_have_snippets():
    assert len(snippets()) >= 5


@pytest.mark.parametrize('block', snippets())
def test_snippet_runs_and_prints_what_the_readme_shows(block, tmp_path):
    if 'cydezero.distributed' in block and importlib.util.find_spec('mpi4py') is None:
        # the mpi leg of .ci/run installs the extra and runs this test
        pytest.skip('needs mpi4py (pip install ".[mpi]")')
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
