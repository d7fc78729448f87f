"""The tree's arm-smmu-v3 invalidation path (csrc/driver.c over arm-smmu-v3.c's functions) as a driver model.

`CSmmuV3Driver` is variants/arm_smmu_v3.py's ArmSmmuV3Driver with every TLB and ATC invalidation done by the
C: arm_smmu_iotlb_sync, arm_smmu_flush_iotlb_all, arm_smmu_tlb_inv_context, arm_smmu_tlb_inv_range_domain,
arm_smmu_atc_inv_domain, arm_smmu_atc_inv_master and the io-pgtable flush ops (arm_smmu_tlb_inv_walk,
arm_smmu_tlb_inv_page_nosync into the core's C gather), and every STE: the model decides which STE a master
needs, the C builds it (arm_smmu_make_*_ste) and writes it (arm_smmu_write_ste), the emulator's stream table
receiving each of its 64-bit stores before the command that follows it. Attach, detach, ATS enabling and the
CD stay the model's. The state the C reads is marshalled from the model before each call, and only that: the SMMU's
features (struct arm_smmu_device), each domain's stage, ASID or VMID and page sizes (struct arm_smmu_domain),
and its masters in attach order with ats_enabled and nr_ats_masters. Every command list the C issues
(arm_smmu_cmdq_issue_cmdlist) comes back through one hook and is published into the emulator's queue as the
C built it, 128 bits per command, with the tree's CMD_SYNC where the C asked for one.
"""

import ctypes as C
import weakref

from ..variants.arm_smmu_v3 import ArmSmmuV3Driver
from . import clib
from .cdomain import GatherView

_u64 = C.c_uint64
CMDQ_FN = C.CFUNCTYPE(None, _u64, C.POINTER(_u64), C.c_int, C.POINTER(_u64))
# ARM_SMMU_FEAT_* of arm-smmu-v3.h (6.12)
FEAT_ATS, FEAT_COHERENCY, FEAT_TRANS_S1, FEAT_TRANS_S2, FEAT_RANGE_INV, FEAT_E2H = (
    1 << 5, 1 << 8, 1 << 9, 1 << 10, 1 << 15, 1 << 18)
# kc_drv_op's opcodes (enum kc_drv_opcode in csrc/driver.c)
IOTLB_SYNC, FLUSH_ALL, INV_CONTEXT, INV_WALK, ADD_PAGE, RANGE_DOMAIN, ATC_DOMAIN, ATC_MASTER = range(8)
# kc_ste_write's kinds (enum kc_ste_kind): the arm_smmu_make_*_ste() the C calls
STE_ABORT, STE_BYPASS, STE_CDTABLE, STE_S2 = range(4)
MAX_MASTERS = 16


class _Host(C.Structure):
    _fields_ = [("cmdq", CMDQ_FN)]


class DriverLib:
    """The driver entry points of one loaded library: the command hook and the SMMUs alive on it."""

    def __init__(self, lib: clib.KernelLib):
        L = self.L = lib.L
        self.lib = lib
        if not hasattr(L, "kc_drv_op"):
            raise clib.KernelCrash(f"{lib.path} has no arm-smmu-v3 driver (csrc/driver.c was not built)")
        vp = C.c_void_p
        clib.declare(L, (("kc_smmu_new", [_u64, C.c_uint32, C.c_uint32], vp), ("kc_smmu_free", [vp], None),
                         ("kc_sdom_new", [vp, C.c_int, C.c_uint32, C.c_uint32, _u64], vp), ("kc_sdom_free", [vp], None),
                         ("kc_sdom_masters", [vp, C.c_int, C.POINTER(C.c_uint32), C.POINTER(C.c_uint8), C.c_int],
                          C.c_long),
                         ("kc_drv_op", [vp, C.c_int, _u64, _u64, _u64, _u64, vp], C.c_long),
                         ("kc_sdom_pgtbl", [vp, vp], None), ("kc_pgtbl_ops", [vp], vp),
                         ("kc_ste_write", [vp, vp, C.c_uint32, C.c_int, C.c_int, _u64], C.c_long),
                         ("kc_ste_words", [vp, C.c_uint32], C.POINTER(_u64))))
        self.smmus: "weakref.WeakValueDictionary[int, CSmmuV3Driver]" = weakref.WeakValueDictionary()
        self.error: BaseException | None = None
        self._hooks = _Host(CMDQ_FN(clib.guard(self, self._cmdq)))
        _Host.in_dll(L, "kc_drv_host").__init__(self._hooks.cmdq)

    def _cmdq(self, smmu_id, cmds, n, sync):
        """arm_smmu_cmdq_issue_cmdlist(): the n commands, then the CMD_SYNC, into the emulator's queue."""
        entries = [(cmds[2 * i], cmds[2 * i + 1]) for i in range(n)]
        if sync:
            entries.append((sync[0], sync[1]))
        drv = self.smmus[smmu_id]
        drv.ste_stores()
        drv.hw.cmdq_publish(entries)


