"""Hardware walk of the Arm VMSAv8-64 (LPAE) translation table format (SMMUv3 stage 1 / stage 2).

Geometry follows the architecture: the start level and the size of the (possibly
concatenated) first table come from the STE/CD (T0SZ/TG0, VTCR.SL0) exactly as Linux's
io-pgtable-arm programs them (arm_lpae_alloc_pgtable / arm_64_lpae_alloc_pgtable_s2).
"""

from dataclasses import dataclass

ADDR_MASK_48 = ((1 << 48) - 1) & ~0xFFF
PTE_VALID = 1
PTE_TYPE_MASK = 3
PTE_TYPE_TABLE_OR_PAGE = 3
PTE_TYPE_BLOCK = 1
PTE_AF = 1 << 10
S1_AP_RDONLY = 1 << 7
S2_HAP_READ = 1 << 6
S2_HAP_WRITE = 1 << 7


@dataclass(frozen=True, slots=True)
class Geometry:
    """Translation regime shape: granule, input size, first level, bits resolved at the first level."""
    pg_shift: int
    ias: int
    start_level: int

    @property
    def bpl(self) -> int:
        return self.pg_shift - 3

    @property
    def granule(self) -> int:
        return 1 << self.pg_shift

    @property
    def pgd_bits(self) -> int:
        return self.ias - self.pg_shift - self.bpl * (3 - self.start_level)

    def lvl_shift(self, lvl: int) -> int:
        return (4 - lvl) * self.bpl + 3

    def block_size(self, lvl: int) -> int:
        return 1 << self.lvl_shift(lvl)

    def idx_bits(self, lvl: int) -> int:
        return self.pgd_bits if lvl == self.start_level else self.bpl

    def block_allowed(self, lvl: int) -> bool:
        """Levels at which a block descriptor is legal (without FEAT_LPA2/52-bit OA)."""
        if self.pg_shift == 12:
            return lvl in (1, 2)
        return lvl == 2

    # ---- the format protocol the SMMU uses (every table format implements these) ---------------
    name = "lpae"

    def walk(self, mem, ttb: int, stage: int, va: int):
        """(Leaf or None, [(level, va >> lvl_shift, next table, descriptor address, descriptor)])."""
        return walk(mem.smmu_read, self, ttb, stage, va)

    def enumerate(self, mem, ttb: int, stage: int):
        return enumerate_tree(mem, self, ttb, stage)

    def enumerate_from(self, mem, lvl: int, table: int, stage: int, va_base: int):
        """Leaves below a table entered at `lvl` (a walk through a cached table pointer)."""
        return enumerate_tree(mem, self, table, stage, lvl, va_base)[0]

    def walk_from(self, mem, lvl: int, table: int, stage: int, va: int):
        """The leaf for va found by continuing a walk at `lvl` from `table`."""
        read = mem.smmu_read
        while lvl <= 3:
            shift = self.lvl_shift(lvl)
            desc = read(table + 8 * ((va >> shift) & ((1 << self.idx_bits(lvl)) - 1)))
            if not desc & PTE_VALID:
                return None
            if lvl < 3 and desc & PTE_TYPE_MASK == PTE_TYPE_TABLE_OR_PAGE:
                table = desc & ADDR_MASK_48
                lvl += 1
                continue
            if (lvl == 3 and desc & PTE_TYPE_MASK != PTE_TYPE_TABLE_OR_PAGE) or \
                    (lvl < 3 and not self.block_allowed(lvl)) or not desc & PTE_AF:
                return None
            span = 1 << shift
            return Leaf((va >> shift) << shift, span, lvl, desc & ADDR_MASK_48 & ~(span - 1), leaf_perms(desc, stage))
        return None

    def is_table_desc(self, desc: int, lvl: int) -> bool:
        return lvl < 3 and desc & PTE_TYPE_MASK == PTE_TYPE_TABLE_OR_PAGE

    def table_addr(self, desc: int) -> int:
        return desc & ADDR_MASK_48

    def text(self) -> str:
        return f"granule={self.granule >> 10}K ias={self.ias}"


