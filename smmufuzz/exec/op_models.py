"""How each op kind is issued to a variant and what the call promises: one function per kind of the op table
(ops.py), registered in MODELS.

A model calls the variant's kernel API for the op (the iommu core and DMA API entry points: iommu_map(),
iommu_unmap_fast() + iommu_iotlb_sync(), iommu_attach_device(), dma_map_single()...) or the emulator for a
hardware event, and updates the OS intent (reference/spec.py) by the call's documented contract, never from
the variant's data structures. It receives the runner's per-variant executor `ex` (runner._Exec: the variant
`ex.os`, the SMMU `ex.smmu`, the intent `ex.spec`), the op's index and the op; it returns the API's
return value, or Stop when the op is judged on the spot (nothing after it runs); models of calls that can be
preempted (the scheduler's tasks) are generators.
"""

from dataclasses import dataclass

from ..reference.handover import leave_foreign_entries
from ..reference.oracle import IOVA_REUSE, WRONG_PA, Violation, check_translation
from ..reference.process_mm import PAGE_SIZE, ProcessMm
from ..reference.spec import MAPPED, PENDING, DomainSpec
from ..prog import contract
from . import inflight


@dataclass
class Stop:
    """The op ends here with this return value and verdict (e.g. DMA that reached a stale translation)."""
    ret: object
    violation: Violation | None


def iommu_map(ex, i, op):
    """iommu_map(): the leaf extents iommu_pgsize() splits it into, once it returned 0."""
    a = op.args
    dom, iova, pa, size, prot = a
    ret = ex.os.map(dom, iova, pa, size, prot)
    ds = ex.dspec(dom)
    r = contract.map_unknown(ds, iova, size, prot, ret == 0)
    if r:
        ds.mark_unknown(*r, i)
    elif ret == 0:
        ds.map(iova, pa, size, prot, i)
    return ret


def iommu_unmap(ex, i, op):
    """iommu_unmap(): what it returned is gone when it returns (it syncs its own gather)."""
    a = op.args
    dom, iova, size = a
    ret = yield from ex._os(lambda: ex.os.unmap_task(*a), lambda: ex.os.unmap(*a))
    ex._spec_unmap(dom, iova, size, ret, i, None)
    return ret


def iommu_unmap_fast(ex, i, op):
    """iommu_unmap_fast(): what it returned is pending in the caller's gather until iommu_iotlb_sync()."""
    a = op.args
    dom, iova, size, gid = a
    ret = ex.os.unmap_fast(dom, iova, size, gid)
    gone = ex._spec_unmap(dom, iova, size, ret, i, PENDING)
    ex.spec.gathers.setdefault((dom, gid), []).extend(gone)
    return ret


def iommu_iotlb_sync(ex, i, op):
    """iommu_iotlb_sync(): the gather's pending extents are promised gone."""
    a = op.args
    dom, gid = a
    yield from ex._os(lambda: ex.os.iotlb_sync_task(*a), lambda: ex.os.iotlb_sync(*a))
    ex.dspec(dom).settle(ex.spec.gathers.pop((dom, gid), []), i)
    contract.gather_synced(ex, op)
    return None


def iommu_map_sg(ex, i, op):
    """iommu_map_sg(): the merged chunks, all or nothing."""
    a = op.args
    dom, iova, sg, prot = a
    ret = ex.os.map_sg(dom, iova, list(sg), prot)
    ex._spec_map_sg(dom, iova, sg, prot, i, ok=ret >= 0)
    return ret


def iommu_flush_iotlb_all(ex, i, op):
    """iommu_flush_iotlb_all(): what was pending when it started is promised gone (if the domain has the op)."""
    a = op.args
    (dom,) = a
    before = ex.dspec(dom).pending()     # an unmap that lands while the flush runs may come after
    # its TLBI: not promised by it
    yield from ex._os(lambda: ex.os.flush_iotlb_all_task(dom), lambda: ex.os.flush_iotlb_all(dom))
    if ex.os.has_flush_iotlb_all(dom):   # without domain->ops->flush_iotlb_all nothing is promised
        ex.dspec(dom).settle(before, i)
    return None