def driver_lib(lib: clib.KernelLib) -> DriverLib:
    """The DriverLib of a loaded library (one per library: the hook is its global)."""
    d = getattr(lib, "driver", None)
    if d is None:
        d = lib.driver = DriverLib(lib)
    return d


class _CDomain:
    """The C struct arm_smmu_domain of one model SmmuDomain (freed with it)."""

    def __init__(self, c: DriverLib, smmu_ptr: int, d):
        self.c = c
        self.ptr = c.L.kc_sdom_new(smmu_ptr, d.stage, d.asid, d.vmid, d.pgsize_bitmap)
        if not self.ptr:
            raise MemoryError("struct arm_smmu_domain")

    def __del__(self):
        if getattr(self, "ptr", None):
            self.c.L.kc_sdom_free(self.ptr)
            self.ptr = None


class CSmmuV3Driver(ArmSmmuV3Driver):
    """arm-smmu-v3's invalidation path of the tree, compiled (ArmSmmuV3Driver's interface)."""

    lib_for = staticmethod(lambda: None)       # set by the variant: the build's library (patched or not)

    def __init__(self, hw, core, pgcfg):
        super().__init__(hw, core, pgcfg)
        self.c = driver_lib(self.lib_for())
        self.id = self.c.lib.next_id()
        feats = (FEAT_TRANS_S1 | FEAT_TRANS_S2 | FEAT_RANGE_INV * self.features_range_inv | FEAT_ATS * self.features_ats
                 | FEAT_E2H * self.features_e2h | FEAT_COHERENCY * hw.cfg.coherent)
        self.smmu_ptr = self.c.L.kc_smmu_new(self.id, feats, 0)
        self.c.smmus[self.id] = self

    def __del__(self):
        if getattr(self, "smmu_ptr", None):
            self.c.L.kc_smmu_free(self.smmu_ptr)
            self.smmu_ptr = None

    def domain_alloc_paging(self, dom_id: int, stage: int):
        d = super().domain_alloc_paging(dom_id, stage)
        d.c = _CDomain(self.c, self.smmu_ptr, d)
        t = getattr(d.pgtbl, "t", None)          # the tree's io-pgtable (kc_pgtable): its cfg holds VTCR/VTTBR
        if t:
            self.c.L.kc_sdom_pgtbl(d.c.ptr, d.pgtbl.L.kc_pgtbl_ops(t))
        return d

    # ---- the STE: the model decides which, the tree's C builds and writes it --------------------------------
    _ste_sid = None                               # the stream whose STE the C is writing

    def install_ste_for_dev(self, m) -> None:
        """arm_smmu_install_ste_for_dev() by the tree: the model picks the STE (and writes the stage-1 CD:
        target_ste), the C builds it (arm_smmu_make_abort_ste / _cdtable_ste / _s2_domain_ste) and writes it
        (arm_smmu_write_ste: arm_smmu_write_entry's steps, CFGI_STE + CMD_SYNC after each, PREFETCH_CFG)."""
        self.target_ste(m)
        d = m.domain
        kind = STE_ABORT if d is None else STE_CDTABLE if d.stage == 1 else STE_S2
        self.hw.tick()
        self._ste_sid = m.sid
        self.hw.begin_ste_update(m.sid)
        try:
            r = self.c.L.kc_ste_write(self.smmu_ptr, d.c.ptr if d is not None else None, m.sid, kind,
                                      int(m.ats_enabled), m.cdtab_dma or 0)
            self.ste_stores()
        finally:
            self._ste_sid = None
            self.hw.end_ste_update(m.sid)
        err, self.c.error = self.c.error, None
        if r == clib.CRASHED:
            raise self.c.lib.crash()
        if err is not None:
            raise err
        if r:
            raise ValueError(f"kc_ste_write(sid {m.sid}): no stream table entry or no C io-pgtable for the domain")

    def ste_stores(self) -> None:
        """The C's stores to the STE being written since the last look, into the emulator's stream table, one
        64-bit store per changed qword in qword order (arm_smmu_write_entry's entry_set() order)."""
        sid = self._ste_sid
        if sid is None:
            return
        words = self.c.L.kc_ste_words(self.smmu_ptr, sid)
        cur = self.hw.ste_words(sid)
        for q in range(len(cur)):
            if words[q] != cur[q]:
                self.hw.store_ste(sid, q, words[q])

    def _call(self, d, op: int, iova: int = 0, size: int = 0, granule: int = 0, arg: int = 0, gather=None) -> None:
        """kc_drv_op on d's C domain, its masters marshalled first; raises what a hook raised, or the crash."""
        devs = d.devices
        if len(devs) > MAX_MASTERS:
            raise ValueError(f"more than {MAX_MASTERS} masters on one domain (csrc/driver.c KC_DRV_MASTERS)")
        sids = (C.c_uint32 * max(len(devs), 1))(*[m.sid for m in devs])
        ats = (C.c_uint8 * max(len(devs), 1))(*[int(m.ats_enabled) for m in devs])
        L = self.c.L
        L.kc_sdom_masters(d.c.ptr, len(devs), sids, ats, d.nr_ats_masters)
        g = None
        if gather is not None:
            if not (isinstance(gather, GatherView) and gather.lib is self.c.lib):
                raise TypeError("the tree's arm-smmu-v3 needs the core's C gather (run it under the tree's iommu core)")
            g = gather.ptr
        r = L.kc_drv_op(d.c.ptr, op, iova, size, granule, arg, g)
        err, self.c.error = self.c.error, None
        if r == clib.CRASHED:
            raise self.c.lib.crash()
        if err is not None:
            raise err

    # ---- the model's invalidation entry points, done by the C --------------------------------------
    def iotlb_sync(self, domain, gather) -> None:
        """arm_smmu_iotlb_sync()."""
        self._call(domain.priv, IOTLB_SYNC, gather=gather)

    def flush_iotlb_all(self, domain) -> None:
        """arm_smmu_flush_iotlb_all()."""
        self._call(domain.priv, FLUSH_ALL)

    def tlb_inv_context(self, d) -> None:
        """arm_smmu_tlb_inv_context()."""
        self._call(d, INV_CONTEXT)

    def tlb_inv_range_domain(self, iova: int, size: int, granule: int, leaf: bool, d) -> None:
        """arm_smmu_tlb_inv_range_domain()."""
        self._call(d, RANGE_DOMAIN, iova, size, granule, int(leaf))

    def atc_inv_domain(self, d, iova: int, size: int) -> None:
        """arm_smmu_atc_inv_domain()."""
        self._call(d, ATC_DOMAIN, iova, size)

    def atc_inv_master(self, m) -> None:
        """arm_smmu_atc_inv_master() (m is still on its domain's list: arm_smmu_disable_ats() runs before it
        leaves)."""
        self._call(m.domain, ATC_MASTER, arg=m.domain.devices.index(m))

    def flush_ops(self, d):
        """arm_smmu_flush_ops bound to d: the C's arm_smmu_tlb_inv_context / _walk / _page_nosync."""
        return _CFlushOps(self, d)


class _CFlushOps:
    """arm_smmu_flush_ops of the tree, for one domain (the cookie)."""

    def __init__(self, drv: CSmmuV3Driver, d):
        self.drv, self.d = drv, d
        self.domain = None

    def tlb_flush_all(self) -> None:
        """arm_smmu_tlb_inv_context()."""
        self.drv._call(self.d, INV_CONTEXT)

    def tlb_flush_walk(self, iova: int, size: int, granule: int) -> None:
        """arm_smmu_tlb_inv_walk()."""
        self.drv._call(self.d, INV_WALK, iova, size, granule)

    def tlb_add_page(self, gather, iova: int, granule: int) -> None:
        """arm_smmu_tlb_inv_page_nosync(): the tree's iommu_iotlb_gather_add_page() on the core's C gather."""
        self.drv._call(self.d, ADD_PAGE, iova, 0, granule, gather=gather)
