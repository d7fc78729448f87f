"""io-pgtable-arm from a kernel tree (drivers/iommu/io-pgtable-arm.c compiled by smmufuzz.kernel).

Same interface as io_pgtable_arm.ArmLpaeIoPgtable, so a driver model takes it as its `pgtable_cls`:
the C `struct io_pgtable_ops` does map_pages / unmap_pages / iova_to_phys (and iotlb_sync_map where
the tree has it); its TLB callbacks come back to the driver model's iommu_flush_ops.
"""

import ctypes as C

from ..kernel import clib
from .gather import queued
from .io_pgtable_arm import PgtableCfg

IO_PGTABLE_QUIRK_ARM_NS = 1 << 0


def _machine(lib: clib.KernelLib, mem) -> clib.Machine:
    """One Machine per (library, emulator memory): every table of a run shares the arena."""
    m = lib.by_mem.get(id(mem))
    return m if m is not None and m.mem is mem else clib.Machine(lib, mem)


class CArmLpaeIoPgtable:
    """struct io_pgtable_ops of ARM_64_LPAE_S1/S2, from the C."""

    lib_for = staticmethod(lambda cfg: None)     # set by the variant: which build (patched or not)
    defer_sync_pte = False                       # cfg->defer_sync_pte (the seed-003 series sets it)
    fmt32 = False                                # ARM_32_LPAE_S1/S2 (qcom_iommu, ipmmu-vmsa)
    STORE_BARRIERS = True                        # the tree's own dma_wmb()/wmb() reach the emulator (kc_barrier)

    def __init__(self, cfg: PgtableCfg, hw, tlb):
        self.cfg, self.hw, self.mem, self.tlb = cfg, hw, hw.mem, tlb
        lib = self.lib = self.lib_for(cfg)
        self.L = lib.L
        self.machine = _machine(lib, hw.mem)
        self.cookie = lib.next_id()
        lib.tables[self.cookie] = self
        self.gathers: dict = {}
        self.s2 = cfg.stage == 2
        fmt = clib.ARM_64_LPAE_S2 if self.s2 else clib.ARM_64_LPAE_S1
        if self.fmt32:
            fmt = clib.ARM_32_LPAE_S2 if self.s2 else clib.ARM_32_LPAE_S1
        err = C.c_long(0)
        defer = int(self.defer_sync_pte or cfg.defer_sync_pte)
        self.t = self.machine.call(lib.L.kc_alloc, self.machine.ctx, fmt, cfg.pgsize_bitmap, cfg.ias, cfg.oas,
                                   int(cfg.coherent_walk), 0, defer, self.cookie, C.byref(err))
        if err.value == clib.CRASHED:
            self.machine.dead = lib.crash()
            raise self.machine.dead
        if not self.t:
            raise clib.KernelCrash(f"alloc_io_pgtable_ops() failed ({err.value}) for {cfg}")
        self.machine.owned.add(self.t)
        self.pgd = lib.L.kc_ttbr(self.t, int(self.s2)) & ((1 << 48) - 1) & ~0xF
        self.pgsize_bitmap = lib.L.kc_pgsize_bitmap(self.t)
        bpl = cfg.pg_shift - 3
        if self.s2:
            self.start_level = (2 if cfg.pg_shift == 12 else 3) - lib.L.kc_s2_sl(self.t)
        else:
            va_bits = 64 - lib.L.kc_tsz(self.t, 0) - cfg.pg_shift
            self.start_level = 4 - -(-va_bits // bpl)

    @property
    def granule(self) -> int:
        return 1 << self.cfg.pg_shift

    @property
    def warns(self) -> list[str]:
        return self.machine.warns

    # ---- the C's iommu_flush_ops come back here ----------------------------------------------
    def _op(self, name: str):
        """The driver's callback, None where its iommu_flush_ops leaves it NULL (io_pgtable_tlb_*() skip it)."""
        return getattr(self.tlb, name, None) if self.tlb is not None else None

    def hook_flush_all(self) -> None:
        fn = self._op("tlb_flush_all")
        if fn:
            fn()

    def hook_flush_walk(self, iova: int, size: int, granule: int) -> None:
        fn = self._op("tlb_flush_walk")
        if fn:
            fn(iova, size, granule)

    def hook_add_page(self, token: int, iova: int, granule: int) -> None:
        fn = self._op("tlb_add_page")
        if fn:
            fn(self.gathers.get(token), iova, granule)

    # ---- io_pgtable_ops ----------------------------------------------------------------------
    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        self.hw.tick()
        mapped = C.c_uint64(0)
        ret = self.machine.call(self.L.kc_map_pages, self.t, iova, paddr, pgsize, pgcount, prot, C.byref(mapped))
        return ret, mapped.value

    def unmap_pages(self, iova: int, pgsize: int, pgcount: int, gather) -> int:
        self.hw.tick()
        token = 0
        if gather is not None:
            token = self.lib.next_id()
            self.gathers[token] = gather
        out = C.c_uint64(0)
        at = getattr(gather, "ptr", None) if getattr(gather, "lib", None) is self.lib else None
        try:
            if at:     # the tree's core handed the driver its C gather: io-pgtable writes into it
                self.machine.call(self.L.kc_unmap_pages_at, self.t, iova, pgsize, pgcount, at, token, C.byref(out))
            else:
                self.machine.call(self.L.kc_unmap_pages, self.t, iova, pgsize, pgcount, token, int(queued(gather)),
                                  C.byref(out))
        finally:
            self.gathers.pop(token, None)
        return out.value

    def iova_to_phys(self, iova: int) -> int:
        pa = C.c_uint64(0)
        self.machine.call(self.L.kc_iova_to_phys, self.t, iova, C.byref(pa))
        return pa.value

    def has_iotlb_sync_map(self) -> bool:
        return self.lib.features["ops_iotlb_sync_map"]

    def iotlb_sync_map(self, iova: int, size: int) -> int:
        """ops->iotlb_sync_map(); 0 where the tree has no such op or the format left it NULL."""
        self.hw.tick()
        ret = C.c_long(0)
        r = self.machine.call(self.L.kc_iotlb_sync_map, self.t, iova, size, C.byref(ret))
        return ret.value if r == 0 else 0

    def free(self) -> None:
        t, self.t = self.t, None
        if t:
            self.machine.owned.discard(t)
            self.machine.call(self.L.kc_free, t)