def iommu_attach_device(ex, i, op):
    """iommu_attach_device(), under the group mutex: the stream translates with the domain from then on, once it
    returned 0 (a failed attach leaves the group on its domain: the core re-attaches it)."""
    a = op.args
    dom, sid = a
    ex.dspec(dom)
    yield from ex._group_lock(sid, True)
    ret = yield from ex._os(lambda: ex.os.attach_task(sid, dom), lambda: ex.os.attach(sid, dom))
    if not ret:
        ex.spec.attached[sid] = dom
    yield from ex._group_lock(sid, False)
    return ret


def iommu_detach_device(ex, i, op):
    """iommu_detach_device() (a blocking domain): nothing is promised reachable for the stream."""
    a = op.args
    (sid,) = a
    yield from ex._group_lock(sid, True)
    yield from ex._os(lambda: ex.os.detach_task(sid), lambda: ex.os.detach(sid))
    ex.spec.attached.pop(sid, None)
    yield from ex._group_lock(sid, False)
    return None


def pci_ats(ex, i, op):
    """pci_enable_ats()/pci_disable_ats() through the driver, under the group mutex."""
    a = op.args
    sid, on = a
    yield from ex._group_lock(sid, True)
    yield from ex._os(lambda: ex.os.set_ats_task(sid, on), lambda: ex.os.set_ats(sid, on))
    ex.spec.ats[sid] = on
    yield from ex._group_lock(sid, False)
    return None


def hw_fill(ex, i, op):
    """The SMMU translates for the device (a speculative fill of its caches)."""
    a = op.args
    ex.smmu.translate(a[0], a[1])
    return None


def dev_dma(ex, i, op):
    """A device access: every translation the SMMU may use for it is judged now."""
    a = op.args
    sid, iova, write = a
    outs = ex.smmu.translate(sid, iova)
    if not (ex.concurrent and inflight.unstable(ex, i, sid)):
        v = ex._check_dma(sid, iova, bool(write), outs)
        if v:
            return Stop(None, v)
    return None


def dma_map(ex, i, op):
    """dma_map_single() on an IOMMU_DOMAIN_DMA(_FQ) domain: the IOVA the allocator returned maps the buffer;
    handing out an IOVA still waiting in the flush queue is IOVA_REUSE."""
    a = op.args
    dom, pa, size, prot = a
    spec = ex.spec
    ds = ex.dspec(dom)
    ret = ex.os.dma_map(dom, pa, size, prot)
    ex.handles.append((dom, ret, size) if ret >= 0 else None)
    tried = ex.os.dma_tried(dom) if ret < 0 else None
    if tried:                            # iommu_map() failed over a live range it may have replaced
        r = contract.map_unknown(ds, *tried, prot, False)
        if r:
            ds.mark_unknown(*r, i)
    if ret >= 0:
        g = ex.granule
        off = pa & (g - 1)
        iova, length = ret - off, (size + off + g - 1) & ~(g - 1)
        for _seq, exts, uop in spec.fq_pending.get(dom, ()):
            if any(e.base < iova + length and iova < e.base + e.span for e in exts):
                return Stop(ret, Violation(IOVA_REUSE, f"dma_map returned iova {ret:#x}, but "
                                           f"[{iova:#x}, {iova + length:#x}) is still in the flush queue "
                                           f"(dma_unmap at op {uop}) and no flush-all has completed since"))
        r = contract.map_unknown(ds, iova, length, prot, True)
        if r:
            ds.mark_unknown(*r, i)
        else:
            ds.map(iova, pa - off, length, prot, i)
    return ret


def dma_unmap(ex, i, op):
    """dma_unmap_single(): gone on return (strict), or queued until the flush queue's flush-all (DMA-FQ)."""
    a = op.args
    (h,) = a
    entry = ex.handles[h]                # a live handle: contract.dma_unmap_of_no_mapping
    ex.handles[h] = None
    dom, dma_addr, size = entry
    ret = ex.os.dma_unmap(dom, dma_addr, size)
    g = ex.granule
    off = dma_addr & (g - 1)
    iova, length = dma_addr - off, (size + off + g - 1) & ~(g - 1)
    if dom in ex.spec.fq:
        gone = ex._spec_unmap(dom, iova, length, ret, i, PENDING)
        ex.spec.fq_pending.setdefault(dom, []).append((ex.smmu.seq, gone, i))
    else:
        ex._spec_unmap(dom, iova, length, ret, i, None)
    return ret


