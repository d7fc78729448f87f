"""Fuzz bytes <-> programs. Every byte string decodes to a valid program (decode never raises);
encode() turns any program (e.g. a hand-written text seed) into bytes that decode back to it.

Values are biased: addresses come from granule/block-boundary anchors, from addresses and ends
already used in the program, or raw; sizes from page counts, block multiples, block-crossing and
unaligned shapes.
"""

from . import latitude
from .ops import KINDS, M64, OP_KINDS
from .program import CONTEXTS, MAX_AFTER, MAX_OPS, MAX_SWITCHES, Config, Op, Program

# The byte format. An input starting with FORMAT_MAGIC, FORMAT_VERSION is read with the op table's own
# opcodes (KIND_TABLE: each kind of ops.OP_KINDS, in its order, takes `weight` opcodes); anything else is a
# format-1 input (before the version byte), read with the 18 kinds that format had (KIND_TABLE_V1, frozen),
# so raw corpora saved before keep their meaning (but for those starting with the magic byte, 1 in 256).
# encode() writes the current format. A new op kind is appended to the op table and FORMAT_VERSION goes up.
# Version 3 adds a third config byte (b2, the SMMU's latitude: latitude.py); older inputs read it as 0.
# Version 4 appends arm_smmu_device_reset, version 5 fail_nth, version 6 the SVA ops, version 7 fail_nth's "invs"
# and "iova" (older inputs choose among the first two kinds: ops._Choice's `since`).
FORMAT_MAGIC, FORMAT_VERSION = 0xA9, 7
CURRENT_HEADER = bytes([FORMAT_MAGIC, FORMAT_VERSION])   # before random bytes: read in today's format
KIND_TABLE = [k.kind for k in OP_KINDS for _ in range(k.weight)]
KIND_CODE = {k: KIND_TABLE.index(k) for k in KINDS}
KIND_TABLE_V1 = (["map"] * 6 + ["unmap"] * 4 + ["unmap_fast"] * 3 + ["sync"] * 3 + ["map_sg"] * 2
                 + ["flush_all", "detach", "ats", "fill", "evict", "ats_req"] + ["attach"] * 3 + ["dma"] * 3
                 + ["writeback"] * 2 + ["dma_map"] * 3 + ["dma_unmap"] * 3 + ["fq_timeout", "dma_enable_fq"])
HEADER_LEN = 5         # magic, version, config bytes b0, b1 and b2
GRANULE_CODES = (12, 12, 14, 16)
IAS_TABLE = (48, 40, 32, 36, 42, 44, 39, 47)
POOL_MAX = 40          # selectors 0xC0..0xE7
SEL_POOL, SEL_LAST, SEL_RAW = 0xC0, 0xE8, 0xF0
# opcode bytes from 0xF0: 0xF0 + c issues the following ops from context c (cpu0, cpu1, irq0, irq1);
# 0xF4..0xFF, n: preempt the op just decoded after n & 63 steps, switching to context (b - 0xF4) & 3.
# Other opcode bytes select KIND_TABLE[b % len(KIND_TABLE)] (format 1: KIND_TABLE_V1[b % 40]).
OP_CTX, OP_SWITCH = 0xF0, 0xF4


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos < len(self.data):
            b = self.data[self.pos]
            self.pos += 1
            return b
        return 0

    def u64(self) -> int:
        v = 0
        for i in range(8):
            v |= self.u8() << (8 * i)
        return v

    def more(self) -> bool:
        return self.pos < len(self.data)


