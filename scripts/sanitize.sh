#!/usr/bin/env bash
# Build cydezero with AddressSanitizer + UndefinedBehaviorSanitizer into a
# fresh venv and run the whole test suite under them. Fails (exit 1) when a
# test fails OR when any process, subprocess-run tests included, wrote a
# sanitizer report.
#
#   bash scripts/sanitize.sh                     # release directives (what ships)
#   CYDEZERO_DEBUG=1 bash scripts/sanitize.sh    # plus Cython's None/overflow checks, -O0
#   PYTHON=python3.12 bash scripts/sanitize.sh   # another interpreter
#   bash scripts/sanitize.sh -k hooks -x         # arguments go to pytest
#
# By default the engine keeps the release directives (what ships, Cython's
# bounds checks included): the sanitizers then watch that code, and the debug
# build (its own CI leg) adds Cython's None and overflow checks. Only cydezero is instrumented: Python and NumPy are
# not, but with PYTHONMALLOC=malloc every Python object lives in ASan's heap,
# so the engine's use of a freed object or a read past an array is caught.
# Reports go to $SAN_LOG_DIR (default build/sanitize-logs), one file per
# process; they are printed at the end. The build happens in a copy of the
# working tree (tracked and untracked, not ignored files), so no build output
# of this tree is reused or overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
LOGS=${SAN_LOG_DIR:-$ROOT/build/sanitize-logs}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$LOGS"
mkdir -p "$LOGS"
LOGS=$(cd "$LOGS" && pwd)

# The interpreter is not built with ASan, so the runtime must be loaded first;
# libstdc++ too, or ASan's __cxa_throw interceptor finds no real function when
# a C++ extension (matplotlib's ft2font) throws: "CHECK failed: ...
# real___cxa_throw != 0".
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
for lib in "$LIBASAN" "$LIBSTDCXX"; do
    [[ -f $lib ]] || { echo "sanitize.sh: gcc does not know $(basename "$lib")" >&2; exit 2; }
done
# CFLAGS replaces Python's default flags (-DNDEBUG -g -fwrapv -O3 -Wall).
# -Wall comes back. -DNDEBUG does not: the assert()s of CPython's and NumPy's
# inline headers (types, indices) run too. Nor does -fwrapv: with it GCC's
# UBSan does not check signed overflow (a wrapped size is a short buffer);
# without it the suite gave no report (2026-11-28), so the engine and
# Cython's glue do not rely on wrapping.
SAN_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1 -Wall"
SAN_LDFLAGS="-fsanitize=address,undefined"
# detect_leaks=0: CPython keeps its interned and static objects to the end.
# quarantine_size_mb=16: ASan holds freed memory back from reuse (256 MB by
# default) to catch late uses; the resident-memory soak test in
# test_memory.py measures its growth, which passes with 16 or 24 MB and
# fails with 32 or more. 16 MB is still thousands of freed Python objects.
# allocator_may_return_null=1: an allocation that cannot be had returns NULL,
# as malloc does, instead of aborting; the suite makes one on purpose (8 PiB)
# to prove that a MemoryError while gradients are committed changes nothing.
ASAN_RUN="detect_leaks=0:quarantine_size_mb=16:allocator_may_return_null=1:log_path=$LOGS/asan"
UBSAN_RUN="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan"

echo "== sanitize: $($PY -c 'import sys; print(sys.version.split()[0])'), CYDEZERO_DEBUG=${CYDEZERO_DEBUG:-0}"
mkdir -p "$WORK/src"
git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$WORK/src"
$PY -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
$VPY -m pip install -q --upgrade pip
CFLAGS=$SAN_CFLAGS LDFLAGS=$SAN_LDFLAGS $VPY -m pip install -q "$WORK/src[test]"
echo "versions: $($VPY -c 'import numpy, sys; print(sys.version, numpy.__version__)')"

