"""The op table: every kind of operation a program holds, described once with its typed fields.

In the manner of syzkaller's sys/ descriptions: an op kind is its kernel call name, its fields and a few
properties; a field type knows how its values print, parse, decode from fuzz bytes, encode back and
shrink. The text format (program.py), the byte codec (codec.py), minimisation (minimize.py) and
mutation (mutator.py) are derived from this table, so a new op kind is one OpKind line here plus its
kernel models (the variants' API and the runner's intent update).
"""

import re
from dataclasses import dataclass

NUM_DOMAINS = 2
NUM_SIDS = 4
NUM_GATHERS = 2
NUM_MMS = 2                # processes whose address spaces devices bind (SVA)
NUM_PASIDS = 3             # PASIDs 1..3 a device may issue (mm k's is k + 1: variants/arm_smmu_v3_sva.py)
MAX_SG = 16                # entries of one iommu_map_sg (what the byte encoding holds)
M64 = (1 << 64) - 1
PROTS = {3: "RW", 1: "R", 2: "W", 0: "NONE"}
PROT_BY_NAME = {v: k for k, v in PROTS.items()}
PROT_CODES = (3, 3, 3, 1, 1, 2, 3, 0)      # byte & 7 -> prot (IOMMU_READ | IOMMU_WRITE mostly)
EVICT_WHAT = ("tlb", "walk", "all")
# reference/alloc_faults.py: io-pgtable table pages, the DMA flush queue, arm-smmu-v3's invalidation arrays, IOVAs
ALLOC_KINDS = ("pgtable", "fq", "invs", "iova")


class FieldError(ValueError):
    """A field value that does not parse or is out of range; `col_offset` is from the value's start."""


def _int(tok: str) -> int:
    try:
        return int(tok.strip(), 0)
    except ValueError:
        raise FieldError(f"expected a number, got {tok.strip()!r}") from None


class FieldType:
    """How the values of one kind of argument print, parse, decode, encode and shrink."""
    tag = ""                    # the short type name (OPS keeps it for callers that switch on it)
    example: object = 0         # a typical value (the fuzzer's dictionary samples)

    def text(self, name: str, v) -> str:
        return f"{name}={int(v)}"

    def bare(self, tok: str):
        """The value of an unnamed argument token (`d0`, `all`), or None if this type has no bare form."""
        return None

    def parse(self, tok: str):
        raise NotImplementedError

    def decode(self, r, ctx):
        raise NotImplementedError

    def encode(self, out: bytearray, ctx, v) -> None:
        raise NotImplementedError

    def simpler(self, v) -> list:
        """Candidate replacements of v for minimisation, simplest first."""
        return []


class _Index(FieldType):
    """A small index (domain, stream, gather): bytes biased to 0 for domains and gathers."""

    def __init__(self, tag: str, limit: int, prefix: str | None, what: str):
        self.tag, self.limit, self.prefix, self.what = tag, limit, prefix, what

    def text(self, name, v):
        if self.tag == "dom":
            return f"d{v}"
        if self.tag == "gather":
            return f"gather=g{v}"
        return f"{name}={int(v)}"

    def bare(self, tok):
        if self.tag == "dom" and re.fullmatch(r"d\d+", tok):
            return self.parse(tok[1:])
        return None

    def parse(self, tok):
        if self.tag == "gather":
            if not re.fullmatch(r"g\d+", tok) or not 0 <= int(tok[1:]) < self.limit:
                raise FieldError(f"gather must be g0..g{self.limit - 1}")
            return int(tok[1:])
        v = _int(tok)
        if not 0 <= v < self.limit:
            raise FieldError(self.what)
        return v

    def decode(self, r, ctx):
        b = r.u8()
        if self.tag == "sid":
            return b % self.limit
        return 0 if b & 3 else 1             # 3 in 4: index 0, so that ops meet on one domain, gather and mm

    def encode(self, out, ctx, v):
        out.append(v if self.tag == "sid" else (1 if v == 0 else 0))

    def simpler(self, v):
        return [0] if v else []


class _Pasid(FieldType):
    """A PASID a device issues with its request, 1..NUM_PASIDS (0 is IOMMU_NO_PASID: the plain dma op)."""
    tag = "pasid"
    example = 1

    def parse(self, tok):
        v = _int(tok)
        if not 1 <= v <= NUM_PASIDS:
            raise FieldError(f"pasid must be 1..{NUM_PASIDS}")
        return v

    def decode(self, r, ctx):
        return r.u8() % NUM_PASIDS + 1

    def encode(self, out, ctx, v):
        out.append(v - 1)

    def simpler(self, v):
        return [1] if v != 1 else []


