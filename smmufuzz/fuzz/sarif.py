"""The findings store as SARIF 2.1.0 (for code scanning) and as a JUnit XML summary (for CI dashboards)."""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from .findings_store import (FINDING_HEAD, atomic_write, check_record, load_records, read_reproducer,
                             record_file)
from ..exec.verdict import EXPECTED, KNOWN_DESIGN, LABEL, ORDER, sort_key

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
UNCLASSIFIED = "unclassified"     # a record from before verdicts: reported as an error until a campaign judges it

# one rule per finding kind: (short description, full description)
KINDS = {
    "MISSED_INVALIDATION": ("A device can still reach a mapping after its unmap returned",
                            "A TLB, walk cache or device ATC entry still translates an IOVA the OS unmapped "
                            "(oracle I1): an invalidation is missing or issued too late."),
    "WRONG_PA": ("A device can reach a physical address or permission the OS never mapped there",
                 "A reachable translation gives another output address, more permissions, or an IOVA that was "
                 "never mapped (oracle I2)."),
    "INVISIBLE_MAPPING": ("A mapping the OS made is not visible to the device after the API returned",
                          "iommu_map() returned but the SMMU's walk cannot see the new entry (oracle I3), e.g. a "
                          "PTE not yet cleaned to the point of coherency on a non-coherent walker."),
    "TABLE_UAF": ("The SMMU can walk a page-table page after it was freed",
                  "A table page was freed (or reused) while a walk cache entry or a walk could still read it "
                  "(oracle I4)."),
    "CMD_ERROR": ("The command queue reported a command error",
                  "The command queue took a command the architecture makes illegal or CONSTRAINED "
                  "UNPREDICTABLE, or a CMD_SYNC timed out on an ATC invalidation the endpoint ignored "
                  "(oracle I8)."),
    "IOVA_REUSE": ("An IOVA was handed out again before the flush covering its unmap",
                   "DMA-FQ: the IOVA allocator reused an address whose TLB invalidation had not completed."),
    "TORN_STE": ("The SMMU could fetch an STE (with its CD) that was neither the old nor the new configuration",
                 "Between two CFGI_STEs of an STE update the stream table held a mix of the two configurations "
                 "(arm_smmu_write_entry()'s hitless-update promise broken)."),
    "HANG": ("The variant did not finish: a deadlock, livelock or CMD_SYNC that never completes",
             "No runnable context with work left, an op that never finishes, or unbounded recursion."),
    "CRASH": ("The code under test faulted",
              "An exception in a Python model, or a fault or BUG() in kernel C (with its C backtrace)."),
    "DIVERGENCE": ("Variants of one driver model make different translations visible",
                   "Run side by side on the same program, the variants differ in SMMU-visible translations or in "
                   "an API call's return value."),
}
_C_FRAME = re.compile(r"^\s+([A-Za-z_]\w*) ([\w.+-]+\.[ch]):(\d+)\s*$")     # kernel C backtrace (kernel/clib.py)
_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
SRC_ROOT = Path(__file__).resolve().parents[2]          # the checkout holding the smmufuzz package



def verdict_of(rec: dict) -> str:
    v = rec.get("verdict")
    return v if v in ORDER else UNCLASSIFIED


def _reproducer(rec: dict, corpus_root: str) -> str:
    return read_reproducer(record_file(rec, corpus_root, ".txt"))


def summary_lines(rec: dict) -> list[str]:
    """The finding's first lines: what, where, and the oracle's (or the fault's) message, no witness."""
    lines = []
    for line in rec["finding"].splitlines():
        if line.startswith("  witness:") or len(lines) == 4:
            break
        lines.append(line)
    return lines


def fault_location(finding_text: str) -> dict | None:
    """The function at fault when the text names one: {"function", "file", "line", "where"}; where is
    "kernel" (a kernel-C backtrace's first frame) or "model" (the innermost frame in smmufuzz/variants/)."""
    head, _, witness = finding_text.partition("\n  witness:")
    for line in head.splitlines()[1:]:
        m = _C_FRAME.match(line)
        if m:
            return {"function": m.group(1), "file": _kernel_path(m.group(2)), "line": int(m.group(3)),
                    "where": "kernel"}
    if "KernelCrash:" in head:           # the C frames did not resolve: the Python ones are only the bridge
        return None
    for m in reversed(list(_PY_FRAME.finditer(witness))):
        path = m.group(1).replace("\\", "/")
        if "/smmufuzz/variants/" in path:
            rel = "smmufuzz/variants/" + path.split("/smmufuzz/variants/", 1)[1]
            return {"function": m.group(3), "file": rel, "line": int(m.group(2)), "where": "model"}
    return None


