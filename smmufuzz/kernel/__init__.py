"""Real kernel C under the fuzzer: a kernel tree (plus patches) compiled in user space, run on the emulator.

tree.py finds or extracts a tree, patch.py reads and applies patches, build.py compiles the
io-pgtable files against csrc/ (our kernel environment and glue) into a cached shared library,
clib.py loads it with ctypes, and session.py says which tree and patches this process fuzzes.
"""
