"""Planted (issue 18 item 2): with RIL, one range TLBI per granule covering a single leaf page, as if the
TTL hint made the SMMU drop the whole block. Correct on a TLB that caches whole blocks; an SMMU that
splinters a block keeps the rest of it (__arm_smmu_tlb_inv_range() covers every page: NUM/SCALE)."""

from .arm_smmu_v3 import ArmSmmuV3Driver
from .os_smmuv3 import SmmuV3Os


class RilBlockOnePageDriver(ArmSmmuV3Driver):
    """__arm_smmu_tlb_inv_range() whose RIL leaf commands name one page of each granule (NUM=SCALE=0)."""

    def batch_add_range(self, batch, cmd, iova, size, granule, tg):
        if not (self.features_range_inv and cmd.leaf):
            return super().batch_add_range(batch, cmd, iova, size, granule, tg)
        cmd.tg = (tg - 10) // 2
        cmd.ttl = 4 - ((granule.bit_length() - 1 - 3) // (tg - 3))
        cmd.num = cmd.scale = 0
        end = iova + size
        while iova < end:
            self.hw.tick()
            cmd.addr = iova
            batch.add(cmd)
            iova += granule


class RilBlockOnePageOs(SmmuV3Os):
    """smmuv3 with leaf range invalidations of one page per granule (planted, issue 18 item 2)."""

    driver_cls = RilBlockOnePageDriver
