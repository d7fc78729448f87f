"""virtio-iommu guest driver (drivers/iommu/virtio-iommu.c): an interval tree of mappings and MAP/UNMAP
requests queued on the virtqueue, kicked only by a sync (or a full queue)."""

from ..reference.virtio import VirtioIommuDevice
from .arm_smmu_v3 import Master, MasterTable
from .gather import add_range
from .io_pgtable_arm import EINVAL, IOMMU_READ, IOMMU_WRITE
from .os_smmuv3 import SmmuV3Os

ENOSPC = 28


class VirtioDomain:
    """struct viommu_domain."""

    def __init__(self, dom_id: int):
        self.id = dom_id
        self.mappings: dict[int, tuple[int, int, str]] = {}     # start -> (last, paddr, flags)
        self.nr_endpoints = 0
        self.pgsize_bitmap = (1 << 12) | (1 << 21) | (1 << 30)
        self.devices: list = []
        self.pgtbl = None


class VirtioIommuDriver(MasterTable):
    """struct viommu_dev and the domain ops."""

    jason = 0

    def __init__(self, hw, core, pgcfg):
        self.hw, self.core = hw, core
        if getattr(hw, "virtio", None) is None:
            hw.virtio = VirtioIommuDevice(hw)
        self.dev = hw.virtio
        self.masters: dict[int, Master] = {}

    def domain_alloc_paging(self, dom_id: int, stage: int) -> VirtioDomain:
        return VirtioDomain(dom_id)

    # ---- requests --------------------------------------------------------------------------------
    def _add_req(self, req) -> int:
        """__viommu_add_req(): on a full queue, sync once and retry."""
        if self.dev.add_req(req):
            return 0
        self.dev.kick_and_wait()
        return 0 if self.dev.add_req(req) else -ENOSPC

    def sync_req(self) -> int:
        """viommu_sync_req(): kick and wait for every queued request."""
        self.dev.kick_and_wait()
        return 0

    def send_req_sync(self, req) -> int:
        ret = self._add_req(req)
        self.sync_req()
        return ret

    # ---- map / unmap -------------------------------------------------------------------------------
    @staticmethod
    def _flags(prot: int) -> str:
        return ("r" if prot & IOMMU_READ else "") + ("w" if prot & IOMMU_WRITE else "")

    def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot):
        """viommu_map_pages(): add to the tree; queue MAP (not kicked) if endpoints are attached."""
        d = domain.priv
        size = pgsize * pgcount
        end = iova + size - 1
        flags = self._flags(prot)
        if not flags:
            return -EINVAL, 0
        self.hw.tick()
        d.mappings[iova] = (end, paddr, flags)
        if d.nr_endpoints:
            ret = self._add_req(("MAP", d.id, iova, end, paddr, flags))
            if ret:
                self._del_mappings(d, iova, end)
                return ret, 0
        return 0, size

    def _del_mappings(self, d: VirtioDomain, iova: int, end: int) -> int:
        """viommu_del_mappings(): whole nodes in ascending order; a node starting before iova stops it."""
        unmapped = 0
        for start in sorted(s for s, (e, _p, _f) in d.mappings.items() if s <= end and e >= iova):
            last = d.mappings[start][0]
            if start < iova:
                break
            unmapped += last - start + 1
            del d.mappings[start]
        return unmapped

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        """viommu_unmap_pages(): unmapped may exceed size (whole nodes); short -> 0 (nodes already gone)."""
        d = domain.priv
        size = pgsize * pgcount
        self.hw.tick()
        unmapped = self._del_mappings(d, iova, iova + size - 1)
        if unmapped < size:
            return 0
        if self.jason:
            add_range(gather, iova, unmapped)
        if not d.nr_endpoints:
            return unmapped
        ret = self._add_req(("UNMAP", d.id, iova, iova + unmapped - 1))
        return 0 if ret else unmapped

    def iotlb_sync(self, domain, gather) -> None:
        """viommu_iotlb_sync()."""
        self.sync_req()

    def iotlb_sync_map(self, domain, iova, size) -> int:
        """viommu_iotlb_sync_map()."""
        if not domain.priv.nr_endpoints:
            return 0
        return self.sync_req()

    def flush_iotlb_all(self, domain) -> None:
        """viommu_flush_iotlb_all()."""
        if domain.priv.nr_endpoints:
            self.sync_req()

    # ---- endpoints -------------------------------------------------------------------------------
    def detach_dev(self, m: Master) -> None:
        """viommu_detach_dev(): DETACH, synchronously."""
        d = m.domain
        if d is None:
            return
        self.send_req_sync(("DETACH", d.id, m.sid))
        d.nr_endpoints -= 1
        d.devices.remove(m)
        m.domain = None

    def attach_dev(self, sid: int, d: VirtioDomain) -> int:
        """viommu_attach_dev(): ATTACH, and replay the tree as MAP requests for the first endpoint."""
        m = self.master(sid)
        self.detach_dev(m)
        self.send_req_sync(("ATTACH", d.id, sid))
        if not d.nr_endpoints:
            for start, (end, pa, flags) in sorted(d.mappings.items()):
                self.send_req_sync(("MAP", d.id, start, end, pa, flags))
        d.nr_endpoints += 1
        d.devices.append(m)
        m.domain = d
        return 0

    def set_ats_supported(self, sid: int, on: bool) -> None:
        """No ATS."""


class VirtioOs(SmmuV3Os):
    driver_cls = VirtioIommuDriver
    CONFIG = {"pg_shift": 12, "stage": 1}
    MAPPING_UNIT = "chunk"      # an unmap removes whole tree nodes: one node per map_pages() call

    def iova_to_phys(self, dom, iova) -> int:
        """viommu_iova_to_phys(): the first node of the mapping tree holding iova, else 0."""
        for start, (last, paddr, _flags) in sorted(self.domain(dom).priv.mappings.items()):
            if start <= iova <= last:
                return paddr + (iova - start)
        return 0
