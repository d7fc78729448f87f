"""Measurement and checking tools: the bug-zoo bench, cost and matrix tables, `smmufuzz kernel check`."""
