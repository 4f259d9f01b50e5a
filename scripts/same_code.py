"""Show that two Cython-generated C files hold the same code.

    python scripts/same_code.py before/_core.c after/_core.c

For checking that moving engine code between parts changed nothing: comments,
#line markers, source positions and Cython's sequence numbers in generated
names are replaced by placeholders, each file is cut into function
definitions, and the definitions whose bodies differ are listed. A pure move
differs only in the module's set-up and teardown tables (the order in which
names, code objects and types are created follows the source order), and the
module's exec function may hold the same statements in another order.
Exit status 0 when nothing but those differs.
"""
import re
import sys

# Functions whose contents follow the order of the source, not its code.
SETUP_TABLES = {
    '__pyx_m_clear', '__pyx_m_traverse', '__Pyx_InitConstants',
    '__Pyx_CreateCodeObjects', '__Pyx_InitCachedConstants',
    '__Pyx_modinit_type_init_code', '__Pyx_CreateStringTabAndInitStrings',
}

_SUBS = [
    (re.compile(r'/\*.*?\*/', re.S), ''),
    (re.compile(r'^\s*#line .*$', re.M), ''),
    (re.compile(r'__PYX_ERR\(\d+, \d+,'), '__PYX_ERR(F, L,'),
    (re.compile(r'__pyx_lineno = \d+'), '__pyx_lineno = L'),
    (re.compile(r'__pyx_clineno = \d+'), '__pyx_clineno = L'),
    (re.compile(r'__pyx_f\[\d+\]'), '__pyx_f[F]'),
    (re.compile(r'(__pyx_(?:pf|pw|mdef|doc|codeobj|tuple|slice|int|float|k|n|kp|kp_s|kp_u|'
                r'n_s|n_u|umethod|ptype|vtabptr|vtable|type|scope|mstate|defaults|'
                r'CyFunctionObject)_?)\d+'), r'\1N'),
    (re.compile(r'(_8cydezero_5_core_)\d+'), r'\1N'),
    (re.compile(r'(_5_core_)\d+(?=[A-Za-z_])'), r'\1N'),
    (re.compile(r'(->__pyx_\w+)\[\d+\]'), r'\1[N]'),
    (re.compile(r'(__pyx_pybuffernd|__pyx_t)_\d+'), r'\1_N'),
    (re.compile(r'[ \t]+$', re.M), ''),
    (re.compile(r'\n\s*\n+'), '\n'),
]

_DEF = re.compile(r'^(?:static|CYTHON_UNUSED static|PyMODINIT_FUNC)'
                  r'[^;\n]*?\b(\w+)\([^;{]*\)\s*(\{?)\s*$')


def functions(path):
    text = open(path, encoding='utf-8').read()
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    out = {}
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        m = _DEF.match(lines[i])
        j = i + 1
        if m and not m.group(2):  # the brace may follow, after preprocessor lines
            while j < len(lines) and lines[j].startswith('#'):
                j += 1
            if j >= len(lines) or lines[j] != '{':
                m = None
        if not m:
            i += 1
            continue
        while j < len(lines) and lines[j] != '}':
            j += 1
        out.setdefault(m.group(1), []).append('\n'.join(lines[i:j + 1]))
        i = j + 1
    return {k: sorted(v) for k, v in out.items()}


def main(before, after):
    a, b = functions(before), functions(after)
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    changed = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
    # The module's exec function runs the module's top level in source order;
    # a part moved past another creates its names at another point in it.
    # The same statements in another order are reported, not counted.
    reordered = [k for k in changed if k.startswith('__pyx_pymod_exec_')
                 and sorted('\n'.join(a[k]).split('\n')) == sorted('\n'.join(b[k]).split('\n'))]
    for k in reordered:
        print(f'reordered: {k}  (the same statements, in the new order of the parts)')
    changed = [k for k in changed if k not in reordered]
    print(f'{len(a)} functions before, {len(b)} after, {len(a.keys() & b.keys())} in both')
    for label, names in (('only before', only_a), ('only after', only_b), ('differ', changed)):
        for k in names:
            print(f'{label}: {k}' + ('  (set-up/teardown table)' if k in SETUP_TABLES else ''))
    code = [k for k in only_a + only_b + changed if k not in SETUP_TABLES]
    print('same code' if not code else f'{len(code)} functions differ in code')
    return 1 if code else 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:3]))