class _Value(FieldType):
    """An address or size, from the codec's anchors and pools (codec._Ctx) or raw 64-bit."""

    def __init__(self, tag: str, pool: str, example: int):
        self.tag, self.pool, self.example = tag, pool, example

    def text(self, name, v):
        return f"{name}={v:#x}"

    def parse(self, tok):
        v = _int(tok)
        if not 0 <= v < 1 << 64:
            raise FieldError("value out of 64-bit range")
        return v

    def decode(self, r, ctx):
        return ctx.value(r, self.pool)

    def encode(self, out, ctx, v):
        ctx.put_value(out, self.pool, v)

    def simpler(self, v):
        r = 1 << (v.bit_length() - 1) if v else 0          # 0x40123000 -> 0x40000000
        if self.tag == "addr":
            return [x for x in (r, 0) if x != v] if v else []
        return [x for x in (r, 0x1000) if x != v and x] if v > 0x1000 else []


class _Prot(FieldType):
    tag = "prot"
    example = 3

    def text(self, name, v):
        return f"prot={PROTS[v]}"

    def parse(self, tok):
        if tok not in PROT_BY_NAME:
            raise FieldError(f"prot must be one of {', '.join(PROT_BY_NAME)}")
        return PROT_BY_NAME[tok]

    def decode(self, r, ctx):
        return PROT_CODES[r.u8() & 7]

    def encode(self, out, ctx, v):
        out.append(PROT_CODES.index(v))

    def simpler(self, v):
        return [3] if v != 3 else []


class _Bool(FieldType):
    tag = "bool"
    example = True

    def parse(self, tok):
        return bool(_int(tok))

    def decode(self, r, ctx):
        return bool(r.u8() & 1)

    def encode(self, out, ctx, v):
        out.append(int(v))


class _Choice(FieldType):
    """One of a few names, written bare: which cache a hardware eviction drops from, which allocation fails.
    `since`: (format version, how many of the first values inputs of older formats choose from), so that values
    appended later leave old fuzz inputs decoding as they did."""

    def __init__(self, tag: str, values: tuple, since: tuple[int, int] | None = None):
        self.tag, self.values, self.example, self.since = tag, values, values[-1], since

    def text(self, name, v):
        return v

    def bare(self, tok):
        return tok if tok in self.values else None

    def parse(self, tok):
        if tok not in self.values:
            raise FieldError(f"expected one of {', '.join(self.values)}")
        return tok

    def decode(self, r, ctx):
        old = self.since and getattr(ctx, "format", self.since[0]) < self.since[0]
        return self.values[r.u8() % (self.since[1] if old else len(self.values))]

    def encode(self, out, ctx, v):
        out.append(self.values.index(v))


class _Handle(FieldType):
    """The k-th dma_map of the program (what its dma_addr_t was)."""
    tag = "handle"

    def text(self, name, v):
        return f"handle={v}"

    def parse(self, tok):
        v = _int(tok)
        if not 0 <= v < 256:
            raise FieldError("handle must be 0..255 (the k-th dma_map of the program)")
        return v

    def decode(self, r, ctx):
        return r.u8() % max(1, ctx.dma_maps)

    def encode(self, out, ctx, v):
        if not 0 <= v < max(1, ctx.dma_maps):
            raise ValueError(f"handle {v} names no earlier dma_map")
        out.append(v)


class _Count(FieldType):
    """A one-byte count; with `all_`, 0xFF (text `all`, value -1) means every one."""
    tag = "n"

    def __init__(self, all_: bool, limit: int = 256):
        self.all_, self.limit = all_, limit          # limit: values 0..limit-1 (decoded modulo it)
        self.example = -1 if all_ else 0

    def text(self, name, v):
        return "all" if self.all_ and v < 0 else f"{name}={int(v)}"

    def bare(self, tok):
        return -1 if self.all_ and tok == "all" else None

    def parse(self, tok):
        v = _int(tok)
        top = 255 if self.all_ else self.limit
        if not (0 <= v < top or (self.all_ and v == -1)):
            raise FieldError(f"n must be 0..{top - 1}" + (" or all" if self.all_ else ""))
        return v

    def decode(self, r, ctx):
        b = r.u8()
        return -1 if b == 0xFF and self.all_ else b % self.limit

    def encode(self, out, ctx, v):
        if self.all_ and v < 0:
            out.append(0xFF)
        elif 0 <= v < 256 and not (self.all_ and v == 0xFF):
            out.append(v)
        else:
            raise ValueError("n must be 0..254")