def fq_flush_timeout(ex, i, op):
    """fq_flush_timeout(): the flush queue's timer fires."""
    a = op.args
    ex.os.fq_timeout(a[0])
    return None


def iommu_dma_init_fq(ex, i, op):
    """iommu_dma_init_fq(): the domain becomes IOMMU_DOMAIN_DMA_FQ if the driver can defer flushes (the
    variant decides, as iommu_dma_init_domain() does with IOMMU_CAP_DEFERRED_FLUSH) and the queue could be
    allocated (else it stays strict and the call returns -ENOMEM)."""
    a = op.args
    r = ex.os.enable_fq(a[0])
    if r is False:
        return Stop("strict: the driver lacks IOMMU_CAP_DEFERRED_FLUSH", ex._judge(i))
    if r is not True:
        return r
    ex.spec.fq.add(a[0])
    return None


def ats_translate(ex, i, op):
    """An ATS Translation Request from the endpoint (its answer lands in the device's ATC)."""
    a = op.args
    ex.smmu.ats_translate(a[0], a[1])
    return None


def hw_evict(ex, i, op):
    """The SMMU drops a cached entry (any cache may, at any time)."""
    a = op.args
    ex.smmu.evict(a[0], a[1])
    return None


def hw_writeback(ex, i, op):
    """A dirty CPU cache line reaches memory on its own (non-coherent walks)."""
    a = op.args
    ex.smmu.writeback(None if a[0] < 0 else a[0])
    return None


def iommu_iova_to_phys(ex, i, op):
    """iommu_iova_to_phys(): what the page table holds for the IOVA (compared between variants; the
    promise is the mapping's PA where the intent has one settled)."""
    dom, iova = op.args
    ret = ex.os.iova_to_phys(dom, iova)
    ds = ex.dspec(dom)
    for e in ds.overlapping(iova, iova + 1):
        want = e.pa + iova - e.base
        if e.state == MAPPED and e.perms and ret != want:      # a prot=NONE map writes no leaf
            return Stop(ret, Violation(WRONG_PA, f"iommu_iova_to_phys(d{dom}, {iova:#x}) returned {ret:#x}, but "
                                       f"iova {iova:#x} is mapped to {want:#x} (op {e.op})"))
    return ret


def arm_smmu_device_reset(ex, i, op):
    """Another owner drove the SMMU (a kexec, a hibernation restore) and left its entries cached; this
    kernel's probe or resume runs arm_smmu_device_reset(). Nothing new is promised: the intent stands."""
    leave_foreign_entries(ex.smmu)
    ex.os.device_reset()
    return None


def fail_nth(ex, i, op):
    """Fault injection: the n-th allocation of the kind from now on fails (reference/alloc_faults.py)."""
    ex.smmu.mem.faults.arm(*op.args)
    return None


def process_mm(ex, mm_id: int) -> ProcessMm:
    """The mm_struct of process mm_id (created on first use) and its intent: the PTEs it holds."""
    mm = ex.mms.get(mm_id)
    if mm is None:
        mm = ex.mms[mm_id] = ProcessMm(ex.smmu.mem)
        ex.spec.mms[mm_id] = DomainSpec(PAGE_SIZE, mm.geo.ias, ex.oas, 1)
    return mm


def iommu_sva_bind_device(ex, i, op):
    """iommu_sva_bind_device(): once it returned a PASID, DMA with that PASID translates by the process page table."""
    sid, mm_id = op.args
    ret = ex.os.sva_bind(sid, mm_id, process_mm(ex, mm_id))
    if ret > 0:
        ex.spec.bound[(sid, ret)] = mm_id
        pasid, users = ex.sva_handles.get((sid, mm_id), (ret, 0))
        ex.sva_handles[(sid, mm_id)] = (ret, users + 1)
    return ret


def iommu_sva_unbind_device(ex, i, op):
    """iommu_sva_unbind_device(): when the handle's last user unbinds, nothing is translated with the PASID."""
    sid, mm_id = op.args
    ex.os.sva_unbind(sid, mm_id)
    pasid, users = ex.sva_handles.pop((sid, mm_id))      # a live handle: contract.unbind_of_no_handle
    if users > 1:
        ex.sva_handles[(sid, mm_id)] = (pasid, users - 1)
    else:
        ex.spec.bound.pop((sid, pasid), None)
    return None


