"""The libFuzzer/atheris entry point: decode bytes, run the target's variants, raise on a finding.

Started through an executable wrapper (see fuzz.py) so that libFuzzer's child modes, which
re-execute argv[0] through sh, work (fuzz-anchors §1.4). Only smmufuzz.reference and
smmufuzz.variants are instrumented.
"""

import sys


class FindingError(Exception):
    """A finding, raised so that libFuzzer records the input as a crash artifact."""


# hot, branch-poor modules whose coverage says little: left uninstrumented for speed
UNINSTRUMENTED = ["smmufuzz.reference.cmdq", "smmufuzz.reference.memory"]


def main(target_variants: list[str], policy: str, argv: list[str], plugins: tuple = ()) -> None:
    import importlib

    import atheris
    import smmufuzz.reference.cmdq  # noqa: F401
    import smmufuzz.reference.memory  # noqa: F401
    with atheris.instrument_imports(include=["smmufuzz.reference", "smmufuzz.variants", *plugins],
                                    exclude=UNINSTRUMENTED):
        for mod in ("smmufuzz.reference.smmu", "smmufuzz.reference.oracle", "smmufuzz.reference.spec",
                    "smmufuzz.variants.registry", *plugins):
            importlib.import_module(mod)
    # the harness itself is imported after the instrumented modules, so it stays uninstrumented
    from smmufuzz.harness.codec import decode
    from smmufuzz.harness.runner import run_program
    from smmufuzz.harness.tolerated import from_environment
    tally = from_environment()          # a campaign's known findings: counted, not raised

    def test_one_input(data: bytes) -> None:
        tally.maybe_flush()
        prog = decode(data)
        res = run_program(prog, target_variants, policy)
        if res.findings and not tally.tolerate(res.findings):
            raise FindingError("\n".join(f.text() for f in res.findings) + "\n--- program ---\n" + prog.text())

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1].split(","), sys.argv[2], [sys.argv[0]] + sys.argv[3:])