class _Sg(FieldType):
    """A scatterlist: (paddr, length) entries, 1..MAX_SG."""
    tag = "sg"
    example = ((0x8000_0000, 0x1000),)

    def text(self, name, v):
        return "sg=[" + ", ".join(f"{pa:#x}+{ln:#x}" for pa, ln in v) + "]"

    def parse(self, tok):
        if not (tok.startswith("[") and tok.endswith("]")):
            raise FieldError("sg must be a list like [0x80000000+0x1000, ...]")
        ents = []
        for piece in split_args(tok[1:-1]):
            if "+" not in piece[0]:
                raise FieldError("sg entry must be paddr+length")
            a, b = piece[0].split("+", 1)
            ent = (_int(a), _int(b))
            if not all(0 <= x < 1 << 64 for x in ent):
                raise FieldError("sg entry out of 64-bit range")
            ents.append(ent)
        if not 1 <= len(ents) <= MAX_SG:
            raise FieldError(f"sg must have 1..{MAX_SG} entries")
        return tuple(ents)

    def decode(self, r, ctx):
        ents = []
        for _ in range((r.u8() & 15) + 1):
            epa = ctx.value(r, "pa")
            eln = ctx.value(r, "size")
            ents.append((epa, eln))
            ctx.last["pa"] = (epa + eln) & M64
            ctx.remember("pa", epa)
        return tuple(ents)

    def encode(self, out, ctx, v):
        if not 1 <= len(v) <= MAX_SG:
            raise ValueError(f"the byte encoding holds 1..{MAX_SG} sg entries")
        out.append(len(v) - 1)
        for epa, eln in v:
            ctx.put_value(out, "pa", epa)
            ctx.put_value(out, "size", eln)
            ctx.last["pa"] = (epa + eln) & M64
            ctx.remember("pa", epa)

    def simpler(self, v):
        return [v[:len(v) // 2], v[len(v) // 2:], v[:1]] if len(v) > 1 else []


DOM = _Index("dom", NUM_DOMAINS, "d", f"domain must be d0..d{NUM_DOMAINS - 1}")
SID = _Index("sid", NUM_SIDS, None, f"sid must be 0..{NUM_SIDS - 1}")
GATHER = _Index("gather", NUM_GATHERS, "g", "")
MM = _Index("mm", NUM_MMS, None, f"mm must be 0..{NUM_MMS - 1}")
PASID = _Pasid()
IOVA = _Value("addr", "addr", 0x200000)
PADDR = _Value("addr", "pa", 0x8000_0000)
SIZE = _Value("size", "size", 0x1000)
PROT, BOOL, HANDLE, SG = _Prot(), _Bool(), _Handle(), _Sg()
WHAT, ALLOC = _Choice("what", EVICT_WHAT), _Choice("alloc", ALLOC_KINDS, since=(7, 2))    # format 7: invs, iova
COUNT, COUNT_OR_ALL, NTH = _Count(False), _Count(True), _Count(False, 8)


@dataclass(frozen=True)
class OpKind:
    """One kind of operation: its key in code, its kernel call name, its fields (name, type) in order, and
    whether it is an OS call (else a hardware or device event) that may sleep (takes a mutex: never issued
    from an interrupt). `weight`: its share of the byte codec's opcode table."""
    kind: str
    name: str
    fields: tuple
    os: bool = True
    sleeps: bool = False
    weight: int = 1

    def example(self) -> tuple:
        """Typical field values (the fuzzer's dictionary)."""
        return tuple(t.example for _f, t in self.fields)


# In codec opcode order (the byte format depends on it: a new kind goes at the end, and codec.py's
# FORMAT_VERSION goes up): each kind takes `weight` consecutive opcodes.
OP_KINDS = (
    OpKind("map", "iommu_map", (("dom", DOM), ("iova", IOVA), ("paddr", PADDR), ("size", SIZE), ("prot", PROT)),
           weight=6),
    OpKind("unmap", "iommu_unmap", (("dom", DOM), ("iova", IOVA), ("size", SIZE)), weight=4),
    OpKind("unmap_fast", "iommu_unmap_fast", (("dom", DOM), ("iova", IOVA), ("size", SIZE), ("gather", GATHER)),
           weight=3),
    OpKind("sync", "iommu_iotlb_sync", (("dom", DOM), ("gather", GATHER)), weight=3),
    OpKind("map_sg", "iommu_map_sg", (("dom", DOM), ("iova", IOVA), ("sg", SG), ("prot", PROT)), weight=2),
    OpKind("flush_all", "iommu_flush_iotlb_all", (("dom", DOM),)),
    OpKind("detach", "iommu_detach_device", (("sid", SID),), sleeps=True),
    OpKind("ats", "pci_ats", (("sid", SID), ("on", BOOL)), sleeps=True),
    OpKind("fill", "hw_fill", (("sid", SID), ("iova", IOVA)), os=False),
    OpKind("evict", "hw_evict", (("what", WHAT), ("n", COUNT)), os=False),
    OpKind("ats_req", "ats_translate", (("sid", SID), ("iova", IOVA)), os=False),
    OpKind("attach", "iommu_attach_device", (("dom", DOM), ("sid", SID)), sleeps=True, weight=3),
    OpKind("dma", "dev_dma", (("sid", SID), ("iova", IOVA), ("write", BOOL)), os=False, weight=3),
    OpKind("writeback", "hw_writeback", (("n", COUNT_OR_ALL),), os=False, weight=2),
    OpKind("dma_map", "dma_map", (("dom", DOM), ("paddr", PADDR), ("size", SIZE), ("prot", PROT)), weight=3),
    OpKind("dma_unmap", "dma_unmap", (("handle", HANDLE),), weight=3),
    OpKind("fq_timeout", "fq_flush_timeout", (("dom", DOM),)),
    OpKind("dma_enable_fq", "iommu_dma_init_fq", (("dom", DOM),), sleeps=True),
    OpKind("iova_to_phys", "iommu_iova_to_phys", (("dom", DOM), ("iova", IOVA))),
    OpKind("reset", "arm_smmu_device_reset", (), os=False),
    OpKind("fail_alloc", "fail_nth", (("what", ALLOC), ("n", NTH)), os=False),
    # SVA (docs/sva.md): a device PASID bound to a process's page table, changed by the CPU and invalidated by the
    # mm's notifier
    OpKind("sva_bind", "iommu_sva_bind_device", (("sid", SID), ("mm", MM)), sleeps=True),
    OpKind("sva_unbind", "iommu_sva_unbind_device", (("sid", SID), ("mm", MM)), sleeps=True),
    OpKind("mm_map", "set_ptes", (("mm", MM), ("va", IOVA), ("paddr", PADDR), ("size", SIZE), ("prot", PROT))),
    OpKind("mm_unmap", "ptep_get_and_clear", (("mm", MM), ("va", IOVA), ("size", SIZE))),
    OpKind("mm_invalidate", "arm_smmu_mm_arch_invalidate_secondary_tlbs", (("mm", MM), ("start", IOVA), ("end", IOVA))),
    OpKind("pasid_dma", "dev_dma_pasid", (("sid", SID), ("pasid", PASID), ("iova", IOVA), ("write", BOOL)), os=False),
    OpKind("pasid_ats_req", "ats_translate_pasid", (("sid", SID), ("pasid", PASID), ("iova", IOVA)), os=False),
)
KINDS = {k.kind: k for k in OP_KINDS}
KIND_BY_NAME = {k.name: k.kind for k in OP_KINDS}
OS_KINDS = frozenset(k.kind for k in OP_KINDS if k.os)
SLEEPING_KINDS = frozenset(k.kind for k in OP_KINDS if k.sleeps)
# kind -> (text name, ((field name, type tag), ...)): the table in its older, type-tag form
OPS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    k.kind: (k.name, tuple((f, t.tag) for f, t in k.fields)) for k in OP_KINDS}


def split_args(s: str) -> list[tuple[str, int]]:
    """Split on top-level commas; returns (piece, column offset) pairs."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append((s[start:i], start))
            start = i + 1
    if s[start:].strip():
        out.append((s[start:], start))
    return out
