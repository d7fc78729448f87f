"""The caller contract: what callers of the iommu API promise, in one place.

Callers in the kernel (the DMA API in drivers/iommu/dma-iommu.c, VFIO/iommufd, drivers owning an
unmanaged domain) keep to rules that drivers/iommu/iommu.c and its kernel-doc state or assume. A fuzz
program is an arbitrary caller, so each rule here is applied in one of two ways:

- a *skip*: the op is not issued (alike on every variant whose earlier calls returned alike: a rule reads
  the op, the intent those calls built and the driver's limits); the runner returns the reason as the op's
  result and `replay` notes it;
- an *unknown* range: the op is issued, and the oracle promises nothing in the range it touched
  (`DomainSpec.mark_unknown`): whatever the kernel leaves there is allowed, until the range is mapped
  and unmapped again within the contract.

The runner (runner.py) asks `skip()` before issuing an op (and tells `gather_taken()` / `gather_synced()` when a
caller's gather is used and synced), and `map_unknown()` / `unmap_unknown()` / `concurrent_overlap()` after a
map- or unmap-like op returns; DomainSpec (reference/spec.py) only does
the bookkeeping of calls made within the contract.
"""

from ..reference.spec import MAPPED, UNKNOWN, DomainSpec
from .program import NUM_GATHERS, SLEEPING_KINDS, Op

CONTRACT_TAG = " (caller contract)"
DMA_ONLY = "skipped: a DMA(-FQ) domain is driven by the DMA API only" + CONTRACT_TAG
IN_IRQ = "skipped: may sleep (mutex), not callable in interrupt context" + CONTRACT_TAG
OUTSIDE = "skipped: outside the domain aperture or the IOMMU's physical range" + CONTRACT_TAG
UNMAP_HOLE = "skipped: an unmap over a range that is not wholly mapped (a hole, or an unmap not yet synced)" + CONTRACT_TAG
NO_HANDLE = "skipped: dma_unmap of a handle that is not mapped" + CONTRACT_TAG
SHARED_GATHER = "skipped: a gather another context is using (unsynced), shared across CPUs or with an interrupt" + CONTRACT_TAG
EMPTY_SG = "skipped: a scatterlist entry of length 0" + CONTRACT_TAG
LONG_SG = "skipped: a scatterlist entry of 4 GiB or more (struct scatterlist's length is an unsigned int)" + CONTRACT_TAG
NO_RESET = "skipped: the driver has no arm_smmu_device_reset() (not an SMMUv3 driver)" + CONTRACT_TAG
NO_FAULT = "skipped: this variant does not model that allocation failing" + CONTRACT_TAG
RESET_BUSY = "skipped: a probe or resume in an interrupt or while other IOMMU calls are in flight" + CONTRACT_TAG
NO_SVA = "skipped: the driver does not model SVA (iommu_dev_enable_feature(IOMMU_DEV_FEAT_SVA) fails)" + CONTRACT_TAG
NO_SVA_HANDLE = "skipped: iommu_sva_unbind_device() of a handle not bound" + CONTRACT_TAG
MM_RANGE = ("skipped: a CPU page-table change or TLB flush of a range that is empty, not page aligned, beyond "
            "TASK_SIZE (2^48), or a set_ptes() of more than 512 pages" + CONTRACT_TAG)
MM_OVER_LIVE = "skipped: set_ptes() over a PTE that is present or not yet flushed" + CONTRACT_TAG
SVA_KINDS = frozenset({"sva_bind", "sva_unbind", "mm_map", "mm_unmap", "mm_invalidate", "pasid_dma", "pasid_ats_req"})
MM_PAGE = 0x1000
TASK_SIZE = 1 << 48
RAW_API = frozenset({"map", "unmap", "unmap_fast", "sync", "map_sg", "flush_all"})

SKIP_RULES: list = []         # (function, reason), in the order skip() applies them
UNKNOWN_RULES: list = []      # every rule making a range unknown


def _skip_rule(reason: str):
    def reg(fn):
        SKIP_RULES.append((fn, reason))
        return fn
    return reg


def _unknown_rule(fn):
    UNKNOWN_RULES.append(fn)
    return fn


