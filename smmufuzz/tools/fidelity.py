"""`smmufuzz kernel check`: does each Python model say what its kernel C counterpart does?

Layer by layer (LAYERS): the core's gather helpers against include/linux/iommu.h (fidelity_core.py),
then the page table under the model's core and driver (this module). Random sequential programs run on a model and on its kc:* twin; after every op we compare the
API's return value, what the SMMU can translate (every leaf of every stream's table, promised or
not), every word of every page table (table pointers numbered by walk order), the cache
maintenance the code did (lines cleaned, in order), the commands and register writes the SMMU
received, and the WARNs. Each class of difference keeps one program, shrunk (ops deleted while the
same class of difference remains) so a reader sees the smallest case.
"""

import random
from dataclasses import dataclass, field

from ..prog.codec import decode
from ..prog.program import Program
from ..exec.runner import run_variant

# name: what is compared (in the order `kernel check` runs them)
LAYERS = {
    "core": "the iommu core's gather helpers: variants/gather.py vs include/linux/iommu.h (fidelity_core.py)",
    "pgtable": "random programs: each Python model vs its kc:* twin (io-pgtable-arm.c)",
    "driver": "random programs: variants/arm_smmu_v3.py vs arm-smmu-v3.c, every command bit for bit "
              "(fidelity_driver.py)",
}
PAIRS = (("smmuv3", "kc:smmuv3"), ("gather:robin-v2:arm-smmu", "kc:arm-smmu"), ("gather:robin-v2:qcom", "kc:qcom"),
         ("gather:robin-v2:ipmmu", "kc:ipmmu"), ("pte-sync:eager", "kc:pte-sync"))


def pairs_for(version: tuple) -> tuple:
    """The (model, C) pairs to compare: each kc:X with our model of X at the tree's version (kc-model:X)."""
    return tuple((f"kc-model:{c.split(':', 1)[1]}", c) for _m, c in PAIRS)


CLASSES = ("return value", "SMMU-visible translation", "PTE bits", "cache maintenance", "commands", "WARN", "crash")


@dataclass
class OpState:
    ret: object
    leaves: tuple
    tables: tuple
    cleans: tuple
    cmds: tuple
    warns: tuple


