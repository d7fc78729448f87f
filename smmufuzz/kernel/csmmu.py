"""The tree's arm-smmu-v3 invalidation path (csrc/driver.c over arm-smmu-v3.c's functions) as a driver model.

`CSmmuV3Driver` is variants/arm_smmu_v3.py's ArmSmmuV3Driver with every TLB and ATC invalidation done by the
C: arm_smmu_iotlb_sync, arm_smmu_flush_iotlb_all, arm_smmu_tlb_inv_context, arm_smmu_tlb_inv_range_domain,
arm_smmu_atc_inv_domain, arm_smmu_atc_inv_master and the io-pgtable flush ops (arm_smmu_tlb_inv_walk,
arm_smmu_tlb_inv_page_nosync into the core's C gather), and every STE: the model decides which STE a master
needs, the C builds it (arm_smmu_make_*_ste) and writes it (arm_smmu_write_ste), the emulator's stream table
receiving each of its 64-bit stores before the command that follows it. Each domain is finalised by the tree's
arm_smmu_domain_finalise(): the io-pgtable it asks for (coherent_walk, quirks, seed 003's defer_sync_pte) is the
one kc_pgtable builds, and the function the file sets as domain->ops->iotlb_sync_map (seed 003 PATCH 2/2) is what
the core calls. The SSID 0 CD likewise where the tree has the CD writer (arm_smmu_make_s1_cd, arm_smmu_write_cd_entry,
6.10 on). Attach, detach, ATS enabling and the PASIDs' CDs stay the model's. The state the C reads is marshalled from
the model before each call, and only that: the SMMU's features (struct arm_smmu_device), each domain's stage, ASID
or VMID and page sizes (struct arm_smmu_domain), and its masters in attach order with ats_enabled and
nr_ats_masters. Every command list the C issues
(arm_smmu_cmdq_issue_cmdlist) comes back through one hook and is published into the emulator's queue as the
C built it, 128 bits per command, with the tree's CMD_SYNC where the C asked for one.
"""

import ctypes as C
import errno
import weakref
from dataclasses import replace

from ..variants.arm_smmu_v3_sva import ArmSmmuV3SvaDriver, SvaDomain
from . import clib
from .cdomain import GatherView

_u64 = C.c_uint64
CMDQ_FN = C.CFUNCTYPE(None, _u64, C.POINTER(_u64), C.c_int, C.POINTER(_u64))
SYNC_MAP_FN = C.CFUNCTYPE(C.c_int, _u64, _u64, _u64, _u64)
# ARM_SMMU_FEAT_* of arm-smmu-v3.h (6.12)
FEAT_ATS, FEAT_COHERENCY, FEAT_TRANS_S1, FEAT_TRANS_S2, FEAT_RANGE_INV, FEAT_E2H = (
    1 << 5, 1 << 8, 1 << 9, 1 << 10, 1 << 15, 1 << 18)
# kc_drv_op's opcodes (enum kc_drv_opcode in csrc/driver.c)
IOTLB_SYNC, FLUSH_ALL, INV_CONTEXT, INV_WALK, ADD_PAGE, RANGE_DOMAIN, ATC_DOMAIN, ATC_MASTER, RANGE_ASID, INV_ASID, \
    IOTLB_SYNC_MAP = range(11)
# kc_ste_write's kinds (enum kc_ste_kind): the arm_smmu_make_*_ste() the C calls
STE_ABORT, STE_BYPASS, STE_CDTABLE, STE_S2 = range(4)
MAX_MASTERS = 16


class _Host(C.Structure):
    _fields_ = [("cmdq", CMDQ_FN), ("pgtbl_sync_map", SYNC_MAP_FN)]


