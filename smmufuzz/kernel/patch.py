"""Kernel patches as users hand them to us: a diff, or a mail or mailing-list thread that holds one.

`extract()` pulls the unquoted unified-diff hunks out of the text (counting each hunk's lines from
its `@@` header, so a mail signature or the reply below a patch is not taken for diff lines);
`apply()` applies them to a copy of the tree with `patch(1)` and reports every hunk: applied, at
what offset or fuzz, or failed (named by file and `@@` header).
"""

import os
import re
import subprocess
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_DIFF = re.compile(r"^diff --git a/(\S+) b/(\S+)")


class PatchError(Exception):
    """A patch that cannot be read or does not apply (one line, names the file and hunk)."""

    def __init__(self, msg: str, results=None):
        super().__init__(msg)
        self.results = results or []


@dataclass
class FileDiff:
    path: str                     # the file the diff changes (tree-relative)
    header: list[str]             # `diff --git`, `index`, `---`, `+++` lines
    hunks: list[list[str]] = field(default_factory=list)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.header + [ln for h in self.hunks for ln in h])


@dataclass
class Patch:
    name: str                     # the file's stem, used in variant names and reproducer headers
    source: str                   # where it came from
    files: list[FileDiff]
    digest_text: str              # the extracted diff, what the build cache hashes

    def only(self, paths) -> "Patch":
        keep = [f for f in self.files if f.path in paths]
        return Patch(self.name, self.source, keep, "".join(f.text() for f in keep))


def extract(text: str, name: str = "patch", source: str = "") -> Patch:
    """The unquoted diffs in a diff, mail or thread, in the order they appear."""
    lines = text.splitlines()
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        m = _DIFF.match(lines[i])
        if not m:
            i += 1
            continue
        fd = FileDiff(m.group(2), [lines[i]])
        i += 1
        while i < len(lines) and not lines[i].startswith("@@") and not _DIFF.match(lines[i]):
            if lines[i].startswith(("index ", "--- ", "+++ ", "new file mode", "deleted file mode",
                                    "similarity", "rename ", "old mode", "new mode")):
                fd.header.append(lines[i])
            i += 1
        while i < len(lines):
            h = _HUNK.match(lines[i])
            if not h:
                break
            old = int(h.group(2) if h.group(2) is not None else 1)
            new = int(h.group(4) if h.group(4) is not None else 1)
            hunk = [lines[i]]
            i += 1
            while (old > 0 or new > 0) and i < len(lines):
                ln = lines[i]
                if ln.startswith("\\"):
                    hunk.append(ln)
                elif ln.startswith("+"):
                    new -= 1
                    hunk.append(ln)
                elif ln.startswith("-"):
                    old -= 1
                    hunk.append(ln)
                elif ln.startswith(" ") or ln == "":
                    old -= 1
                    new -= 1
                    hunk.append(ln if ln else " ")
                else:
                    raise PatchError(f"{source or name}: hunk {hunk[0]} of {fd.path} is cut short at "
                                     f"line {i + 1} ({ln[:40]!r}): a mail client wrapped it?")
                i += 1
            if old > 0 or new > 0:
                raise PatchError(f"{source or name}: hunk {hunk[0]} of {fd.path} ends early")
            if i < len(lines) and lines[i].startswith("\\"):
                hunk.append(lines[i])
                i += 1
            fd.hunks.append(hunk)
        if fd.hunks:
            files.append(fd)
    if not files:
        raise PatchError(f"{source or name}: no diff found (expected `diff --git` and `@@` hunks)")
    return Patch(name, source, files, "".join(f.text() for f in files))


def load(path: str) -> Patch:
    """Read a patch file (diff, mail or thread); a one-line PatchError if it is unreadable or holds none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise PatchError(f"cannot read patch {path}: {e.strerror}") from None
    name = os.path.basename(path)
    for suffix in (".patch", ".diff", ".txt", ".mbox", ".eml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return extract(text, re.sub(r"[^A-Za-z0-9_.-]", "_", name), path)


@dataclass
class HunkResult:
    path: str
    header: str
    status: str                   # "applied", "offset N", "fuzz N", "FAILED", "not built"

    def line(self) -> str:
        return f"  {self.path} {self.header}: {self.status}"


_OUT = re.compile(r"Hunk #(\d+) (succeeded|FAILED) at (\d+)( with fuzz \d+)?(?: \(([^)]*)\))?")


def apply(patch: Patch, src: str, built: set[str]) -> list[HunkResult]:
    """Apply the hunks for the files we build to the tree copy at src; report each hunk (offset, fuzz).

    Hunks of files outside `built` are reported as "not built" (the harness models those parts).
    Raises PatchError naming the first hunk that does not apply."""
    results: list[HunkResult] = []
    for fd in patch.files:
        if fd.path not in built:
            results += [HunkResult(fd.path, h[0].split(" @@")[0] + " @@", "not built") for h in fd.hunks]
            continue
        if not os.path.exists(os.path.join(src, fd.path)):
            raise PatchError(f"{patch.source or patch.name}: {fd.path} is not in the tree", results)
        p = subprocess.run(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
                            "-r", "-", "-d", src], input=fd.text(), capture_output=True, text=True)
        seen = {}
        for m in _OUT.finditer(p.stdout):
            detail = ", ".join(x.strip() for x in (m.group(4), m.group(5)) if x)
            seen[int(m.group(1))] = (m.group(2), detail.replace(" lines", "").replace(" line", ""))
        failed = []
        for k, h in enumerate(fd.hunks, 1):
            head = h[0].split(" @@")[0] + " @@"
            st, detail = seen.get(k, ("succeeded", ""))      # patch(1) is silent on an exact match
            results.append(HunkResult(fd.path, head, "FAILED" if st == "FAILED" else detail or "applied"))
            if st == "FAILED":
                failed.append(f"hunk #{k} {head}")
        if failed:
            raise PatchError(f"{patch.source or patch.name}: {fd.path}: {', '.join(failed)} does not apply to "
                             f"this tree", results)
        if p.returncode != 0:
            msg = (p.stdout + p.stderr).strip().splitlines()
            raise PatchError(f"{patch.source or patch.name}: {fd.path}: {msg[-1] if msg else 'patch failed'}",
                             results)
    return results
