"""A kernel-C fuzz worker preloads atheris's custom mutator with libFuzzer (session.fuzzer_preload): libFuzzer
resolves LLVMFuzzerCustomMutator when it is loaded, so without it the hybrid mutator never ran on kc-* targets."""

import os
import subprocess
import sys

import pytest

from smmufuzz.kernel import session

PRE = session.fuzzer_preload(custom_mutator=True)
needs_runtime = pytest.mark.skipif(PRE is None, reason="atheris has no libFuzzer runtime to preload")


@needs_runtime
def test_the_custom_mutator_is_preloaded_after_libfuzzer():
    runtime, mutator = PRE.split(":")
    assert runtime == session.fuzzer_preload()
    assert os.path.basename(mutator).startswith("custom_mutator.") and os.path.exists(mutator)


@needs_runtime
def test_libfuzzer_sees_the_preloaded_custom_mutator():
    """In a process started with the preload, the symbol libFuzzer looks up is atheris's, not absent."""
    code = ("import ctypes; lib = ctypes.CDLL(None); "
            "print(hasattr(lib, 'LLVMFuzzerCustomMutator'), hasattr(lib, 'LLVMFuzzerMutate'))")
    for pre, want in ((PRE, "True True"), (session.fuzzer_preload(), "False True")):
        out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, LD_PRELOAD=pre),
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.split()[-2:] == want.split(), (pre, out.stdout, out.stderr[-500:])