def geometry_for(pg_shift: int, ias: int, stage: int) -> Geometry:
    """The start level Linux uses for this granule/IAS (S2 concatenates up to 16 first-level tables)."""
    bpl = pg_shift - 3
    va_bits = ias - pg_shift
    levels = -(-va_bits // bpl)
    start = 4 - levels
    pgd_bits = va_bits - bpl * (levels - 1)
    if stage == 2 and start == 0 and (1 << pgd_bits) <= 16:
        start += 1
    return Geometry(pg_shift, ias, start)


@dataclass(frozen=True, slots=True)
class Leaf:
    """A valid leaf found by a walk: the translation a TLB may cache."""
    va: int
    span: int
    level: int
    pa: int
    perms: str  # subset of "rw"


def leaf_perms(desc: int, stage: int) -> str:
    if stage == 1:
        return "r" if desc & S1_AP_RDONLY else "rw"
    return ("r" if desc & S2_HAP_READ else "") + ("w" if desc & S2_HAP_WRITE else "")


def walk(read, geo: Geometry, ttb: int, stage: int, va: int, walk_cache=None):
    """One table walk for va. Returns (Leaf or None, [(level, va_prefix, table_pa, desc_addr, desc)]).

    `walk_cache`, if given, maps (level, va_prefix) -> next table PA and is used in place of
    the descriptor read (the walk-cache shortcut).
    """
    steps = []
    if va >> geo.ias:
        return None, steps
    table = ttb
    for lvl in range(geo.start_level, 4):
        shift = geo.lvl_shift(lvl)
        nbits = geo.idx_bits(lvl)
        idx = (va >> shift) & ((1 << nbits) - 1)
        addr = table + idx * 8
        desc = read(addr)
        if not desc & PTE_VALID:
            return None, steps
        t = desc & PTE_TYPE_MASK
        if lvl < 3 and t == PTE_TYPE_TABLE_OR_PAGE:
            nxt = desc & ADDR_MASK_48
            steps.append((lvl, va >> shift, nxt, addr, desc))
            table = nxt
            continue
        if lvl == 3 and t != PTE_TYPE_TABLE_OR_PAGE:
            return None, steps
        if lvl < 3 and not geo.block_allowed(lvl):
            return None, steps
        if not desc & PTE_AF:
            return None, steps
        span = 1 << shift
        base = (va >> shift) << shift
        return Leaf(base, span, lvl, desc & ADDR_MASK_48 & ~(span - 1), leaf_perms(desc, stage)), steps
    return None, steps


def enumerate_tree(mem, geo: Geometry, table: int, stage: int, lvl: int | None = None, va_base: int = 0,
                   leaves=None, tables=None):
    """Every valid leaf and table descriptor reachable from `table` at `lvl` (a full speculative walk). What one
    table decodes to is remembered while none of its pages changed in the walker's view (Memory.walk_stamp), so
    a walk after a map re-reads only the tables the map wrote."""
    if lvl is None:
        lvl = geo.start_level
    if leaves is None:
        leaves, tables = [], []
    nbits = geo.idx_bits(lvl)
    stamp = mem.walk_stamp(table, 8 << nbits)
    key = (table, lvl, va_base, stage, geo)
    hit = mem.walk_memo.get(key) if stamp is not None else None
    if hit is not None and hit[0] == stamp:
        items = hit[1]
    else:
        items = _decode_table(mem, geo, table, stage, lvl, va_base, nbits)
        if stamp is not None:
            mem.walk_memo[key] = (stamp, items)
    shift = geo.lvl_shift(lvl)
    for leaf, entry in items:
        if leaf is not None:
            leaves.append(leaf)
        else:
            tables.append(entry)
            enumerate_tree(mem, geo, entry[2], stage, lvl + 1, entry[1] << shift, leaves, tables)
    return leaves, tables


def _decode_table(mem, geo: Geometry, table: int, stage: int, lvl: int, va_base: int, nbits: int) -> list:
    """One table's valid entries in address order: (Leaf, None) for a leaf, (None, (lvl, va >> shift, next
    table, descriptor address, descriptor)) for a table descriptor."""
    shift = geo.lvl_shift(lvl)
    read = mem.smmu_read
    items: list = []
    for addr in mem.smmu_nonzero(table, 8 << nbits):
        desc = read(addr)
        if not desc & PTE_VALID:
            continue
        va = va_base | (((addr - table) >> 3) << shift)
        t = desc & PTE_TYPE_MASK
        if lvl < 3 and t == PTE_TYPE_TABLE_OR_PAGE:
            items.append((None, (lvl, va >> shift, desc & ADDR_MASK_48, addr, desc)))
            continue
        if lvl == 3 and t != PTE_TYPE_TABLE_OR_PAGE:
            continue
        if lvl < 3 and not geo.block_allowed(lvl):
            continue
        if not desc & PTE_AF:
            continue
        span = 1 << shift
        items.append((Leaf(va, span, lvl, desc & ADDR_MASK_48 & ~(span - 1), leaf_perms(desc, stage)), None))
    return items