def _kernel_path(name: str) -> str:
    """A backtrace names a file by its base name: its path in the tree, where it is one we build."""
    from ..kernel.build import BUILT
    for path in sorted(BUILT):
        if os.path.basename(path) == name:
            return path
    return name


def _op_line(reproducer: str, op_index: int, op_text: str) -> int:
    """The reproducer's line (1-based) holding op `op_index`, or 1."""
    i = -1
    for n, line in enumerate(reproducer.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s or s.startswith(("config(", "preempt(")):
            continue
        i += 1
        if i == op_index:
            return n if s == op_text.strip() else 1
    return 1


def _location(uri: str, base: str, line: int, function: str | None = None, *, id_: int | None = None,
              note: str | None = None) -> dict:
    loc = {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": base},
                                "region": {"startLine": line}}}
    if function:
        loc["logicalLocations"] = [{"name": function, "kind": "function"}]
    if id_ is not None:
        loc["id"] = id_
    if note:
        loc["message"] = {"text": note}
    return loc


def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def sarif_log(records: list[dict], corpus_root: str) -> dict:
    """One run of tool smmufuzz: a rule per finding kind, a result per record (error if UNEXPECTED)."""
    kinds = list(KINDS) + sorted({r["kind"] for r in records} - set(KINDS))
    rules = []
    for k in kinds:
        short, full = KINDS.get(k, (f"A {k} finding", f"A finding of kind {k}."))
        rules.append({"id": k, "name": "".join(w.capitalize() for w in k.split("_")),
                      "shortDescription": {"text": short}, "fullDescription": {"text": full},
                      "defaultConfiguration": {"level": "error"}, "properties": {"tags": ["iommu", "smmufuzz"]}})
    bases = {"CORPUS_ROOT": {"uri": Path(os.path.abspath(corpus_root)).as_uri() + "/",
                             "description": {"text": "the smmufuzz corpus root (findings/, regressions/)"}},
             "SRCROOT": {"uri": SRC_ROOT.as_uri() + "/",
                         "description": {"text": "the smmufuzz checkout (the Python models under test)"}},
             "KERNEL_TREE": {"description": {"text": "the kernel tree whose C ran (its version is the result's "
                                                     "properties.kernel)"}}}
    results = [_result(rec, corpus_root, kinds.index(rec["kind"])) for rec in records]
    from importlib.metadata import PackageNotFoundError, version
    try:
        tool_version = version("smmufuzz")
    except PackageNotFoundError:
        tool_version = "0"
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [{
        "tool": {"driver": {"name": "smmufuzz", "version": tool_version, "rules": rules}},
        "originalUriBaseIds": bases,
        "columnKind": "unicodeCodePoints",
        "results": results,
    }]}


