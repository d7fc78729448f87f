"""The input function of a standalone (ClusterFuzzLite / OSS-Fuzz) fuzzer: a campaign worker's, without the
campaign, whose finding message is a reproducer `smmufuzz replay` reads.

A generated `<name>_fuzzer.py` (oss_fuzz.py) imports the models under instrumentation as a worker does, then
passes fuzz_input()'s function to atheris.Setup. There is no campaign to watch, no list of known findings
and no correct control, so every finding crashes the fuzzer. The crash message (atheris prints it before
libFuzzer writes crash-<sha1>) is the findings and then, after REPRODUCER_MARK, the program as a text
reproducer with its `# target:` header.
"""

import os

POLICY = "max-cache"
REPRODUCER_MARK = "--- reproducer (save as a .txt file; `smmufuzz replay FILE` runs it) ---"


def reproducer(message: str, target: str, variants: list[str], fuzzer: str) -> str:
    """A worker's finding message (findings, then the program after "--- program ---") with the program
    rewritten as a reproducer: re-run on the target for the findings its header names."""
    from .minimize import reproducer_text
    from ..prog.program import parse
    from ..exec.runner import run_program
    findings, _, text = message.partition("--- program ---\n")
    prog = parse(text)
    found = run_program(prog, variants, POLICY).findings
    if not found:
        return message
    kinds = ",".join(dict.fromkeys(f.kind for f in found))
    how = f"ClusterFuzzLite/OSS-Fuzz fuzzer {fuzzer} (its crash input replays with --target {target})"
    return findings + REPRODUCER_MARK + "\n" + reproducer_text(prog, found[0], target, how, expect=kinds,
                                                               variants=variants, policy=POLICY)


def fuzz_input(target: str, argv: list[str]):
    """(TestOneInput, atheris.Setup keyword arguments) for `target`, as a campaign worker on it fuzzes: the
    same input function and mutator choice. The corpus directory is libFuzzer's first directory argument
    (none when pruning with -merge=1); the models must already be imported (import_instrumented)."""
    from ..variants.registry import target as resolve
    from .campaign import mutator_for
    from .fuzz_target import FindingError, one_input
    variants = resolve(target)
    artifacts = next((a.split("=", 1)[1] for a in argv if a.startswith("-artifact_prefix=")), "./")
    corpus = None
    if not any(a.startswith("-merge") for a in argv):
        corpus = next((a for a in argv[1:] if not a.startswith("-") and os.path.isdir(a)), None)
    worker = one_input(variants, POLICY, artifacts, corpus)
    fuzzer = os.path.basename(argv[0]).removesuffix(".pkg")

    def test_one_input(data: bytes) -> None:
        try:
            worker(data)
        except FindingError as e:
            raise FindingError(reproducer(str(e), target, variants, fuzzer)) from None

    if mutator_for("auto", variants) == "hybrid":
        from .fuzz_target import hybrid_mutator
        return test_one_input, {"custom_mutator": hybrid_mutator(variants)}
    return test_one_input, {}
