"""Fuzzing: the libFuzzer target, campaigns and their workers, triage, minimisation, the findings store."""