def set_ptes(ex, i, op):
    """The CPU maps pages of the process (a fault, a page migration's new PTEs): present to bound PASIDs at once."""
    mm_id, va, pa, size, prot = op.args
    mm = process_mm(ex, mm_id)
    for off in range(0, size, PAGE_SIZE):
        mm.set_pte(va + off, pa + off, prot)
    ex.spec.mms[mm_id].map(va, pa, size, prot, i)
    return None


def ptep_get_and_clear(ex, i, op):
    """The CPU clears PTEs of the process (munmap, a migration's unmap): a device may use them until the TLB flush
    of the range calls the mm's notifier."""
    mm_id, va, size = op.args
    mm = process_mm(ex, mm_id)
    ds = ex.spec.mms[mm_id]
    for e in ds.overlapping(va, va + size):
        if e.state == MAPPED:
            mm.clear_pte(e.base)
    ds.unmap(va, size, size, i, PENDING)
    return None


def arm_smmu_mm_arch_invalidate_secondary_tlbs(ex, i, op):
    """The mm's notifier after a CPU TLB flush of [start, end): no cleared PTE in the range is visible to a device
    when it returns; the table pages unlinked there are freed after it (tlb_finish_mmu())."""
    mm_id, start, end = op.args
    mm = process_mm(ex, mm_id)
    ex.smmu.mem.wmb()       # the CPU TLB flush begins with dsb(ishst) (arm64 __flush_tlb_range_nosync(),
    #                         __flush_tlb_page_nosync()): the cleared PTEs are visible before its TLBIs and the notifier
    ex.os.mm_invalidate(mm_id, start, end)
    ds = ex.spec.mms[mm_id]
    ds.settle([e for e in ds.overlapping(start, end) if start <= e.base and e.base + e.span <= end], i)
    mm.flushed(start, end)
    return None


def dev_dma_pasid(ex, i, op):
    """A device access with a PASID: every translation the SMMU may use for it is judged against the bound mm."""
    sid, pasid, iova, write = op.args
    outs = ex.smmu.translate(sid, iova, ssid=pasid)
    mm_id = ex.spec.bound.get((sid, pasid))
    ds = ex.spec.mms.get(mm_id) if mm_id is not None else None
    page = iova & ~(PAGE_SIZE - 1)
    for o in outs:
        if ("w" if write else "r") not in o.perms:
            continue
        v = check_translation(ds, page, PAGE_SIZE, o.pa & ~(PAGE_SIZE - 1), o.perms,
                              f"sid {sid} PASID {pasid} DMA {'write' if write else 'read'} via {o.source}", o.seq,
                              ex.smmu.cmd_log)
        if v:
            return Stop(None, v)
    return None


def ats_translate_pasid(ex, i, op):
    """An ATS Translation Request with a PASID (its answer lands in the device's ATC, tagged with the PASID)."""
    sid, pasid, iova = op.args
    ex.smmu.ats_translate(sid, iova, ssid=pasid)
    return None


MODELS = {
    "map": iommu_map, "unmap": iommu_unmap, "unmap_fast": iommu_unmap_fast, "sync": iommu_iotlb_sync,
    "map_sg": iommu_map_sg, "flush_all": iommu_flush_iotlb_all, "attach": iommu_attach_device,
    "detach": iommu_detach_device, "ats": pci_ats, "fill": hw_fill, "dma": dev_dma, "dma_map": dma_map,
    "dma_unmap": dma_unmap, "fq_timeout": fq_flush_timeout, "dma_enable_fq": iommu_dma_init_fq,
    "ats_req": ats_translate, "evict": hw_evict, "writeback": hw_writeback, "iova_to_phys": iommu_iova_to_phys,
    "reset": arm_smmu_device_reset, "fail_alloc": fail_nth,
    "sva_bind": iommu_sva_bind_device, "sva_unbind": iommu_sva_unbind_device, "mm_map": set_ptes,
    "mm_unmap": ptep_get_and_clear, "mm_invalidate": arm_smmu_mm_arch_invalidate_secondary_tlbs,
    "pasid_dma": dev_dma_pasid, "pasid_ats_req": ats_translate_pasid,
}
