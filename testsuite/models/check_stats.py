#!/usr/bin/python3
"""check_stats.py — checks a compile's `vtopt --stats` output (a file, or - for stdin) for the
generated share: "N of M nodes in generated kernels" at least --min-share, and the host
(interpreter) kernels only those --host OP=COUNT allows (by op, at most COUNT each; none given:
no host kernel at all). Exit 0 when as expected, 1 when not (one line per failure), 2 when the
stats lack the codegen summary. The zoo tests do the same through zoo_check.py and
compiled_expect.json; this is for the compiled tests' shell fixtures.

usage: check_stats.py STATS --what NAME [--min-share X] [--host OP=COUNT ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_check import check_generated  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('stats')
    ap.add_argument('--what', required=True, help='name for the messages (model, library)')
    ap.add_argument('--min-share', type=float, default=1.0)
    ap.add_argument('--host', action='append', default=[], help='OP=COUNT: host kernels allowed')
    a = ap.parse_args()
    out = sys.stdin.read() if a.stats == '-' else open(a.stats).read()
    host = {}
    for h in a.host:
        op, _, n = h.partition('=')
        host[op] = int(n or 1)
    fails = check_generated(a.what, out, {'min_generated_share': a.min_share, 'host': host})
    for f in fails:
        print(f'check_stats: {a.what}: {f}', file=sys.stderr)
    if fails and fails[0].startswith('no "N of M'):
        return 2
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