# ---- skips ----------------------------------------------------------------------------------------
@_skip_rule(DMA_ONLY)
def raw_call_on_dma_domain(ex, op: Op, chunks) -> bool:
    """iommu_dma_init_fq(): a DMA-FQ domain's IOVA space belongs to the DMA API; nobody calls iommu_map/unmap on it."""
    return op.kind in RAW_API and (ex.dma_only or op.args[0] in ex.spec.fq)      # DMA-FQ from the start, or switched


@_skip_rule(IN_IRQ)
def sleeping_call_in_interrupt(ex, op: Op, chunks) -> bool:
    """iommu_attach_device()/iommu_detach_device() take group->mutex (might_sleep): never called from an interrupt."""
    return op.ctx >= 2 and op.kind in SLEEPING_KINDS


@_skip_rule(OUTSIDE)
def map_outside_aperture(ex, op: Op, chunks) -> bool:
    """iommu_map(): callers keep to domain->geometry and the OAS (iommu_dma_alloc_iova() allocates below the aperture end)."""
    top, otop = 1 << ex.ias, 1 << ex.oas
    return any(ln and (va + ln > top or pa + ln > otop or pa < ex.pa_min) for va, pa, ln in chunks)


@_skip_rule(OUTSIDE)
def unmap_outside_aperture(ex, op: Op, chunks) -> bool:
    """iommu_unmap(): callers unmap inside domain->geometry too (sun50i/v7s index tables with masked IOVA bits)."""
    if op.kind not in ("unmap", "unmap_fast"):
        return False
    iova, size = op.args[1], op.args[2]
    return bool(size) and iova + size > (1 << ex.ias)


@_skip_rule(UNMAP_HOLE)
def unmap_over_a_hole(ex, op: Op, chunks) -> bool:
    """iommu_unmap() kernel-doc: the range is what earlier iommu_map() calls mapped, with no hole in it."""
    r = unmap_range(ex, op)
    if r is None:
        return False
    dom, lo, hi = r
    if (lo | hi) & (ex.granule - 1) or hi <= lo:
        return False            # __iommu_unmap() refuses it whole (returns 0): kernel semantics, not misuse
    cur = lo
    for e in ex.dspec(dom).overlapping(lo, hi):
        if e.base > cur or e.state not in (MAPPED, UNKNOWN):
            return True
        cur = e.base + e.span
    return cur < hi


@_skip_rule(NO_HANDLE)
def dma_unmap_of_no_mapping(ex, op: Op, chunks) -> bool:
    """iommu_dma_unmap_page(): the handle is one dma_map_page() returned, unmapped once."""
    if op.kind != "dma_unmap":
        return False
    h = op.args[0]
    return h >= len(ex.handles) or ex.handles[h] is None


@_skip_rule(SHARED_GATHER)
def gather_of_another_context(ex, op: Op, chunks) -> bool:
    """iommu_unmap()/__iommu_dma_unmap(): a gather is its caller's on-stack object, never shared across CPUs or with an interrupt."""
    if op.kind not in GATHER_KINDS:
        return False
    owner = ex.gather_owner.get(gather_key(op))
    return owner is not None and owner != op.ctx


GATHER_KINDS = frozenset({"unmap_fast", "sync"})


@_skip_rule(NO_RESET)
def reset_without_a_reset_path(ex, op: Op, chunks) -> bool:
    """arm_smmu_device_reset() is arm-smmu-v3's: other drivers reset their hardware their own way."""
    return op.kind == "reset" and not getattr(ex.os, "has_device_reset", lambda: False)()


@_skip_rule(NO_FAULT)
def fault_the_variant_cannot_take(ex, op: Op, chunks) -> bool:
    """should_fail() (fault-injection's fail_nth): only where the variant models that allocation's failure path."""
    return op.kind == "fail_alloc" and not getattr(ex.os, "alloc_can_fail", lambda _k: False)(op.args[0])


@_skip_rule(NO_SVA)
def sva_without_sva(ex, op: Op, chunks) -> bool:
    """iommu_sva_bind_device() needs the driver's SVA support; a process's mm ops matter only to SVA variants."""
    return op.kind in SVA_KINDS and not getattr(ex.os, "has_sva", lambda: False)()


