"""What the planted-patch tests of the kernel-C layers share (test_kernel_planted_core.py: planted-core-*.diff on
kc-core; test_kernel_planted_driver.py: planted-driver-*.diff on kc-full): finding the patches, their headers and
reproducers, and the three checks each layer makes of every patch (accounted for, applies and builds, its
reproducer gives the expected finding patched and none unpatched). `kind` is the file-name prefix after
"planted-" ("core", "driver"); `fam` the variant family benched on ("kc-core", "kc-full").
"""

import glob
import os
import re

from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program
from smmufuzz.kernel import session
from tests.test_kernel_patches import PATCHES, REPRO


def planted(kind: str) -> list[str]:
    """The names of tests/kernel-patches/planted-<kind>-*.diff."""
    pre = f"planted-{kind}-"
    return sorted(os.path.basename(p)[len(pre):-len(".diff")] for p in glob.glob(os.path.join(PATCHES, pre + "*.diff")))


def patch_path(kind: str, name: str) -> str:
    return os.path.join(PATCHES, f"planted-{kind}-{name}.diff")


def use(kind: str, name: str) -> None:
    """The session's patched tree is the tree plus this one patch."""
    session.configure(patches=[patch_path(kind, name)])


def repro(kind: str, name: str):
    """(program, header fields) of tests/kernel-patches/repro/planted-<kind>-<name>.txt."""
    return load_program(os.path.join(REPRO, f"planted-{kind}-{name}.txt"))


def header(kind: str, name: str) -> list[str]:
    """The patch's text before its first diff: what it plants."""
    with open(patch_path(kind, name)) as f:
        return f.read().split("diff --git", 1)[0].strip().splitlines()


def check_accounted_for(kind: str, fam: str, expect: dict, files: tuple) -> None:
    """Every planted-<kind> patch is in `expect` (name -> (driver, finding)) and the other way round; its header
    says in 2-6 lines what it plants and the finding expected; it touches only `files`; its reproducer's header
    names the same finding on <fam>-patched:<driver>."""
    names = planted(kind)
    assert len(names) >= 4 and set(names) == set(expect), (names, sorted(expect))
    for name in names:
        head = header(kind, name)
        assert 2 <= len(head) <= 6, f"planted-{kind}-{name}: a 2-6 line header saying what it plants"
        assert f"Expected: {expect[name][1]}" in " ".join(head), f"planted-{kind}-{name}: header's expected verdict"
        with open(patch_path(kind, name)) as f:
            touched = re.findall(r"^diff --git a/(\S+)", f.read(), re.M)
        assert touched and set(touched) <= set(files), (name, touched)
        _prog, meta = repro(kind, name)
        assert meta.get("expect") == expect[name][1] and meta.get("variant") == f"{fam}-patched:{expect[name][0]}", meta


def check_applies_and_builds(kind: str, name: str, missing: str) -> None:
    """The patch applies to the tree and the library builds with the layer it patches (`missing`: the Build
    field that says why a layer is not in it, e.g. ccore_missing, driver_missing), apart from the unpatched one."""
    use(kind, name)
    b = session.get(True)
    assert b.hunks and all(h.status == "applied" for h in b.hunks), [h.line() for h in b.hunks]
    assert getattr(b, missing) is None, getattr(b, missing)
    assert os.path.exists(b.lib) and b.lib != session.get(False).lib


def check_reproducer(kind: str, fam: str, name: str, drv: str, finding: str) -> None:
    """The reproducer is clean on <fam>:<drv> (the unpatched tree), gives exactly `finding` on <fam>-patched:<drv>,
    and side by side the same, with nothing on the unpatched one (a DIVERGENCE of the pair may come with it)."""
    use(kind, name)
    prog, _meta = repro(kind, name)
    plain, patched = f"{fam}:{drv}", f"{fam}-patched:{drv}"
    clean = run_program(prog, [plain])
    assert not clean.findings, [f.text() for f in clean.findings]
    res = run_program(prog, [patched])
    assert [f.kind for f in res.findings] == [finding], [f.text() for f in res.findings]
    again = run_program(prog, [plain, patched])
    assert again.findings[0].text() == res.findings[0].text()
    assert {f.kind for f in again.findings[1:]} <= {"DIVERGENCE"}
    assert not any(f.variant == plain for f in again.findings)
