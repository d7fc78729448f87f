"""Hardware walks of the non-LPAE table formats the seed-000 drivers use: ARMv7 short descriptor (v7s),
Allwinner sun50i, Unisoc sprd (flat) and Apple DART2. Same protocol as lpae.Geometry."""

from dataclasses import dataclass

from .lpae import Leaf


class TableFormat:
    """Generic multi-level walker; subclasses say how big each level is and decode descriptors."""

    name = "?"
    pg_shift = 12
    entry = 4                      # bytes per descriptor
    first_level = 1
    last_level = 2

    def lvl_shift(self, lvl: int) -> int:
        raise NotImplementedError

    def nbits(self, lvl: int) -> int:
        raise NotImplementedError

    def decode(self, desc: int, lvl: int, stage: int):
        """('table', addr) | ('leaf', pa_base, span, perms) | None."""
        raise NotImplementedError

    def index(self, va: int, lvl: int) -> int:
        return (va >> self.lvl_shift(lvl)) & ((1 << self.nbits(lvl)) - 1)

    def top(self) -> int:
        return self.lvl_shift(self.first_level) + self.nbits(self.first_level)

    def walk(self, mem, ttb: int, stage: int, va: int):
        steps = []
        if va >> self.top():
            return None, steps
        table, lvl = ttb, self.first_level
        read = mem.smmu_read
        while lvl <= self.last_level:
            addr = table + self.entry * self.index(va, lvl)
            desc = read(addr)
            d = self.decode(desc, lvl, stage)
            if d is None:
                return None, steps
            if d[0] == "table":
                steps.append((lvl, va >> self.lvl_shift(lvl), d[1], addr, desc))
                table, lvl = d[1], lvl + 1
                continue
            _k, pa, span, perms = d
            return Leaf(va & ~(span - 1), span, lvl, pa, perms), steps
        return None, steps

    def walk_from(self, mem, lvl: int, table: int, stage: int, va: int):
        read = mem.smmu_read
        while lvl <= self.last_level:
            d = self.decode(read(table + self.entry * self.index(va, lvl)), lvl, stage)
            if d is None:
                return None
            if d[0] == "table":
                table, lvl = d[1], lvl + 1
                continue
            return Leaf(va & ~(d[2] - 1), d[2], lvl, d[1], d[3])
        return None

    def _enum(self, mem, lvl, table, stage, va_base, leaves, tables):
        shift = self.lvl_shift(lvl)
        seen = set()
        for addr in mem.smmu_nonzero(table, self.entry << self.nbits(lvl)):
            if addr % self.entry:
                continue
            desc = mem.smmu_read(addr)
            d = self.decode(desc, lvl, stage)
            if d is None:
                continue
            va = va_base | (((addr - table) // self.entry) << shift)
            if d[0] == "table":
                tables.append((lvl, va >> shift, d[1], addr, desc))
                if lvl < self.last_level:
                    self._enum(mem, lvl + 1, d[1], stage, va, leaves, tables)
                continue
            _k, pa, span, perms = d
            base = va & ~(span - 1)
            if base not in seen:        # a contiguous (large) entry is repeated 16 times
                seen.add(base)
                leaves.append(Leaf(base, span, lvl, pa, perms))
        return leaves, tables

    def enumerate(self, mem, ttb: int, stage: int):
        return self._enum(mem, self.first_level, ttb, stage, 0, [], [])

    def enumerate_from(self, mem, lvl: int, table: int, stage: int, va_base: int):
        if lvl > self.last_level:
            return []
        return self._enum(mem, lvl, table, stage, va_base, [], [])[0]

    def is_table_desc(self, desc: int, lvl: int) -> bool:
        d = self.decode(desc, lvl, 1)
        return d is not None and d[0] == "table"

    def table_addr(self, desc: int) -> int:
        d = self.decode(desc, self.first_level, 1)
        return d[1] if d and d[0] == "table" else 0

    def text(self) -> str:
        return f"{self.name} ias={self.top()}"


@dataclass(frozen=True)
class V7s(TableFormat):
    """ARMv7 short descriptor (io-pgtable-arm-v7s): 1M sections / 16M supersections at level 1,
    4K small / 64K large pages at level 2; AP2 (RDONLY) in the attribute byte."""
    ias: int = 32
    no_perms: bool = False
    name = "v7s"

    def lvl_shift(self, lvl):
        return 20 if lvl == 1 else 12

    def nbits(self, lvl):
        return self.ias - 20 if lvl == 1 else 8

    def decode(self, desc, lvl, stage):
        t = desc & 3
        if not t:
            return None
        attr = (desc >> (10 if lvl == 1 else 4)) & 0xFF
        perms = "rw" if self.no_perms or not attr & 0x20 else "r"
        if lvl == 1:
            if t == 1:
                return ("table", desc & 0xFFFFFC00)
            if desc & (1 << 18):
                return ("leaf", desc & 0xFF000000, 1 << 24, perms)
            return ("leaf", desc & 0xFFF00000, 1 << 20, perms)
        if desc & 2:
            return ("leaf", desc & 0xFFFFF000, 1 << 12, perms)
        return ("leaf", desc & 0xFFFF0000, 1 << 16, perms)


@dataclass(frozen=True)
class Sun50i(TableFormat):
    """sun50i-iommu: 4096-entry directory (iova[31:20]) of 256-entry page tables (iova[19:12])."""
    name = "sun50i"

    def lvl_shift(self, lvl):
        return 20 if lvl == 1 else 12

    def nbits(self, lvl):
        return 12 if lvl == 1 else 8

    def decode(self, desc, lvl, stage):
        if lvl == 1:
            return ("table", desc & 0xFFFFFC00) if desc & 3 == 1 else None
        if not desc & 2:
            return None
        aci = (desc >> 4) & 0xF
        perms = {1: "", 2: "r", 3: "w", 4: "rw"}.get(aci, "")
        return ("leaf", desc & 0xFFFFF000, 1 << 12, perms)


@dataclass(frozen=True)
class SprdFlat(TableFormat):
    """sprd-iommu: one flat table of 32-bit page numbers over a 256M aperture (0 = unmapped)."""
    name = "sprd"
    first_level = last_level = 3

    def lvl_shift(self, lvl):
        return 12

    def nbits(self, lvl):
        return 16

    def decode(self, desc, lvl, stage):
        return ("leaf", (desc & 0xFFFFFFFF) << 12, 1 << 12, "rw") if desc else None


@dataclass(frozen=True)
class Dart2(TableFormat):
    """io-pgtable-dart, DART2 encoding, 16K pages, 2 levels below the TTBR (36-bit IAS):
    level 1 index iova[35:25], level 2 index iova[24:14]; PA[41:14] in pte[37:10]."""
    name = "dart"
    pg_shift = 14
    entry = 8

    def lvl_shift(self, lvl):
        return 25 if lvl == 1 else 14

    def nbits(self, lvl):
        return 11

    def decode(self, desc, lvl, stage):
        if not desc & 1:
            return None
        pa = ((desc >> 10) & ((1 << 28) - 1)) << 14
        if lvl == 1:
            return ("table", pa)
        perms = ("" if desc & 8 else "r") + ("" if desc & 4 else "w")
        return ("leaf", pa, 1 << 14, perms)