@_skip_rule(NO_SVA_HANDLE)
def unbind_of_no_handle(ex, op: Op, chunks) -> bool:
    """iommu_sva_unbind_device(handle): the handle is one iommu_sva_bind_device() returned, unbound once per bind."""
    return op.kind == "sva_unbind" and (op.args[0], op.args[1]) not in ex.sva_handles


@_skip_rule(MM_RANGE)
def mm_range_outside(ex, op: Op, chunks) -> bool:
    """set_ptes(), ptep_get_and_clear() and flush_tlb_range() take whole pages below TASK_SIZE (or flush_tlb_mm()'s all)."""
    if op.kind in ("mm_map", "mm_unmap"):
        va, size = op.args[1], op.args[-2] if op.kind == "mm_map" else op.args[2]
        pa = op.args[2] if op.kind == "mm_map" else 0
        return (not size or (va | size | pa) & (MM_PAGE - 1) or va + size > TASK_SIZE or pa + size > 1 << ex.oas
                or (op.kind == "mm_map" and size > 512 * MM_PAGE))
    if op.kind == "mm_invalidate":
        start, end = op.args[1], op.args[2]
        return not ((start, end) == (0, (1 << 64) - 1) or
                    (start < end <= TASK_SIZE and not (start | end) & (MM_PAGE - 1)))
    return False


@_skip_rule(MM_OVER_LIVE)
def mm_map_over_live(ex, op: Op, chunks) -> bool:
    """set_ptes() fills empty PTEs: a present one is changed by ptep_clear_flush() first (break-before-make)."""
    if op.kind != "mm_map":
        return False
    ds = ex.spec.mms.get(op.args[0])
    return ds is not None and bool(ds.overlapping(op.args[1], op.args[1] + op.args[3]))


@_skip_rule(RESET_BUSY)
def reset_under_other_calls(ex, op: Op, chunks) -> bool:
    """arm_smmu_device_reset(): probe, or resume once device links quiesced every master, in process context."""
    return op.kind == "reset" and (op.ctx >= 2 or len(ex.inflight) > 1)     # in flight: this op and another


@_skip_rule(EMPTY_SG)
def map_sg_with_an_empty_entry(ex, op: Op, chunks) -> bool:
    """iommu_map_sg() callers (iommu_dma_map_sg(), iommufd) pass no empty segment (6.12's loop drops a run before one)."""
    # with an empty last entry contiguous with the run before it, 6.12's loop never maps that run (its closing
    # pass re-reads the last entry, which looks contiguous) and returns 0: seen by compiling the tree's loop
    return op.kind == "map_sg" and any(ln == 0 for _pa, ln in op.args[2])


@_skip_rule(LONG_SG)
def map_sg_with_a_4g_entry(ex, op: Op, chunks) -> bool:
    """iommu_map_sg() gets no segment of 4 GiB or more: struct scatterlist's length is an unsigned int."""
    # the tree's C (kc-core, kc-full) sees such a length truncated, the models do not
    return op.kind == "map_sg" and any(ln >> 32 for _pa, ln in op.args[2])


def gather_key(op: Op) -> tuple[int, int]:
    """(domain, gather id) of an unmap_fast or iotlb_sync: the caller's gather (one per domain in a program)."""
    return op.args[0], op.args[-1]


def own_gather(ops, i: int) -> Op:
    """Op i (an unmap_fast or iotlb_sync a generator just put on another context) with a gather of its domain that no
    other context uses in ops, if one is free, so that it is issued, not skipped by gather_of_another_context."""
    op = ops[i]
    if op.kind not in GATHER_KINDS:
        return op
    dom = op.args[0]
    users: dict[int, set] = {}
    for j, o in enumerate(ops):
        if j != i and o.kind in GATHER_KINDS and o.args[0] == dom:
            users.setdefault(o.args[-1], set()).add(o.ctx)
    if users.get(op.args[-1], set()) <= {op.ctx}:
        return op
    free = [g for g in range(NUM_GATHERS) if users.get(g, set()) <= {op.ctx}]
    return Op(op.kind, op.args[:-1] + (free[0],), op.ctx) if free else op


