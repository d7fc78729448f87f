"""Seed 001: DMA-FQ and iommupt's gather_range_pages versions."""

from smmufuzz.tools.cost import fq_table
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.variants.dma_iommu import FQ_SIZE


def test_fq_batches_invalidations_into_flush_alls():
    n = 4 * FQ_SIZE
    for r in fq_table("ABC", n):
        assert not r["finding"], r
        if r["variant"].startswith("pt-fq"):
            # a flush-all each time the ring fills (every FQ_SIZE unmaps, the last one by the timer)
            assert (r["full_flushes"], r["inv_pages"]) == (n // FQ_SIZE, 0), r
        else:
            assert (r["cmds"], r["syncs"], r["full_flushes"]) == (n, n, 0), r


def test_iova_is_not_reused_before_the_flush():
    prog = parse("""config(granule=4K)
iommu_attach_device(d0, sid=0)
dma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)
dma_unmap(handle=0)
dma_map(d0, paddr=0x90000000, size=0x1000, prot=RW)
fq_flush_timeout(d0)
dma_map(d0, paddr=0xa0000000, size=0x1000, prot=RW)
""")
    run = run_program(prog, ["pt-fq:C"]).runs[0]
    assert run.finding is None
    first, second, third = run.returns[1], run.returns[3], run.returns[5]
    assert second != first                 # still queued: a different IOVA
    assert third == first                  # reaped after the timer's flush-all: reusable


def test_strict_unmap_frees_the_iova_at_once():
    prog = parse("""config(granule=4K)
iommu_attach_device(d0, sid=0)
dma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)
dma_unmap(handle=0)
dma_map(d0, paddr=0x90000000, size=0x1000, prot=RW)
""")
    run = run_program(prog, ["pt:B"]).runs[0]
    assert run.finding is None and run.returns[1] == run.returns[3]


def test_iova_reuse_once_no_cache_can_hold_it_is_safe():
    """A false IOVA_REUSE on the correct virtio rules (random programs, issue 15): the domain's last endpoint left,
    so the host destroyed it and viommu_flush_iotlb_all() does nothing; the flush queue's timer then frees the IOVA.
    No TLB or ATC entry can hold the old translation, so the reuse is safe. With a stream still attached (the TLB
    holds it) the flush is still required."""
    text = """config(granule=4K)
iommu_attach_device(d0, sid=0)
iommu_dma_init_fq(d0)
iommu_detach_device(sid=0)
dma_map(d0, paddr=0x0, size=0x5, prot=RW)
dma_unmap(handle=0)
fq_flush_timeout(d0)
dma_map(d0, paddr=0x0, size=0x1000, prot=RW)
"""
    for policy in ("max-cache", "none"):
        assert not run_program(parse(text), ["gather:legacy:virtio", "gather:robin-v2:virtio"], policy).findings
    import tests.broken_variants  # noqa: F401  (test-fq-eager-free frees the IOVA at dma_unmap)
    attached = text.replace("iommu_detach_device(sid=0)\n", "").replace("fq_flush_timeout(d0)\n", "")
    assert [f.kind for f in run_program(parse(attached), ["test-fq-eager-free"]).findings] == ["IOVA_REUSE"]


def test_a_lazy_unmap_still_walkable_is_not_settled_by_an_eviction():
    """Found by the property test: virtio's UNMAP request waits in the queue until the flush queue's flush, so the
    host still maps the IOVA; evicting the TLB entry does not make the unmap complete."""
    prog = parse("""config(granule=4K)
iommu_attach_device(d0, sid=0)
iommu_dma_init_fq(d0)
dma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)
dma_unmap(handle=0)
hw_evict(tlb, n=0)
fq_flush_timeout(d0)
dma_map(d0, paddr=0x90000000, size=0x1000, prot=RW)
""")
    assert not run_program(prog, ["gather:legacy:virtio", "gather:robin-v2:virtio"]).findings
    assert not run_program(prog, ["pt-fq:C"]).findings