class DriverLib:
    """The driver entry points of one loaded library: the command hook and the SMMUs alive on it."""

    def __init__(self, lib: clib.KernelLib):
        L = self.L = lib.L
        self.lib = lib
        if not hasattr(L, "kc_drv_op"):
            raise clib.KernelCrash(f"{lib.path} has no arm-smmu-v3 driver (csrc/driver.c was not built)")
        vp = C.c_void_p
        clib.declare(L, (("kc_smmu_new", [_u64, C.c_uint32, C.c_uint32], vp), ("kc_smmu_free", [vp], None),
                         ("kc_sdom_new", [vp, C.c_int, C.c_uint32, C.c_uint32, _u64, _u64, C.c_int,
                                          C.POINTER(C.c_long)], vp),
                         ("kc_sdom_free", [vp], None), ("kc_sdom_cfg", [vp, C.POINTER(_u64)], None),
                         ("kc_drv_features", [], C.c_int),
                         ("kc_sdom_masters", [vp, C.c_int, C.POINTER(C.c_uint32), C.POINTER(C.c_uint8),
                                              C.POINTER(C.c_uint32), C.c_int], C.c_long),
                         ("kc_drv_op", [vp, C.c_int, _u64, _u64, _u64, _u64, vp], C.c_long),
                         ("kc_sdom_pgtbl", [vp, vp], None), ("kc_pgtbl_ops", [vp], vp),
                         ("kc_ste_write", [vp, vp, C.c_uint32, C.c_int, C.c_int, _u64, C.c_int], C.c_long),
                         ("kc_ste_words", [vp, C.c_uint32], C.POINTER(_u64)),
                         ("kc_cd_write", [vp, vp, C.c_uint32, _u64, C.c_int], C.c_long),
                         ("kc_cd_words", [vp, C.c_uint32], C.POINTER(_u64))))
        self.smmus: "weakref.WeakValueDictionary[int, CSmmuV3Driver]" = weakref.WeakValueDictionary()
        self.have_sva_inv = bool(C.c_int.in_dll(L, "kc_drv_have_sva_inv").value)
        self.have_cd_writer = bool(C.c_int.in_dll(L, "kc_drv_have_cd_writer").value)
        self.error: BaseException | None = None
        self.has_iotlb_sync_map = bool(L.kc_drv_features() & 1)
        self._hooks = _Host(CMDQ_FN(clib.guard(self, self._cmdq)),
                            SYNC_MAP_FN(clib.guard(self, self._pgtbl_sync_map, -errno.EIO)))
        _Host.in_dll(L, "kc_drv_host").__init__(self._hooks.cmdq, self._hooks.pgtbl_sync_map)

    def _cmdq(self, smmu_id, cmds, n, sync):
        """arm_smmu_cmdq_issue_cmdlist(): the n commands, then the CMD_SYNC, into the emulator's queue."""
        entries = [(cmds[2 * i], cmds[2 * i + 1]) for i in range(n)]
        if sync:
            entries.append((sync[0], sync[1]))
        drv = self.smmus[smmu_id]
        drv.ste_stores()
        drv.cd_stores()
        drv.hw.cmdq_publish(entries)

    def _pgtbl_sync_map(self, smmu_id, dom_id, iova, size):
        """io_pgtable_ops->iotlb_sync_map() of the domain's table (kc_pgtable's, in the emulator's memory)."""
        return self.smmus[smmu_id].c_domains[dom_id].pgtbl.iotlb_sync_map(iova, size)


def driver_lib(lib: clib.KernelLib) -> DriverLib:
    """The DriverLib of a loaded library (one per library: the hook is its global)."""
    d = getattr(lib, "driver", None)
    if d is None:
        d = lib.driver = DriverLib(lib)
    return d