def _result(rec: dict, corpus_root: str, rule_index: int) -> dict:
    text = _reproducer(rec, corpus_root)
    head = FINDING_HEAD.match(rec["finding"].split("\n", 1)[0])
    variant, op_index, op_text = head.group(2), int(head.group(3)), head.group(4)
    verdict = verdict_of(rec)
    repro_uri = _rel(record_file(rec, corpus_root, ".txt"), corpus_root)
    repro_loc = _location(repro_uri, "CORPUS_ROOT", _op_line(text, op_index, op_text), id_=0,
                          note=f"minimised reproducer; op {op_index}: {op_text}")
    fault = fault_location(rec["finding"])
    if fault:
        base = "KERNEL_TREE" if fault["where"] == "kernel" else "SRCROOT"
        locations = [_location(fault["file"], base, fault["line"], fault["function"])]
        related = [repro_loc]
    else:
        locations, related = [repro_loc], []
    header = {}
    for line in text.splitlines():
        if line.startswith("# ") and ": " in line:
            k, v = line[2:].split(": ", 1)
            header.setdefault(k.strip(), v.strip())
    props = {"tags": [rec["kind"], verdict], "variant": variant, "variants": rec["variants"],
             "target": rec["target"], "targets": rec.get("targets", [rec["target"]]),
             "verdict": verdict, "verdictLabel": LABEL.get(verdict, UNCLASSIFIED),
             "verdictWhy": rec.get("verdict_why", "no verdict recorded: a campaign on this corpus classifies it"),
             "hits": rec["hits"], "toleratedHits": rec.get("tolerated_hits", 0), "firstSeen": rec["first_seen"],
             "signatureKey": rec["key"], "shape": rec.get("shape", []), "kernelCall": op_text.split("(", 1)[0],
             "replay": rec.get("replay", ""), "reproducer": text}
    if "last_seen" in rec:
        props["lastSeen"] = rec["last_seen"]
    if "kernel" in header:
        props["kernel"] = header["kernel"]
    if fault:
        props["faultAt"] = f"{fault['function']} {fault['file']}:{fault['line']} ({fault['where']})"
    result = {
        "ruleId": rec["kind"], "ruleIndex": rule_index,
        "level": "warning" if verdict in (EXPECTED, KNOWN_DESIGN) else "error",
        "message": {"text": "\n".join(summary_lines(rec))},
        "locations": locations,
        "partialFingerprints": {"smmufuzzSignature/v1": rec["key"]},
        "attachments": [{"description": {"text": f"minimised reproducer: {rec.get('replay') or repro_uri}"},
                         "artifactLocation": {"uri": repro_uri, "uriBaseId": "CORPUS_ROOT"}}],
        "properties": props,
    }
    if related:
        result["relatedLocations"] = related
    return result


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(s: str) -> str:
    return _XML_BAD.sub("\ufffd", s)


def junit_xml(records: list[dict], corpus_root: str) -> str:
    """One testsuite "smmufuzz", a testcase per record: <failure> if UNEXPECTED (or unclassified), <skipped>
    for expected and known design findings; the reproducer in system-out."""
    failures = sum(1 for r in records if verdict_of(r) not in (EXPECTED, KNOWN_DESIGN))
    skipped = len(records) - failures
    suites = ET.Element("testsuites", name="smmufuzz", tests=str(len(records)), failures=str(failures),
                        errors="0", skipped=str(skipped))
    suite = ET.SubElement(suites, "testsuite", name="smmufuzz", tests=str(len(records)), failures=str(failures),
                          errors="0", skipped=str(skipped), time="0")
    for rec in records:
        head = FINDING_HEAD.match(rec["finding"].split("\n", 1)[0])
        verdict = verdict_of(rec)
        case = ET.SubElement(suite, "testcase", classname=rec["target"],
                             name=f"{rec['kind']} {head.group(2)} [{rec['key']}]", time="0")
        why = rec.get("verdict_why", "no verdict recorded")
        first = f"{LABEL.get(verdict, UNCLASSIFIED)} ({why})"
        if verdict in (EXPECTED, KNOWN_DESIGN):
            ET.SubElement(case, "skipped", message=_xml_text(first))
        else:
            fail = ET.SubElement(case, "failure", message=_xml_text(first), type=rec["kind"])
            fail.text = _xml_text(rec["finding"])
        out = ET.SubElement(case, "system-out")
        seen = rec["first_seen"]
        out.text = _xml_text(f"{rec['finding']}\n\nhits: {rec['hits']}; first seen {seen.get('wall', '?')} in "
                             f"{seen.get('campaign', '?')}\nreplay: {rec.get('replay', '')}\n\n"
                             + _reproducer(rec, corpus_root))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def export(corpus_root: str, sarif_path: str | None = None, junit_path: str | None = None,
           records: list[dict] | None = None) -> list[str]:
    """Write the SARIF log and/or the JUnit XML of `records` (default: the whole store), worst verdict first;
    nothing is written if any record is bad (StoreError). Returns the paths written."""
    recs = load_records(corpus_root) if records is None else list(records)
    for rec in recs:
        check_record(rec, corpus_root)
    recs.sort(key=lambda r: (sort_key(verdict_of(r)), r["kind"], r["key"]))
    out = []
    if sarif_path:
        out.append((sarif_path, json.dumps(sarif_log(recs, corpus_root), indent=1) + "\n"))
    if junit_path:
        out.append((junit_path, junit_xml(recs, corpus_root)))
    for path, data in out:
        if path == "-":
            sys.stdout.write(data)
        else:
            atomic_write(path, data)
    return [p for p, _d in out]
