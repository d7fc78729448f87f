"""The driver layer of `smmufuzz kernel check`: variants/arm_smmu_v3.py vs the tree's arm-smmu-v3.c, bit for bit.

Random sequential programs (a third of them about SVA: prog/sva_live.py) run on `kc-core:smmuv3` (the tree's core and io-pgtable-arm.c under our Python
arm-smmu-v3 model) and on `kc-full:smmuv3` (the same, with arm-smmu-v3.c's invalidation path as C), so the
driver is the only difference. The io-pgtable each domain gets (arm_smmu_domain_finalise()'s cfg) is compared
after every op. Every command list either hands the SMMU's queue (Smmu.cmdq_publish, IHI 0070
§3.5: one write of the queue's PROD) is recorded as it was built, 2 x 64 bits per command. After every op we
compare, in order: the opcodes, every bit of every command, and how the commands were split into queue
writes (where a CMD_SYNC falls and where a full batch was flushed without one); and the STEs: the 64-bit
stores to the stream table in order (the writer's steps: arm_smmu_write_entry in C, its model in
variants/arm_smmu_v3_ste.py) and every STE's 8 words after the op. Each class of difference keeps one program,
shrunk, with the first op where the two part.
"""

import random
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..reference.smmu import Smmu
from .fidelity import note, random_programs
from ..prog.program import Program
from ..exec.runner import run_variant
from ..prog.sva_live import sva_program

MODEL, C_DRIVER = "kc-core:smmuv3", "kc-full:smmuv3"
M64 = (1 << 64) - 1
CLASSES = ("io-pgtable cfg", "opcodes", "command bits", "queue writes", "STE stores", "STE words", "return value",
           "crash")


@contextmanager
def recording():
    """While open, every Smmu keeps each command list published to it in `raw_publishes`."""
    orig, orig_store = Smmu.cmdq_publish, Smmu.store_ste

    def publish(self, entries, ns=0):
        self.__dict__.setdefault("raw_publishes", []).append(tuple((a & M64, b & M64) for a, b in entries))
        return orig(self, entries, ns)

    def store(self, sid, q, val, ns=0):
        self.__dict__.setdefault("ste_stores", []).append((sid, q, val))
        return orig_store(self, sid, q, val, ns)
    Smmu.cmdq_publish, Smmu.store_ste = publish, store
    try:
        yield
    finally:
        Smmu.cmdq_publish, Smmu.store_ste = orig, orig_store


def pgtable_cfgs(os_) -> tuple:
    """(domain, coherent_walk, quirks, defer_sync_pte) of each domain's io-pgtable: what arm_smmu_domain_finalise()
    asked for."""
    return tuple((k, c.coherent_walk, c.quirks, c.defer_sync_pte) for k, d in sorted(os_.domains.items())
                 if getattr(d.priv, "pgtbl", None) is not None for c in (d.priv.pgtbl.cfg,))


def trace(prog: Program, variant: str, stes: list | None = None, cfgs: list | None = None) -> tuple[list, list, object]:
    """Per op of prog on variant: its return value and the command lists it published; and the run's finding.
    `stes` gets, per op, its STE stores [(sid, qword, value)] and every STE's words after it {sid: words};
    `cfgs` the io-pgtable cfgs of its domains."""
    rets, pubs = [], []

    def probe(ex, i, op, ret):
        if cfgs is not None:
            cfgs.append(pgtable_cfgs(ex.os))
        log = ex.smmu.__dict__.setdefault("raw_publishes", [])
        pubs.append(tuple(log))
        log.clear()
        rets.append(ret)
        if stes is not None:
            stores = ex.smmu.__dict__.setdefault("ste_stores", [])
            stes.append((tuple(stores), {sid: ex.smmu.ste_words(sid) for sid in sorted(ex.smmu.ste_ns)}))
            stores.clear()
    with recording():
        run = run_variant(prog, variant, "none", probe=probe)
    return rets, pubs, run.finding


def _fmt(cmds) -> str:
    return " ".join(f"{a:016x}:{b:016x}" for a, b in cmds[:4]) + (" ..." if len(cmds) > 4 else "")


def _stores(stores) -> str:
    return " ".join(f"({sid},{q},{v:#018x})" for sid, q, v in stores) or "none"


def _words(words) -> str:
    return "none" if words is None else ":".join(f"{w:016x}" for w in words)