class _Ctx:
    """Decoder state shared by decode and encode so that both make the same choices."""

    def __init__(self, cfg: Config, fmt: int = FORMAT_VERSION):
        self.format = fmt        # the input's format version (1: before the version byte)
        g = 1 << cfg.pg_shift
        bpl = cfg.pg_shift - 3
        b1 = g << bpl            # level-2 block: 2M / 32M / 512M
        b0 = b1 << bpl           # level-1 block: 1G / 64G / 4T
        top = 1 << cfg.ias
        self.g = g
        self.iova_anchors = (0, b1, b1 - 8 * g, 2 * b1, b0, b0 - 8 * g, 16 * b1, top - b1,
                             top - 8 * g, 3 * b1 - 8 * g, 16 * g, b0 + b1)
        base = 0x8000_0000
        self.pa_anchors = (base, base + b1, base + b1 - 8 * g, 0x4000_0000, 0xC000_0000, 0x1_0000_0000,
                           0x1_0000_0000 + b0, base + 2 * b1, base + 16 * g, 0x9000_0000, base + b0, 0)
        self.size_units = (g, g, g, 16 * g, b1, b1, b0)
        self.b0, self.b1 = b0, b1
        self.size_slot = _SIZE_SLOTS.get(cfg.pg_shift)       # size -> its first slot (encode), per granule
        if self.size_slot is None:
            self.size_slot = _SIZE_SLOTS[cfg.pg_shift] = {}
            for sel in range(SEL_POOL):
                self.size_slot.setdefault(self.size_of(sel), sel)
        self.pools = {"addr": [], "pa": [], "size": []}
        self.dma_maps = 0
        self.last = {"addr": 0, "pa": 0}

    def value(self, r: "_Reader", pool: str) -> int:
        return _dec_value(r, self, pool)

    def put_value(self, out: bytearray, pool: str, v: int) -> None:
        _enc_value(out, self, pool, v)

    def remember(self, pool: str, v: int) -> None:
        p = self.pools[pool]
        if v not in p and len(p) < POOL_MAX:
            p.append(v)

    # sizes: count = (s & 15) + 1 with unit slots 0-6, then shaped slots 7-11
    def size_of(self, s: int) -> int:
        hi, c = s >> 4, (s & 15) + 1
        if hi < 7:
            return c * self.size_units[hi]
        if hi == 7:
            return self.b1 + c * self.g
        if hi == 8:
            return max(self.b1 - c * self.g, self.g)
        if hi == 9:
            return c - 1
        if hi == 10:
            return c * self.g // 2
        return self.b0 + c * self.b1


_SIZE_SLOTS: dict[int, dict[int, int]] = {}


def _dec_value(r: _Reader, ctx: _Ctx, pool: str) -> int:
    s = r.u8()
    if s >= SEL_RAW:
        return r.u64()
    if s >= SEL_LAST:
        return ctx.last.get(pool, 0) if pool != "size" else ctx.g
    if s >= SEL_POOL:
        p = ctx.pools[pool]
        return p[(s - SEL_POOL) % len(p)] if p else 0
    if pool == "size":
        return ctx.size_of(s)
    anchors = ctx.iova_anchors if pool == "addr" else ctx.pa_anchors
    return (anchors[s >> 4] + (s & 15) * ctx.g) & M64


