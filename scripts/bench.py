#!/usr/bin/env python3
"""The bug-zoo benchmark; a thin wrapper around `smmufuzz bench` (same arguments), runnable from a checkout.

    python scripts/bench.py --variants pte-sync:deferred-v1 --seeds 3 --cap 120 --out bench-results
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smmufuzz.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