def compare(prog: Program, counted: list | None = None) -> list[tuple[str, int, str]]:
    """Every class of difference between the model and the C driver on prog, each at its first op (and the
    number of commands the C published appended to `counted`)."""
    sa, sb, ca, cb = [], [], [], []
    ra, pa, fa = trace(prog, MODEL, sa, ca)
    rb, pb, fb = trace(prog, C_DRIVER, sb, cb)
    if counted is not None:
        counted.append(sum(len(w) for op in pb for w in op))
    out: dict[str, tuple[str, int, str]] = {}
    for i, (x, y) in enumerate(zip(ca, cb)):
        if x != y:
            out["io-pgtable cfg"] = ("io-pgtable cfg", i, f"(domain, coherent_walk, quirks, defer_sync_pte): model "
                                                          f"{x}; C {y}")
            break
    for i, (x, y) in enumerate(zip(pa, pb)):
        fx, fy = [c for w in x for c in w], [c for w in y for c in w]
        ops_x, ops_y = [c[0] & 0xFF for c in fx], [c[0] & 0xFF for c in fy]
        if ops_x != ops_y:
            out.setdefault("opcodes", ("opcodes", i, f"model {[hex(o) for o in ops_x][:12]}; "
                                                     f"C {[hex(o) for o in ops_y][:12]}"))
        elif fx != fy:
            k = next(j for j, (a, b) in enumerate(zip(fx, fy)) if a != b)
            out.setdefault("command bits", ("command bits", i, f"command {k}: model {_fmt(fx[k:k + 1])}; "
                                                               f"C {_fmt(fy[k:k + 1])}"))
        elif [len(w) for w in x] != [len(w) for w in y]:
            out.setdefault("queue writes", ("queue writes", i, f"commands per queue write: model "
                                                               f"{[len(w) for w in x]}; C {[len(w) for w in y]}"))
    for i, ((stores_x, words_x), (stores_y, words_y)) in enumerate(zip(sa, sb)):
        if stores_x != stores_y:
            k = next((j for j, (a, b) in enumerate(zip(stores_x, stores_y)) if a != b),
                     min(len(stores_x), len(stores_y)))
            out.setdefault("STE stores", ("STE stores", i, f"store {k} (sid, qword, value): model "
                                          f"{_stores(stores_x[k:k + 2])}; C {_stores(stores_y[k:k + 2])}"))
        if words_x != words_y:
            sid = next(s for s in sorted(set(words_x) | set(words_y)) if words_x.get(s) != words_y.get(s))
            out.setdefault("STE words", ("STE words", i, f"sid {sid}: model {_words(words_x.get(sid))}; "
                                                         f"C {_words(words_y.get(sid))}"))
    for i, (x, y) in enumerate(zip(ra, rb)):
        if x != y:
            out.setdefault("return value", ("return value", i, f"model {x!r}; C {y!r}"))
            break
    for f, who in ((fb, C_DRIVER), (fa, MODEL)):
        if f is not None and f.kind == "CRASH" and "crash" not in out:
            out["crash"] = ("crash", f.op_index, f"{who}: {f.message}")
    if len(pa) != len(pb) and "return value" not in out:
        out["return value"] = ("return value", min(len(pa), len(pb)), f"model ran {len(pa)} ops, C {len(pb)}")
    return list(out.values())


@dataclass
class DriverResult:
    programs: int = 0
    commands: int = 0                                  # commands the C driver published
    by_class: dict = field(default_factory=dict)       # class -> [count, program, op, detail]


def programs(n: int, seed: int):
    """n sequential programs: two in three random (fidelity.random_programs), one in three about SVA
    (sva_live.sva_program: binds, process page-table changes, the notifier over small odd ranges)."""
    rng = random.Random(seed)
    rand = random_programs(n, seed)
    for k in range(n):
        yield sva_program(rng) if k % 3 == 2 else next(rand)


def check(n: int, seed: int, progress=None) -> DriverResult:
    """n sequential programs (programs()), model vs C driver."""
    res = DriverResult()
    for prog in programs(n, seed):
        res.programs += 1
        counted: list = []
        diffs = compare(prog, counted)
        res.commands += counted[0]
        for d in diffs:
            note(res.by_class, d[0], prog, d, compare,
                 progress and (lambda cls: progress(f"new difference: {cls} (program {res.programs})")))
        if progress and res.programs % 100 == 0:
            progress(f"{res.programs}/{n} programs, {len(res.by_class)} class(es) of difference")
    return res


def format_result(res: DriverResult, version: str) -> str:
    head = (f"driver layer: {res.programs} programs ({res.commands} commands from the C), "
            f"variants/arm_smmu_v3.py vs arm-smmu-v3.c of linux {version}")
    if not res.by_class:
        return head + ": no difference"
    lines = [head + f": {len(res.by_class)} class(es) of difference"]
    for cls in CLASSES:
        if cls not in res.by_class:
            continue
        count, prog, op, detail = res.by_class[cls]
        lines.append(f"\n{cls}, in {count} program(s); smallest, at op {op}:")
        lines.append("  " + detail)
        lines.append("    " + prog.text().rstrip().replace("\n", "\n    "))
    return "\n".join(lines)
