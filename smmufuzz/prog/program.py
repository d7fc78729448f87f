"""Programs: a configuration plus a typed sequence of OS operations and hardware events.

The text form is one call per line, in the kernel's own vocabulary, and parses back to the
same program:

    config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
    iommu_attach_device(d0, sid=0)
    iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
    dev_dma(sid=0, iova=0x200000, write=0)
    iommu_unmap(d0, iova=0x200000, size=0x1000)

DMA API ops refer to mappings by handle: dma_unmap(handle=k) unmaps what the k-th dma_map returned.

Concurrency: a line prefixed `cpu1:` (or `irq0:`, `irq1:`, an interrupt on CPU 0 or 1) is issued by
that context; unprefixed lines are cpu0's. Each context runs its ops in program order; how they
interleave is the schedule: `preempt(after=3, to=cpu1)` on the line after an op switches to cpu1 once
that op has run 3 steps (preemption points); `preempt(at="STE[0] written", to=cpu1)` (`n=2` for the second
time the op passes it) names the point instead, as the schedule log prints it, and so means the same kernel
point on every variant that passes it (reproducers are written so, anchors.py). Without a switch an op runs to
its end and the next op in program order follows, so a program without preempt lines runs sequentially.
"""

import json
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .latitude import LATITUDE_KEYS, WALK_ALL, latitude_text, parse_latitude
from .ops import (EVICT_WHAT, KIND_BY_NAME, KINDS, MAX_SG, NUM_DOMAINS, NUM_GATHERS, NUM_SIDS, OPS, OS_KINDS,  # noqa: F401
                  PROT_BY_NAME, PROTS, SLEEPING_KINDS, FieldError, split_args)

GRANULES = {12: "4K", 14: "16K", 16: "64K"}
GRANULE_BY_NAME = {v: k for k, v in GRANULES.items()}
MAX_OPS = 48
CONTEXTS = ("cpu0", "cpu1", "irq0", "irq1")     # irqN: interrupt context on CPU N
MAX_SWITCHES = 16
MAX_AFTER = 64             # preempt(after=N): N steps into the op


class ProgramSyntaxError(ValueError):
    """A text program that does not parse; carries line and column."""

    def __init__(self, msg: str, line: int, col: int):
        super().__init__(f"line {line}, column {col}: {msg}")
        self.line = line
        self.col = col


@dataclass(frozen=True)
class Config:
    """Program header: page-table format, SMMU features the driver reads (IDR0/IDR3), and the SMMU's legal
    latitude the driver cannot see (latitude.py): how strictly it honours TTL, which table levels its walk
    cache holds."""
    pg_shift: int = 12
    ias: int = 48
    stage: int = 1
    coherent: bool = True
    range_inv: bool = False
    ats: bool = False
    e2h: bool = False
    ttl_strict: bool = True
    walk_levels: int = WALK_ALL

    def text(self) -> str:
        return (f"config(granule={GRANULES[self.pg_shift]}, ias={self.ias}, stage={self.stage}, "
                f"coherent={int(self.coherent)}, range_inv={int(self.range_inv)}, ats={int(self.ats)}, "
                f"e2h={int(self.e2h)}{latitude_text(self)})")


@dataclass(frozen=True)
class Op:
    """One operation: its kind and its field values in OPS order."""
    kind: str
    args: tuple
    ctx: int = 0           # index into CONTEXTS

    def get(self, name: str):
        for (fname, _t), v in zip(OPS[self.kind][1], self.args):
            if fname == name:
                return v
        raise KeyError(name)

    def text(self) -> str:
        k = KINDS[self.kind]
        args = ", ".join(t.text(f, v) for (f, t), v in zip(k.fields, self.args))
        pre = f"{CONTEXTS[self.ctx]}: " if self.ctx else ""
        return f"{pre}{k.name}({args})"


class Anchor(NamedTuple):
    """A preemption point of an op named by its label (a kthread.Point's, or a lock step's, as the schedule
    log prints it) and which occurrence of that label in the op it is: the same kernel point on every
    variant, where a step count moves whenever a variant has more or fewer points before it."""
    label: str
    nth: int = 1

    def text(self) -> str:
        return f"at={json.dumps(self.label)}" + (f", n={self.nth}" if self.nth != 1 else "")

    @staticmethod
    def writable(label: str) -> bool:
        """Whether a label prints as an anchor that parses back (a comment starts at '#')."""
        return "#" not in label and "\n" not in label


def schedule_key(entry: tuple) -> tuple:
    """Sort key of a schedule entry (op index, after, context), `after` a step count or an Anchor."""
    i, after, c = entry
    return (i, 1, 0, after.label, after.nth, c) if isinstance(after, Anchor) else (i, 0, after, "", 0, c)