def _enc_value(out: bytearray, ctx: _Ctx, pool: str, v: int) -> None:
    if pool == "size":
        sel = ctx.size_slot.get(v)
        if sel is not None:
            out.append(sel)
            return
    else:
        if ctx.last.get(pool) == v:
            out.append(SEL_LAST)
            return
        anchors = ctx.iova_anchors if pool == "addr" else ctx.pa_anchors
        for i, a in enumerate(anchors):
            d = v - a
            if 0 <= d < 16 * ctx.g and d % ctx.g == 0:
                out.append(i << 4 | d // ctx.g)
                return
    p = ctx.pools[pool]
    if v in p:
        out.append(SEL_POOL + p.index(v))
        return
    out.append(SEL_RAW)
    out += v.to_bytes(8, "little")


def _config_len(data: bytes) -> int:
    """How many config bytes the input's format has (2 before version 3)."""
    return 3 if data[:1] == bytes([FORMAT_MAGIC]) and len(data) > 1 and data[1] >= 3 else 2


def _header(r: _Reader, n: int) -> tuple[Config, bool]:
    b0, b1 = r.u8(), r.u8()
    b2 = r.u8() if n > 2 else 0
    stage = 2 if b0 & 0x20 else 1
    ias = IAS_TABLE[(b0 >> 2) & 7]
    if b1 >> 3:
        ias = min(31 + (b1 >> 3), 48)
    cfg = Config(pg_shift=GRANULE_CODES[b0 & 3], ias=ias, stage=stage, coherent=not b0 & 0x40,
                 range_inv=bool(b0 & 0x80), ats=bool(b1 & 1), e2h=bool(b1 & 2) and stage == 1,
                 **latitude.from_byte(b2))
    return cfg, not b1 & 4


def reheader(data: bytes, config: bytes) -> bytes:
    """The same op bytes under other config bytes (b0, b1[, b2]), in the input's own format."""
    n = _config_len(data)
    if data[:1] == bytes([FORMAT_MAGIC]):
        return data[:2] + config[:n] + data[2 + n:]
    return config[:n] + data[n:]


def decode(data: bytes) -> Program:
    """Bytes -> program. Total: any input gives a valid program of at most MAX_OPS operations."""
    r = _Reader(data)
    table, fmt = KIND_TABLE_V1, 1
    if data[:1] == bytes([FORMAT_MAGIC]):
        r.pos = 2                       # the version byte: every version so far reads with today's table
        table, fmt = KIND_TABLE, data[1] if len(data) > 1 else 0
    cfg, implicit_attach = _header(r, _config_len(data))
    ctx = _Ctx(cfg, fmt)
    ops = [Op("attach", (0, 0))] if implicit_attach else []
    cur = 0
    sched: dict[tuple, int] = {}
    while r.more():
        b = r.u8()
        if b >= OP_SWITCH:
            after = r.u8() & (MAX_AFTER - 1)
            key = (len(ops) - 1, after)
            if ops and (key in sched or len(sched) < MAX_SWITCHES):
                sched[key] = (b - OP_SWITCH) & 3
            continue
        if b >= OP_CTX:
            cur = b - OP_CTX
            continue
        if len(ops) >= MAX_OPS:
            break
        op = _dec_op(r, ctx, table[b % len(table)])
        ops.append(Op(op.kind, op.args, cur) if cur else op)
    return Program(cfg, tuple(ops), tuple(sorted((i, a, c) for (i, a), c in sched.items())))


def _dec_op(r: _Reader, ctx: _Ctx, kind: str) -> Op:
    vals = tuple(t.decode(r, ctx) for _f, t in KINDS[kind].fields)
    op = Op(kind, vals)
    _after(ctx, op)
    return op


def _pool_fields(kind: str) -> tuple:
    """The indices of an op kind's last field of each pool (addr, pa, size), None where it has none."""
    at = {}
    for i, (_f, t) in enumerate(KINDS[kind].fields):
        pool = getattr(t, "pool", None)
        if pool in ("addr", "pa", "size"):
            at[pool] = i
    return at.get("addr"), at.get("pa"), at.get("size")


_POOL_FIELDS = {kind: _pool_fields(kind) for kind in KINDS}


def _after(ctx: _Ctx, op: Op) -> None:
    """Update pools exactly the same way in decode and encode: the op's IOVA and paddr fields (the last of
    each pool) and its size."""
    if op.kind == "dma_map":
        ctx.dma_maps += 1
    args, (ia, ip, isz) = op.args, _POOL_FIELDS[op.kind]
    iova = args[ia] if ia is not None else None
    pa = args[ip] if ip is not None else None
    size = args[isz] if isz is not None else None
    if op.kind == "map_sg":
        size = sum(ln for _pa, ln in op.get("sg"))
    if iova is not None:
        ctx.remember("addr", iova)
        if size is not None:
            ctx.last["addr"] = (iova + size) & M64
            ctx.remember("addr", (iova + size) & M64)
    if pa is not None:
        ctx.remember("pa", pa)
        if size is not None:
            ctx.last["pa"] = (pa + size) & M64
    if size is not None and op.kind != "map_sg":
        ctx.remember("size", size)


def encode(prog: Program) -> bytes:
    """Program -> bytes that decode() maps back to the same program."""
    cfg = prog.config
    ops = list(prog.ops)
    implicit = bool(ops) and ops[0] == Op("attach", (0, 0))
    if implicit:
        ops = ops[1:]
    b0 = {12: 0, 14: 2, 16: 3}[cfg.pg_shift] | (0x20 if cfg.stage == 2 else 0) \
        | (0 if cfg.coherent else 0x40) | (0x80 if cfg.range_inv else 0)
    b1 = (1 if cfg.ats else 0) | (2 if cfg.e2h else 0) | (0 if implicit else 4)
    if cfg.ias in IAS_TABLE:
        b0 |= IAS_TABLE.index(cfg.ias) << 2
    else:
        b1 |= (cfg.ias - 31) << 3
    if cfg.e2h and cfg.stage != 1:
        raise ValueError("e2h is only meaningful for stage 1")
    out = bytearray([FORMAT_MAGIC, FORMAT_VERSION, b0, b1, latitude.to_byte(cfg)])
    ctx = _Ctx(cfg)
    cur = 0
    sw: dict[int, list] = {}
    for i, after, c in prog.schedule:
        if not isinstance(after, int):
            raise ValueError("preempt(at=...) names a preemption point, which has no byte form: give it as "
                             "after=N (program.resolve_anchors on a variant), or run the text")
        if not (0 <= after < MAX_AFTER and 0 <= c < len(CONTEXTS) and 0 <= i < len(prog.ops)):
            raise ValueError(f"preempt entry {(i, after, c)} out of range")
        sw.setdefault(i, []).append(bytes([OP_SWITCH + c, after]))
    first = 1 if implicit else 0
    for rec in sw.get(0, []) if implicit else ():
        out += rec
    for k, op in enumerate(ops, first):
        if op.ctx != cur:
            out.append(OP_CTX + op.ctx)
            cur = op.ctx
        out.append(KIND_CODE[op.kind])
        for (_f, t), v in zip(KINDS[op.kind].fields, op.args):
            try:
                t.encode(out, ctx, v)
            except ValueError as e:
                raise ValueError(f"{op.text()}: {e}") from None
        _after(ctx, op)
        for rec in sw.get(k, ()):
            out += rec
    return bytes(out)