def _tables(ex) -> tuple:
    """Every non-zero word of every domain's page table as (domain, level, index path, value); table
    addresses replaced by their number in walk order so two allocators' choices compare equal."""
    mem = ex.smmu.mem
    out = []
    for dom, d in sorted(ex.os.domains.items()):
        p = getattr(d.priv, "pgtbl", None)
        if p is None or not hasattr(p, "start_level"):
            continue
        bpl, gran = p.cfg.pg_shift - 3, 1 << p.cfg.pg_shift
        va_bits = p.cfg.ias - p.cfg.pg_shift
        pgd_bits = va_bits - bpl * (3 - p.start_level)
        seen = [0]

        def walk(table, lvl, path, size):
            for i in range(size // 8):
                v = mem.cpu_read(table + 8 * i)
                if not v:
                    continue
                if lvl < 3 and v & 3 == 3:
                    seen[0] += 1
                    out.append((dom, lvl, path + (i,), ("table", seen[0], v & ~((1 << 48) - 1 - 0xFFF))))
                    walk(v & ((1 << 48) - 1) & ~0xFFF, lvl + 1, path + (i,), gran)
                else:
                    out.append((dom, lvl, path + (i,), v))
        walk(p.pgd, p.start_level, (), 8 << pgd_bits)
    return tuple(out)


def _leaves(ex) -> tuple:
    out = []
    for sid in range(4):
        ste = ex.smmu.strtab.get(sid)
        if ste is None or not ste.translates:
            continue
        leaves, _ = ex.smmu.tree(ste)
        out.append((sid, tuple(sorted((lf.va, lf.span, lf.pa, lf.perms) for lf in leaves))))
    return tuple(out)


def trace(prog: Program, variant: str, policy: str = "none") -> tuple[list[OpState], object]:
    """Per-op states of one variant on prog (and its finding, if the run ended in one)."""
    states: list[OpState] = []
    marks = {"log": 0, "cleans": 0}

    def probe(ex, i, op, ret):
        mem = ex.smmu.mem
        log = ex.smmu.cmd_log
        cmds = tuple(c.text() for _s, c in log[marks["log"]:])
        marks["log"] = len(log)
        warns, seen = [], set()
        for d in ex.os.domains.values():
            p = getattr(d.priv, "pgtbl", None)
            src = getattr(p, "machine", p)         # a C machine's WARNs are shared by its tables
            if src is not None and id(src) not in seen:
                seen.add(id(src))
                warns += getattr(src, "warns", ())
        warns = tuple(warns)
        states.append(OpState(ret, _leaves(ex), _tables(ex), (mem.cleans, mem.lines_cleaned), cmds, warns))

    run = run_variant(prog, variant, policy, probe=probe)
    return states, run.finding


def compare(prog: Program, model: str, c: str) -> list[tuple[str, int, str]]:
    """Every class of difference between model and C on prog, each at its first op: (class, op, what)."""
    a, fa = trace(prog, model)
    b, fb = trace(prog, c)
    out: dict[str, tuple[str, int, str]] = {}
    for i, (x, y) in enumerate(zip(a, b)):
        for cls, fx, fy in (("return value", x.ret, y.ret), ("SMMU-visible translation", x.leaves, y.leaves),
                            ("PTE bits", x.tables, y.tables), ("cache maintenance", x.cleans, y.cleans),
                            ("commands", x.cmds, y.cmds), ("WARN", len(x.warns), len(y.warns))):
            if cls not in out and fx != fy:
                out[cls] = (cls, i, _diff(fx, fy, model, c))
    for f, who in ((fb, c), (fa, model)):
        if f is not None and f.kind == "CRASH" and "crash" not in out:
            out["crash"] = ("crash", f.op_index, f"{who}: {f.message}")
    if len(a) != len(b) and "return value" not in out:
        out["return value"] = ("return value", min(len(a), len(b)), f"{model} ran {len(a)} ops, {c} {len(b)}")
    return list(out.values())


def _diff(x, y, model, c) -> str:
    if isinstance(x, tuple) and isinstance(y, tuple):
        sx, sy = set(x), set(y)
        ox, oy = sorted(sx - sy, key=repr)[:3], sorted(sy - sx, key=repr)[:3]
        if ox or oy:
            return f"only {model}: {_fmt(ox)}; only {c}: {_fmt(oy)}"
    return f"{model}: {_fmt(x)}; {c}: {_fmt(y)}"


def _fmt(v) -> str:
    def one(e):
        if isinstance(e, int) and e > 9:
            return hex(e)
        if isinstance(e, tuple):
            return "(" + ", ".join(one(x) for x in e) + ")"
        return repr(e) if isinstance(e, str) else str(e)
    s = one(tuple(v)) if isinstance(v, list) else one(v)
    return s if len(s) < 300 else s[:297] + "..."


def shrink(prog, keeps, budget: int = 300, items=lambda p: p.ops, first: int = 0):
    """Delete items (a program's ops; `items` picks another list, e.g. a gather sequence's steps) from
    index `first` on, halving chunks, then one at a time, while keeps(candidate) holds; `without(i, n)`
    makes a candidate."""
    best, runs = prog, 0
    chunk = max(1, (len(items(prog)) - first) // 2)
    while chunk >= 1 and runs < budget:
        i = first
        while i < len(items(best)) and runs < budget:
            cand = best.without(i, chunk)
            runs += 1
            if items(cand) != items(best) and keeps(cand):
                best = cand
            else:
                i += chunk
        chunk //= 2
    return best


def note(by_class: dict, key, prog, diff: tuple, compare_fn, new=None) -> None:
    """Count diff (class, op, what) under key; the first of a key keeps prog shrunk while compare_fn(program) still
    shows that class, with the op and detail the shrunk program gives, and calls new(class)."""
    slot = by_class.get(key)
    if slot is not None:
        slot[0] += 1
        return
    cls = diff[0]
    small = shrink(prog, lambda p: any(d[0] == cls for d in compare_fn(p)))
    d2 = next((x for x in compare_fn(small) if x[0] == cls), diff)
    by_class[key] = [1, small, d2[1], d2[2]]
    if new:
        new(cls)


@dataclass
class CheckResult:
    programs: int = 0
    by_class: dict = field(default_factory=dict)     # (pair, class) -> [count, program, op, detail]


def random_programs(n: int, seed: int, max_len: int = 400):
    """n sequential programs from random bytes (the fuzzer's decoder), deterministic in seed."""
    rng = random.Random(seed)
    made = 0
    while made < n:
        prog = decode(rng.randbytes(rng.randrange(2, max_len + 1)))
        if prog.concurrent() or not prog.ops:
            continue
        made += 1
        yield prog


def check(n: int, seed: int, pairs=PAIRS, progress=None) -> CheckResult:
    res = CheckResult()
    for prog in random_programs(n, seed):
        res.programs += 1
        for model, c in pairs:
            for d in compare(prog, model, c):
                note(res.by_class, ((model, c), d[0]), prog, d, lambda p, m=model, cc=c: compare(p, m, cc),
                     progress and (lambda cls, m=model, cc=c: progress(f"new difference: {m} vs {cc}: {cls} "
                                                                        f"(program {res.programs})")))
        if progress and res.programs % 200 == 0:
            progress(f"{res.programs}/{n} programs, {len(res.by_class)} class(es) of difference")
    return res


def format_result(res: CheckResult) -> str:
    if not res.by_class:
        return f"{res.programs} programs: no difference between the models and the kernel C"
    lines = [f"{res.programs} programs: {len(res.by_class)} class(es) of difference"]
    for ((model, c), cls), (count, prog, op, detail) in sorted(res.by_class.items(), key=lambda kv: kv[0]):
        lines.append(f"\n{cls}: {model} vs {c}, in {count} program(s); smallest, at op {op}:")
        lines.append("  " + detail)
        lines.append("    " + prog.text().rstrip().replace("\n", "\n    "))
    return "\n".join(lines)