@dataclass(frozen=True)
class Program:
    config: Config = field(default_factory=Config)
    ops: tuple = ()
    schedule: tuple = ()   # ((op index, after, context index), ...), sorted by schedule_key; after is a step
    #                        count, or an Anchor in a program parsed from text (reproducers name the point)

    def text(self) -> str:
        lines = [self.config.text()]
        sw: dict[int, list] = {}
        for i, after, c in self.schedule:
            at = after.text() if isinstance(after, Anchor) else f"after={after}"
            sw.setdefault(i, []).append(f"preempt({at}, to={CONTEXTS[c]})")
        for i, op in enumerate(self.ops):
            lines.append(op.text())
            lines += sw.get(i, [])
        return "\n".join(lines) + "\n"

    def without(self, i: int, n: int = 1) -> "Program":
        """The program with ops [i, i+n) deleted (their preemptions too; later ones renumbered)."""
        sched = tuple((j if j < i else j - n, a, c) for j, a, c in self.schedule if not i <= j < i + n)
        return replace(self, ops=self.ops[:i] + self.ops[i + n:], schedule=sched)

    def concurrent(self) -> bool:
        return any(op.ctx for op in self.ops)

    def with_ops(self, ops) -> "Program":
        return replace(self, ops=tuple(ops))


_FIELD_INDEX = {kind: {f: n for n, (f, _t) in enumerate(fields)} for kind, (_name, fields) in OPS.items()}


def touched_domains(ops) -> list[frozenset]:
    """Per op, the domains it works on if the ops run in order: an attach's new and old domain
    (iommu_attach_device moves the stream), a detach's, ATS change's or device access's current domain,
    a dma_unmap's mapping's, else the op's own `dom` (empty for hw_evict/hw_writeback). One pass."""
    attached: dict[int, int] = {}
    dma_maps: list[int] = []
    out = []
    for op in ops:
        if op.kind == "dma_unmap":
            h = op.args[0]
            out.append(frozenset(dma_maps[h:h + 1]))
            continue
        idx = _FIELD_INDEX[op.kind]
        dom = op.args[idx["dom"]] if "dom" in idx else None
        sid = op.args[idx["sid"]] if "sid" in idx else None
        cur = attached.get(sid) if sid is not None else None
        out.append(frozenset(d for d in (dom, cur) if d is not None))
        if op.kind == "attach":
            attached[sid] = dom
        elif op.kind == "detach":
            attached.pop(sid, None)
        elif op.kind == "dma_map":
            dma_maps.append(dom)
    return out


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")


def _int(tok: str, line: int, col: int) -> int:
    try:
        return int(tok.strip(), 0)
    except ValueError:
        raise ProgramSyntaxError(f"expected a number, got {tok.strip()!r}", line, col) from None


def _parse_config(body: str, line: int, col0: int) -> Config:
    kw = {}
    for piece, off in split_args(body):
        if "=" not in piece:
            raise ProgramSyntaxError(f"expected key=value, got {piece.strip()!r}", line, col0 + off + 1)
        k, v = (x.strip() for x in piece.split("=", 1))
        col = col0 + off + 1 + (len(piece) - len(piece.lstrip()))
        if k == "granule":
            if v not in GRANULE_BY_NAME:
                raise ProgramSyntaxError(f"granule must be 4K, 16K or 64K, not {v!r}", line, col)
            kw["pg_shift"] = GRANULE_BY_NAME[v]
        elif k == "ias":
            ias = _int(v, line, col)
            if not 32 <= ias <= 48:
                raise ProgramSyntaxError(f"ias must be 32..48, not {ias}", line, col)
            kw["ias"] = ias
        elif k == "stage":
            st = _int(v, line, col)
            if st not in (1, 2):
                raise ProgramSyntaxError("stage must be 1 or 2", line, col)
            kw["stage"] = st
        elif k in ("coherent", "range_inv", "ats", "e2h"):
            kw[k] = bool(_int(v, line, col))
        elif k in LATITUDE_KEYS:
            try:
                kw.update(parse_latitude(k, v))
            except ValueError as e:
                raise ProgramSyntaxError(str(e), line, col) from None
        else:
            raise ProgramSyntaxError(f"unknown config key {k!r}", line, col)
    if kw.get("e2h") and kw.get("stage", 1) != 1:
        raise ProgramSyntaxError("e2h=1 needs stage=1 (EL2-E2H is a stage-1 StreamWorld)", line, col0 + 1)
    return Config(**kw)