class _CDomain:
    """The C struct arm_smmu_domain of one model domain, a paging one finalised by the tree (freed with it)."""

    def __init__(self, drv: "CSmmuV3Driver", d, cfg):
        """cfg: the io-pgtable's, for a paging domain (the tree finalises it); None for an SVA domain
        (arm_smmu_sva_domain_alloc(): stage 1 with the mm's ASID, no io-pgtable)."""
        c = self.c = drv.c
        self.id = c.lib.next_id()
        err = C.c_long(0)
        self.ptr = c.L.kc_sdom_new(drv.smmu_ptr, d.stage if cfg else 1, d.asid, getattr(d, "vmid", 0),
                                   cfg.pgsize_bitmap if cfg else d.pgsize_bitmap, self.id, int(cfg is not None),
                                   C.byref(err))
        if err.value == clib.CRASHED:
            raise c.lib.crash()
        if not self.ptr:
            raise clib.KernelCrash(f"arm_smmu_domain_finalise() failed ({err.value}) for stage {d.stage}")
        out = (_u64 * 6)()
        c.L.kc_sdom_cfg(self.ptr, out)
        self.allocs, self.fmt, self.stage = out[0], out[1], out[2]
        self.coherent_walk, self.quirks = bool(out[3]), out[5]
        self.defer_sync_pte = None if out[4] == (1 << 64) - 1 else bool(out[4])

    def __del__(self):
        if getattr(self, "ptr", None):
            self.c.L.kc_sdom_free(self.ptr)
            self.ptr = None


