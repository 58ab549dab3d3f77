#!/usr/bin/env python3
"""Run the pa integration tests and print TAP.

usage: tests/integration/run.py [NAME-SUBSTRING...] [-NAME-SUBSTRING...]
(a leading - leaves the tests it matches out)

Each test is a function named test_* in test_*.py here; it raises Skip
with a reason when it cannot run on this machine.  Exit status 1 if any
test failed.
"""

import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MODULES = ["test_backend", "test_bad_input", "test_restart_guest",
           "test_discovery", "test_migration", "test_hda", "test_bench",
           "test_packaging"]


def selected(full, filters):
    """@full is wanted: it matches a filter (any test if there is none),
    and no -filter."""
    want = [f for f in filters if not f.startswith("-")]
    drop = [f[1:] for f in filters if f.startswith("-")]
    return (not want or any(f in full for f in want)) and \
        not any(f in full for f in drop)


def collect(filters):
    tests = []
    for name in MODULES:
        mod = importlib.import_module(name)
        for attr in sorted(vars(mod), key=lambda a: getattr(
                getattr(mod, a), "__code__", None) and
                getattr(mod, a).__code__.co_firstlineno or 0):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                full = f"{name}/{attr[5:]}"
                if selected(full, filters):
                    tests.append((full, fn))
    return tests


def main():
    tests = collect(sys.argv[1:])
    print(f"1..{len(tests)}", flush=True)
    failed = 0
    for n, (name, fn) in enumerate(tests, 1):
        start = time.monotonic()
        try:
            fn()
        except harness.Skip as e:
            print(f"ok {n} /integration/{name} # SKIP {e}", flush=True)
            continue
        except Exception:
            failed += 1
            print(f"not ok {n} /integration/{name}", flush=True)
            for line in traceback.format_exc().splitlines():
                print(f"# {line}", flush=True)
            continue
        print(f"ok {n} /integration/{name} # {time.monotonic() - start:.1f}s",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