def parse(text: str) -> Program:
    """Parse a text program; raises ProgramSyntaxError with line and column."""
    config = Config()
    ops = []
    schedule: dict = {}
    for ln, raw in enumerate(text.splitlines(), 1):
        s = raw.split("#", 1)[0]
        if not s.strip():
            continue
        ctx = 0
        pm = _CTX_PREFIX.match(s)
        if pm:
            ctx = CONTEXTS.index(pm.group(1))
            s = " " * pm.end() + s[pm.end():]
        m = _CALL.match(s)
        if not m:
            col = len(s) - len(s.lstrip()) + 1
            raise ProgramSyntaxError("expected a call like iommu_map(d0, iova=..., ...)", ln, col)
        name, body = m.group(1), m.group(2)
        col0 = m.start(2)
        if name == "config":
            if ops:
                raise ProgramSyntaxError("config(...) must come before the first operation", ln, m.start(1) + 1)
            config = _parse_config(body, ln, col0)
            continue
        if name == "preempt":
            if not ops or ctx:
                raise ProgramSyntaxError("preempt(...) follows the op it preempts, without a context prefix",
                                         ln, m.start(1) + 1)
            after, to = _parse_preempt(body, ln, col0)
            schedule[(len(ops) - 1, after)] = to
            if len(schedule) > MAX_SWITCHES:
                raise ProgramSyntaxError(f"a program has at most {MAX_SWITCHES} preempt lines", ln, 1)
            continue
        kind = KIND_BY_NAME.get(name)
        if kind is None:
            raise ProgramSyntaxError(f"unknown operation {name!r}", ln, m.start(1) + 1)
        op = _parse_op(kind, body, ln, col0)
        if kind == "dma_unmap":
            maps = sum(1 for o in ops if o.kind == "dma_map")
            if op.args[0] >= max(1, maps):
                raise ProgramSyntaxError(f"handle={op.args[0]} names no earlier dma_map (there are {maps} before "
                                         f"this line; handle=0 when there is none)", ln, col0 + 1)
        ops.append(replace(op, ctx=ctx) if ctx else op)
    if len(ops) > MAX_OPS:
        raise ProgramSyntaxError(f"a program has at most {MAX_OPS} operations", len(text.splitlines()), 1)
    return Program(config, tuple(ops), tuple(sorted(((i, a, c) for (i, a), c in schedule.items()), key=schedule_key)))


_CTX_PREFIX = re.compile(r"^\s*(cpu0|cpu1|irq0|irq1)\s*:")


_ANCHOR = re.compile(r'\s*at\s*=\s*("(?:[^"\\]|\\.)*")\s*(?:,\s*n\s*=\s*(\d+)\s*)?,\s*to\s*=\s*(\w+)\s*')


def _parse_preempt(body: str, ln: int, col0: int) -> tuple:
    """preempt(after=N, to=CONTEXT): N steps into the op; preempt(at="LABEL"[, n=K], to=CONTEXT): at the K-th
    (default first) preemption point of the op with that label."""
    usage = (f"expected preempt(after=N, to=CONTEXT) or preempt(at=\"LABEL\", n=K, to=CONTEXT) with CONTEXT one "
             f"of {', '.join(CONTEXTS)}")
    a = _ANCHOR.fullmatch(body)
    if a:
        if a.group(3) not in CONTEXTS:
            raise ProgramSyntaxError(usage, ln, col0 + 1)
        nth = int(a.group(2) or 1)
        if not 1 <= nth < MAX_AFTER:
            raise ProgramSyntaxError(f"n must be 1..{MAX_AFTER - 1}", ln, col0 + 1)
        return Anchor(json.loads(a.group(1)), nth), CONTEXTS.index(a.group(3))
    m = re.fullmatch(r"\s*after\s*=\s*(\d+)\s*,\s*to\s*=\s*(\w+)\s*", body)
    if not m or m.group(2) not in CONTEXTS:
        raise ProgramSyntaxError(usage, ln, col0 + 1)
    after = int(m.group(1))
    if not 0 <= after < MAX_AFTER:
        raise ProgramSyntaxError(f"after must be 0..{MAX_AFTER - 1}", ln, col0 + 1)
    return after, CONTEXTS.index(m.group(2))


def _parse_op(kind: str, body: str, ln: int, col0: int) -> Op:
    k = KINDS[kind]
    types = dict(k.fields)
    vals: dict[str, object] = {}
    for piece, off in split_args(body):
        col = col0 + off + 1 + (len(piece) - len(piece.lstrip()))
        p = piece.strip()
        vcol = col
        if "=" in p:
            name, v = (x.strip() for x in p.split("=", 1))
            after = p.split("=", 1)[1]
            vcol = col + p.index("=") + 1 + (len(after) - len(after.lstrip()))
            ftype = types.get(name)
            if ftype is None:
                raise ProgramSyntaxError(f"{k.name} has no argument {name!r}", ln, col)
            try:
                vals[name] = ftype.parse(v)
            except FieldError as e:
                raise ProgramSyntaxError(str(e), ln, vcol) from None
            continue
        for name, ftype in k.fields:          # an unnamed argument: the field whose bare form it is
            try:
                v = ftype.bare(p)
            except FieldError as e:
                raise ProgramSyntaxError(str(e), ln, col) from None
            if v is not None:
                vals[name] = v
                break
        else:
            if re.fullmatch(r"d\d+", p) or p in EVICT_WHAT:
                raise ProgramSyntaxError(f"{k.name} has no argument {'dom' if p[0] == 'd' else 'what'!r}", ln, col)
            raise ProgramSyntaxError(f"unexpected argument {p!r}", ln, col)
    missing = [f for f, _t in k.fields if f not in vals]
    if missing:
        raise ProgramSyntaxError(f"{k.name} is missing {', '.join(missing)}", ln, col0)
    return Op(kind, tuple(vals[f] for f, _t in k.fields))