class CSmmuV3Driver(ArmSmmuV3SvaDriver):
    """arm-smmu-v3's invalidation path of the tree, compiled (ArmSmmuV3SvaDriver's interface: SVA's invalidation
    too, where the tree has arm_smmu_tlb_inv_range_asid() and arm_smmu_tlb_inv_asid(); the STE writer, and the SSID
    0 CD's where the tree has arm_smmu_write_cd_entry(); the PASIDs' CDs stay the model's)."""

    lib_for = staticmethod(lambda: None)       # set by the variant: the build's library (patched or not)

    def __init__(self, hw, core, pgcfg):
        super().__init__(hw, core, pgcfg)
        self.c = driver_lib(self.lib_for())
        self.id = self.c.lib.next_id()
        feats = (FEAT_TRANS_S1 | FEAT_TRANS_S2 | FEAT_RANGE_INV * self.features_range_inv | FEAT_ATS * self.features_ats
                 | FEAT_E2H * self.features_e2h | FEAT_COHERENCY * hw.cfg.coherent)
        self.smmu_ptr = self.c.L.kc_smmu_new(self.id, feats, 0)
        self.c.smmus[self.id] = self
        self.c_domains: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
        if self.c.has_iotlb_sync_map:         # the core calls domain->ops->iotlb_sync_map only where it is set
            self.iotlb_sync_map = self._iotlb_sync_map
        self.SVA = self.c.have_sva_inv

    def __del__(self):
        if getattr(self, "smmu_ptr", None):
            self.c.L.kc_smmu_free(self.smmu_ptr)
            self.smmu_ptr = None

    def domain_alloc_paging(self, dom_id: int, stage: int):
        """arm_smmu_domain_finalise() of the tree, then the io-pgtable it asked for: the model's sizes (the
        program's config), the C's coherent_walk, quirks and defer_sync_pte (seed 003 PATCH 2/2 sets it)."""
        d = self.new_domain(dom_id, stage)
        cfg = self.pgtable_cfg(stage)
        d.c = _CDomain(self, d, cfg)
        if d.c.allocs != 1 or d.c.stage != stage:
            raise clib.KernelCrash(f"arm_smmu_domain_finalise() asked for {d.c.allocs} io-pgtables of stage "
                                   f"{d.c.stage}, smmufuzz made one of stage {stage}")
        cfg = replace(cfg, coherent_walk=d.c.coherent_walk, quirks=d.c.quirks,
                      defer_sync_pte=bool(d.c.defer_sync_pte))
        d.pgtbl = self.pgtable_cls(cfg, self.hw, self.flush_ops(d))
        d.pgsize_bitmap = cfg.pgsize_bitmap
        self.c_domains[d.c.id] = d
        t = getattr(d.pgtbl, "t", None)          # the tree's io-pgtable (kc_pgtable): its cfg holds VTCR/VTTBR
        if t:
            self.c.L.kc_sdom_pgtbl(d.c.ptr, d.pgtbl.L.kc_pgtbl_ops(t))
        return d

    # ---- the STE: the model decides which, the tree's C builds and writes it --------------------------------
    _ste_master = None                            # the master whose STE the C is writing

    def install_ste_for_dev(self, m) -> None:
        """arm_smmu_install_ste_for_dev() by the tree: the model picks the STE (and writes the stage-1 CD:
        target_ste), the C builds it (arm_smmu_make_abort_ste / _cdtable_ste / _s2_domain_ste) and writes it
        (arm_smmu_write_ste: arm_smmu_write_entry's steps, CFGI_STE + CMD_SYNC after each, PREFETCH_CFG)."""
        self.target_ste(m)
        d = m.domain
        kind = STE_ABORT if d is None else STE_CDTABLE if d.stage == 1 else STE_S2
        self._entry_write(m, "_ste_master", "kc_ste_write", lambda: self.c.L.kc_ste_write(
            self.smmu_ptr, d.c.ptr if d is not None else None, m.sid, kind, int(m.ats_enabled), m.cdtab_dma or 0,
            self.CD_TABLE_BITS))

    def _entry_write(self, m, writing: str, name: str, call) -> None:
        """`call`, one of the tree's entry writers on m's stream, as one update of the stream's configuration
        (begin_ste_update .. end_ste_update), the attribute `writing` naming m meanwhile so that the C's stores
        reach the emulator before each command it issues and at the end (ste_stores, cd_stores); raises its
        crash, a hook's error, or a ValueError for its nonzero return."""
        self.hw.tick()
        setattr(self, writing, m)
        self.hw.begin_ste_update(m.sid)
        try:
            r = call()
            self.ste_stores()
            self.cd_stores()
        finally:
            setattr(self, writing, None)
            self.hw.end_ste_update(m.sid)
        err, self.c.error = self.c.error, None
        if r == clib.CRASHED:
            raise self.c.lib.crash()
        if err is not None:
            raise err
        if r:
            raise ValueError(f"{name}(sid {m.sid}): no stream table entry or no C io-pgtable for the domain")

    _cd_master = None                             # the master whose SSID 0 CD the C is writing

    def write_cd_entry(self, m, target) -> None:
        """arm_smmu_write_cd_entry() by the tree, where it has the CD writer and the domain the tree's
        io-pgtable (its TCR and TTBR): the model asks for the stage-1 domain's CD or none (`target` all zero:
        arm_smmu_clear_cd()), the C builds it (arm_smmu_make_s1_cd) and writes it, the emulator's CD receiving
        each 64-bit store before the CFGI_CD that follows it. Otherwise the model's writer."""
        d = m.domain if any(target) else None
        if not self.c.have_cd_writer or (d is not None and not getattr(d.pgtbl, "t", None)):
            return super().write_cd_entry(m, target)
        view, mem = self.c.L.kc_cd_words(self.smmu_ptr, m.sid), self.hw.cd_words(m.cdtab_dma)
        for q, v in enumerate(mem):          # the C's view of the CD is the memory (the model may have written it)
            view[q] = v
        self._entry_write(m, "_cd_master", "kc_cd_write", lambda: self.c.L.kc_cd_write(
            self.smmu_ptr, d.c.ptr if d is not None else None, m.sid, m.cdtab_dma, self.CD_TABLE_BITS))

    def cd_stores(self) -> None:
        """The C's stores to the CD being written since the last look, into the emulator's memory, one 64-bit
        store per changed qword in qword order (arm_smmu_write_entry's entry_set() order)."""
        m = self._cd_master
        if m is None:
            return
        words = self.c.L.kc_cd_words(self.smmu_ptr, m.sid)
        cur = self.hw.cd_words(m.cdtab_dma)
        for q in range(len(cur)):
            if words[q] != cur[q]:
                self.hw.store_cd(m.cdtab_dma, q, words[q])

    def ste_stores(self) -> None:
        """The C's stores to the STE being written since the last look, into the emulator's stream table, one
        64-bit store per changed qword in qword order (arm_smmu_write_entry's entry_set() order)."""
        if self._ste_master is None:
            return
        sid = self._ste_master.sid
        words = self.c.L.kc_ste_words(self.smmu_ptr, sid)
        cur = self.hw.ste_words(sid)
        for q in range(len(cur)):
            if words[q] != cur[q]:
                self.hw.store_ste(sid, q, words[q])

    def _call(self, d, op: int, iova: int = 0, size: int = 0, granule: int = 0, arg: int = 0, gather=None) -> int:
        """kc_drv_op on d's C domain, its masters marshalled first; what the C returned. Raises what a hook
        raised, or the crash."""
        if isinstance(d, SvaDomain):         # (master, PASID) pairs; nr_ats_masters: those with ATS now
            if getattr(d, "c", None) is None:
                d.c = _CDomain(self, d, None)
            devs = [m for m, _ssid in d.devices]
            ssids = (C.c_uint32 * max(len(devs), 1))(*[ssid for _m, ssid in d.devices])
            nr_ats = sum(m.ats_enabled for m in devs)
        else:
            devs, ssids, nr_ats = d.devices, None, d.nr_ats_masters
        if len(devs) > MAX_MASTERS:
            raise ValueError(f"more than {MAX_MASTERS} masters on one domain (csrc/driver.c KC_DRV_MASTERS)")
        sids = (C.c_uint32 * max(len(devs), 1))(*[m.sid for m in devs])
        ats = (C.c_uint8 * max(len(devs), 1))(*[int(m.ats_enabled) for m in devs])
        L = self.c.L
        L.kc_sdom_masters(d.c.ptr, len(devs), sids, ats, ssids, nr_ats)
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
        return r

    # ---- the model's invalidation entry points, done by the C --------------------------------------
    def iotlb_sync(self, domain, gather) -> None:
        """arm_smmu_iotlb_sync()."""
        self._call(domain.priv, IOTLB_SYNC, gather=gather)

    def flush_iotlb_all(self, domain) -> None:
        """arm_smmu_flush_iotlb_all()."""
        self._call(domain.priv, FLUSH_ALL)

    def _iotlb_sync_map(self, domain, iova: int, size: int) -> int:
        """The tree's domain->ops->iotlb_sync_map (seed 003 PATCH 2/2's arm_smmu_iotlb_sync_map())."""
        return self._call(domain.priv, IOTLB_SYNC_MAP, iova, size)

    def tlb_inv_context(self, d) -> None:
        """arm_smmu_tlb_inv_context()."""
        self._call(d, INV_CONTEXT)

    def tlb_inv_range_domain(self, iova: int, size: int, granule: int, leaf: bool, d) -> None:
        """arm_smmu_tlb_inv_range_domain()."""
        self._call(d, RANGE_DOMAIN, iova, size, granule, int(leaf))

    def atc_inv_domain(self, d, iova: int, size: int) -> None:
        """arm_smmu_atc_inv_domain()."""
        self._call(d, ATC_DOMAIN, iova, size)

    def atc_inv_master(self, m, ssid: int = 0, listed_on=None) -> None:
        """arm_smmu_atc_inv_master(master, ssid), marshalled through a domain whose list holds m (its own, or
        `listed_on` mid-detach: arm_smmu_attach_commit() flushes before the master leaves the old list)."""
        d = listed_on if listed_on is not None else m.domain
        self._call(d, ATC_MASTER, iova=ssid, arg=d.devices.index(m))

    # ---- SVA's invalidation (arm-smmu-v3-sva.c calls these; the notifier itself is the model's) -----------
    def tlb_inv_asid(self, d) -> None:
        """arm_smmu_tlb_inv_asid(smmu, d->cd.asid)."""
        self._call(d, INV_ASID, arg=d.asid)

    def tlb_inv_range_asid(self, iova: int, size: int, asid: int, granule: int, leaf: bool, d) -> None:
        """arm_smmu_tlb_inv_range_asid()."""
        self._call(d, RANGE_ASID, iova, size, granule, (asid & 0xFFFFFFFF) | int(leaf) << 32)

    def sva_atc_inv_domain(self, d, iova: int, size: int) -> None:
        """arm_smmu_atc_inv_domain() on the SVA domain (its masters with their PASIDs)."""
        self._call(d, ATC_DOMAIN, iova, size)

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