def gather_taken(ex, op: Op) -> None:
    """An unmap_fast or iotlb_sync is issued: its context owns the gather until a sync of it returns
    (gather_of_another_context); the runner calls this for an op skip() let through."""
    if op.kind in GATHER_KINDS:
        ex.gather_owner.setdefault(gather_key(op), op.ctx)


def gather_synced(ex, op: Op) -> None:
    """iommu_iotlb_sync() returned: the gather is empty again (iommu_iotlb_gather_init()), anyone's to take."""
    ex.gather_owner.pop(gather_key(op), None)


def unmap_range(ex, op: Op) -> tuple[int, int, int] | None:
    """(domain, lo, hi) an unmap-like op asks to remove: iommu_unmap(_fast), or a dma_unmap's granule-aligned
    allocation (iommu_dma_unmap_page() unmaps the whole IOVA range it allocated)."""
    if op.kind in ("unmap", "unmap_fast"):
        return op.args[0], op.args[1], op.args[1] + op.args[2]
    if op.kind == "dma_unmap":
        h = op.args[0]
        e = ex.handles[h] if h < len(ex.handles) else None
        if e is None:
            return None
        dom, dma_addr, size = e
        g = ex.granule
        off = dma_addr & (g - 1)
        return dom, dma_addr - off, dma_addr - off + ((size + off + g - 1) & ~(g - 1))
    return None


def skip(ex, op: Op, chunks) -> str | None:
    """The reason the caller contract forbids op (chunks: the (iova, paddr, length) a map-like op writes), or None."""
    for rule, reason in SKIP_RULES:
        if rule(ex, op, chunks):
            return reason
    return None


# ---- unknown ranges --------------------------------------------------------------------------------
@_unknown_rule
def map_over_live(ds: DomainSpec, iova: int, size: int) -> bool:
    """iommu_map() over a live or not yet synced IOVA: arm_lpae_init_pte() WARNs (-EEXIST) or replaces a table."""
    return bool(size) and bool(ds.overlapping(iova, iova + size))


@_unknown_rule
def map_without_access(ds: DomainSpec, prot: int, size: int, ok: bool) -> bool:
    """iommu_map() that succeeded with neither IOMMU_READ nor IOMMU_WRITE (arm_lpae_map_pages() refuses it)."""
    return ok and bool(size) and not prot & 3


@_unknown_rule
def unmap_cuts_a_leaf(ds: DomainSpec, iova: int, size: int) -> bool:
    """iommu_unmap() kernel-doc: it does not split a leaf one map created (__arm_lpae_unmap() refuses to)."""
    hi = iova + size
    return any(e.base < iova or e.base + e.span > hi for e in ds.overlapping(iova, hi))


@_unknown_rule
def unmap_over_unknown(ds: DomainSpec, iova: int, size: int) -> bool:
    """iommu_unmap() over a range a misuse left unknown (e.g. two overlapping viommu_map_pages() nodes): unknown too."""
    return any(e.state == UNKNOWN for e in ds.overlapping(iova, iova + size))


@_unknown_rule
def concurrent_overlap(claims: dict, i: int, r: tuple[int, int, int]) -> set:
    """iommu_map()/iommu_unmap() of overlapping ranges at once from two threads (iommu_dma_alloc_iova() never)."""
    d, lo, hi = r
    return {j for j, (dj, lj, hj) in claims.items() if dj == d and lj < hi and lo < hj}


def map_unknown(ds: DomainSpec, iova: int, size: int, prot: int, ok: bool) -> tuple[int, int] | None:
    """The range a map-like call of [iova, iova+size) leaves unknown; ok: it returned success."""
    if map_over_live(ds, iova, size) or map_without_access(ds, prot, size, ok):
        return iova, iova + size
    return None


def unmap_unknown(ds: DomainSpec, iova: int, size: int, returned: int) -> tuple[int, int] | None:
    """The range an unmap-like call leaves unknown: from iova to where it asked or said it stopped, whichever is
    further (iommu_unmap() kernel-doc: iova + the returned size is where unmapping stopped)."""
    if size and (unmap_cuts_a_leaf(ds, iova, size) or unmap_over_unknown(ds, iova, size)):
        return iova, iova + max(size, returned)
    return None
