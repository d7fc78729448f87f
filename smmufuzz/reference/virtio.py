"""A virtio-iommu device (the host side): a request queue that the guest kicks, host-side mappings that
the device translates through, and the host's own synchronous IOTLB maintenance when it unmaps
(virtio-iommu spec: ATTACH, DETACH, MAP, UNMAP)."""

from dataclasses import dataclass, field

from . import cmdq as C
from .lpae import Leaf
from .ste import Ste

QUEUE_SIZE = 64


@dataclass(eq=False)
class VirtioHostFormat:
    """The device's translation for one domain: the host's mappings (no tables, no walk cache)."""
    dev: "VirtioIommuDevice"
    domain: int
    name = "virtio-host"
    pg_shift = 12

    def _nodes(self):
        return self.dev.mappings.get(self.domain, {})

    def walk(self, mem, ttb, stage, va):
        for start, (end, pa, perms) in self._nodes().items():
            if start <= va <= end:
                return Leaf(start, end - start + 1, 3, pa, perms), []
        return None, []

    def enumerate(self, mem, ttb, stage):
        return [Leaf(s, e - s + 1, 3, pa, perms) for s, (e, pa, perms) in sorted(self._nodes().items())], []

    def enumerate_from(self, *a):
        return []

    def walk_from(self, *a):
        return None

    def is_table_desc(self, desc, lvl):
        return False

    def table_addr(self, desc):
        return 0

    def lvl_shift(self, lvl):
        return 12

    def text(self):
        return f"virtio-iommu domain {self.domain}"


@dataclass
class VirtioIommuDevice:
    """The device behind the guest's virtqueue."""
    smmu: object
    queue: list = field(default_factory=list)
    mappings: dict = field(default_factory=dict)     # domain -> {start: (end, pa, perms)}
    formats: dict = field(default_factory=dict)
    endpoints: dict = field(default_factory=dict)    # sid -> domain

    def add_req(self, req: tuple) -> bool:
        """virtqueue_add_sgs(): False when the queue is full (-ENOSPC)."""
        self.smmu.tick()
        if len(self.queue) >= QUEUE_SIZE:
            return False
        self.queue.append(req)
        return True

    def kick_and_wait(self) -> None:
        """virtqueue_kick() + poll until the device has completed every request."""
        q, self.queue = self.queue, []
        for req in q:
            self._process(req)

    def _fmt(self, domain: int) -> VirtioHostFormat:
        f = self.formats.get(domain)
        if f is None:
            f = self.formats[domain] = VirtioHostFormat(self, domain)
        return f

    def _process(self, req: tuple) -> None:
        smmu = self.smmu
        kind = req[0]
        if kind == "ATTACH":
            _k, domain, sid = req
            self.endpoints[sid] = domain
            smmu.write_ste(sid, Ste("s1", asid=domain + 1, geo=self._fmt(domain)))
            smmu.cmdq_publish([(C.CMD_CFGI_STE | (sid << 32), 1), (C.CMD_SYNC, 0)])
        elif kind == "DETACH":
            _k, domain, sid = req
            if self.endpoints.get(sid) == domain:
                del self.endpoints[sid]
                smmu.write_ste(sid, Ste("abort"))
                smmu.cmdq_publish([(C.CMD_CFGI_STE | (sid << 32), 1), (C.CMD_SYNC, 0)])
                if domain not in self.endpoints.values():
                    # "After all endpoints have been successfully detached from a domain, it ceases to
                    # exist" (virtio spec, DETACH): its mappings go (viommu_unmap_pages relies on it)
                    self.mappings.pop(domain, None)
                    smmu.mem.version += 1
                    smmu.tlbi(C.CMD_TLBI_NH_ASID, asid=domain + 1)
                    smmu.tlb_sync()
        elif kind == "MAP":
            _k, domain, start, end, pa, perms = req
            nodes = self.mappings.setdefault(domain, {})
            if any(s <= end and start <= e for s, (e, _p, _f) in nodes.items()):
                return                                   # overlapping MAP: rejected (VIRTIO_IOMMU_S_INVAL)
            nodes[start] = (end, pa, perms)
            smmu.mem.version += 1
        elif kind == "UNMAP":
            _k, domain, start, end = req
            nodes = self.mappings.get(domain, {})
            gone = [s for s, (e, _p, _f) in nodes.items() if start <= s and e <= end]
            for s in gone:
                del nodes[s]
            smmu.mem.version += 1
            # the host unmaps from its own IOMMU and invalidates it before completing the request
            smmu.tlbi(C.CMD_TLBI_NH_VA, asid=domain + 1, addr=start, end=end + 1)
            smmu.tlb_sync()