# GCC's UBSan runtime (libubsan, apart from libasan) ignores log_path when
# ASan is loaded as well, and writes to stderr, where a test that runs a
# subprocess would swallow it. So every interpreter of this venv sets
# libubsan's report path at startup, from UBSAN_OPTIONS (a .pth hook).
SITE=$($VPY -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
LIBUBSAN=$(readlink -f "$(gcc -print-file-name=libubsan.so)")
cat > "$SITE/_sanitize_ubsan_log.py" <<EOF
"""scripts/sanitize.sh: make libubsan honour UBSAN_OPTIONS's log_path."""
import ctypes, os, re
_m = re.search(r'(?:^|:)log_path=([^:]+)', os.environ.get('UBSAN_OPTIONS', ''))
if _m:
    ctypes.CDLL('$LIBUBSAN').__sanitizer_set_report_path(_m.group(1).encode())
EOF
echo "import _sanitize_ubsan_log" > "$SITE/_sanitize_ubsan_log.pth"

# (Importing the engine here would abort: ASan must be preloaded first.)
SO=$(ls "$SITE"/cydezero/_core.*.so)
for sym in __asan_report_load8 __ubsan_handle; do
    nm -D --undefined-only "$SO" | grep -q "$sym" ||
        { echo "sanitize.sh: $SO is not instrumented (no $sym)" >&2; exit 2; }
done

# Canary: the same runtime options must turn a heap overflow and an
# undefined shift in a child process into report files, else a broken setup
# would pass everything. (The size is a parameter so that UBSan's
# object-size check does not catch the overflow before ASan does.)
cat > "$WORK/canary.c" <<'EOF'
#include <stdlib.h>
int overflow(int n) { volatile char *p = malloc(n); int v = p[n]; free((void *)p); return v; }
int shift(int s) { volatile int one = 1; return one << s; }
EOF
gcc -shared -fPIC $SAN_CFLAGS -w "$WORK/canary.c" -o "$WORK/canary.so"
CANARY=$WORK/canary-logs
mkdir -p "$CANARY"
for call in "overflow(4)" "shift(40)"; do
    env LD_PRELOAD="$LIBASAN $LIBSTDCXX" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="${ASAN_RUN/$LOGS/$CANARY}" UBSAN_OPTIONS="${UBSAN_RUN/$LOGS/$CANARY}" \
        $VPY -c "import ctypes, subprocess, sys
subprocess.run([sys.executable, '-c', 'import ctypes; ctypes.CDLL(\"$WORK/canary.so\").$call'])" || true
done
if ! grep -qs heap-buffer-overflow "$CANARY"/asan.* || ! grep -qs "shift exponent" "$CANARY"/ubsan.*; then
    echo "sanitize.sh: the canary's reports did not reach $CANARY; sanitizers not working:" >&2
    ls -l "$CANARY" >&2
    exit 2
fi
echo "canary: both sanitizers report from child processes into log files"

cd "$WORK/src"
START=$SECONDS
set +e
env LD_PRELOAD="$LIBASAN $LIBSTDCXX" PYTHONMALLOC=malloc \
    ASAN_OPTIONS="$ASAN_RUN" UBSAN_OPTIONS="$UBSAN_RUN" \
    "$VPY" -m pytest -p no:cacheprovider "$@"
TESTS=$?
set -e
echo "sanitized suite: $((SECONDS - START)) s, pytest exit $TESTS"

# A log file is a report unless every line in it is ASan's note that an
# allocation could not be had (allocator_may_return_null above: the test that
# asks for 8 PiB on purpose); anything else in any file counts.
NOTE='^==[0-9]+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes$'
REPORTS=""
for f in $(find "$LOGS" -type f -size +0 | sort); do
    if grep -qvE "$NOTE" "$f"; then
        REPORTS+="$f"$'\n'
    else
        echo "note: $f holds only allocation-failure notes ($(wc -l < "$f") lines)"
    fi
done
REPORTS=${REPORTS%$'\n'}
if [[ -n $REPORTS ]]; then
    echo "== $(echo "$REPORTS" | wc -l) sanitizer report(s) in $LOGS:"
    for f in $REPORTS; do
        echo "--- $f"
        head -n 80 "$f"
    done
    exit 1
fi
echo "no sanitizer reports"
exit $((TESTS != 0))
