"""The kernel allocations a program makes fail, in the manner of fault injection's fail_nth (Documentation/
fault-injection/fault-injection.rst): "the n-th allocation of kind K from now on fails", once. Kinds:
"pgtable" (__arm_lpae_alloc_pages() of a table page while mapping), "fq" (iommu_dma_init_fq()'s queue), "invs"
(arm_smmu_invs_alloc() in arm_smmu_invs_merge() or arm_smmu_invs_purge(): seed 002's invalidation array), "iova"
(iommu_dma_alloc_iova(): the IOVA space exhausted, alloc_iova_fast() failing even after flushing the rcaches).
"""


class AllocFaults:
    """The armed countdowns, per kind; an allocation site asks fails(kind) before allocating."""

    def __init__(self):
        self.countdown: dict[str, int] = {}

    def arm(self, kind: str, n: int) -> None:
        """fail_nth(kind, n): allocation n (0: the next) of this kind fails."""
        self.countdown[kind] = n

    def fails(self, kind: str) -> bool:
        """One allocation of `kind` is made now: does it fail?"""
        n = self.countdown.get(kind)
        if n is None:
            return False
        if n:
            self.countdown[kind] = n - 1
            return False
        del self.countdown[kind]
        return True
