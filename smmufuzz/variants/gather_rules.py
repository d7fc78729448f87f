"""Seed 000: the core's gather rules. 90c5def10bea ("iommu: Do not call drivers for empty gathers") made
iommu_iotlb_sync() skip the driver on an empty gather, and every driver that never fills its gather
stopped invalidating; Jason Gunthorpe (drivers and io-pgtable fill the gather) and Robin Murphy (the
core fills an empty gather after a successful unmap chunk) proposed competing fixes."""

from dataclasses import dataclass

from .core import IommuCore
from .gather import add_range, add_range_pgsize
from .io_pgtable_arm import ArmLpaeIoPgtable


class LegacyCore(IommuCore):
    """Before 90c5def10bea: call the driver's iotlb_sync whenever the op exists; no core fill."""

    def sync_skips_gather(self, g) -> bool:
        return False

    def fill_after_unmap_chunk(self, g, iova, size, unmapped_page) -> None:
        pass


class SkipEmptyCore(IommuCore):
    """90c5def10bea alone (also the core of both of Jason's versions): skip unless start < end."""

    def fill_after_unmap_chunk(self, g, iova, size, unmapped_page) -> None:
        pass


class RobinDraftCore(IommuCore):
    """Robin's seed-000 draft: `if (end <= start) add_range(iova, unmapped_page)` after a non-zero chunk."""

    def fill_after_unmap_chunk(self, g, iova, size, unmapped_page) -> None:
        if g.end <= g.start:
            add_range(g, iova, unmapped_page)


class JasonV1Pgtable(ArmLpaeIoPgtable):
    """Jason v1 in io-pgtable-arm: add_range(gather, iova, i * size) before the tlb_add_page loop."""

    def _gather_unmapped(self, gather, iova, n, size) -> None:
        add_range(gather, iova, n * size)
        super()._gather_unmapped(gather, iova, n, size)


class JasonV2Pgtable(ArmLpaeIoPgtable):
    """Jason v2 in io-pgtable-arm: the driver's tlb_add_range if it has one, else add_range; then the
    (possibly absent) per-page tlb_add_page loop."""

    def _gather_unmapped(self, gather, iova, n, size) -> None:
        fn = getattr(self.tlb, "tlb_add_range", None)
        if fn is not None:
            fn(gather, iova, n * size, size)
        else:
            add_range(gather, iova, n * size)
        super()._gather_unmapped(gather, iova, n, size)


def smmuv3_jason_v2_flush_ops(ops) -> None:
    """Jason v2 in arm-smmu-v3: tlb_add_page replaced by tlb_add_range ->
    iommu_iotlb_gather_add_range_pgsize()."""
    ops.tlb_add_page = None
    ops.tlb_add_range = lambda g, iova, size, pgsize: add_range_pgsize(ops.drv.core, ops.domain, g, iova, size,
                                                                       pgsize)


@dataclass(frozen=True)
class Rule:
    name: str
    core: type
    pgtable_mixin: type | None      # what the rule changes in io-pgtable-arm (LPAE drivers)
    summary: str


RULES = {
    "legacy": Rule("legacy", LegacyCore, None, LegacyCore.__doc__),
    "skip-empty": Rule("skip-empty", SkipEmptyCore, None, SkipEmptyCore.__doc__),
    "jason-v1": Rule("jason-v1", SkipEmptyCore, JasonV1Pgtable, JasonV1Pgtable.__doc__),
    "jason-v2": Rule("jason-v2", SkipEmptyCore, JasonV2Pgtable, JasonV2Pgtable.__doc__),
    "robin-draft": Rule("robin-draft", RobinDraftCore, None, RobinDraftCore.__doc__),
    "robin-v2": Rule("robin-v2", IommuCore, None, "Robin's applied v2 (mainline): fill (iova, size) if start >= end."),
}


def gather_variant(rule: Rule, os_cls: type, driver_name: str) -> type:
    """The variant class for (rule, driver): the rule's core, and its io-pgtable and driver changes."""
    drv = os_cls.driver_cls
    attrs = {}
    if rule.pgtable_mixin is not None and issubclass(getattr(drv, "pgtable_cls", object), ArmLpaeIoPgtable):
        pgt = type(f"{rule.pgtable_mixin.__name__}_{drv.pgtable_cls.__name__}",
                   (rule.pgtable_mixin, drv.pgtable_cls), {})
        attrs["pgtable_cls"] = pgt
    patch = DRIVER_PATCHES.get((rule.name, driver_name))
    if patch is not None:
        attrs.update(patch)
    if rule.name in ("jason-v1", "jason-v2"):
        attrs["jason"] = 1 if rule.name == "jason-v1" else 2     # the driver-side hunks
    if attrs:
        drv = type(f"{drv.__name__}_{rule.name.replace('-', '_')}", (drv,), attrs)
    return type(f"{os_cls.__name__}_{rule.name.replace('-', '_')}", (os_cls,),
                {"core_cls": rule.core, "driver_cls": drv,
                 "__doc__": f"{rule.name} core rule with the {driver_name} driver"})


def _smmuv3_v2_domain_alloc(self, dom_id, stage):
    d = type(self).__mro__[1].domain_alloc_paging(self, dom_id, stage)
    smmuv3_jason_v2_flush_ops(d.pgtbl.tlb)
    return d


# driver-side hunks of a rule, keyed (rule, driver)
DRIVER_PATCHES: dict[tuple[str, str], dict] = {
    ("jason-v2", "arm-smmu-v3"): {"domain_alloc_paging": _smmuv3_v2_domain_alloc},
}


# 90c5def10bea is of 2026 (seed 000 fixes it on 2026-03-31; the seed-001 core of February 2026 lacks it):
# taken as first released in v7.0. A stable backport to an older tree shows in `smmufuzz kernel check`'s
# core layer as a difference in what the driver's iotlb_sync sees.
SKIP_EMPTY_SINCE = (7, 0)


def core_for_version(version: tuple | None) -> type:
    """The core whose iommu_iotlb_sync() a kernel `version` has: LegacyCore before 90c5def10bea, else mainline."""
    return LegacyCore if version is not None and tuple(version)[:2] < SKIP_EMPTY_SINCE else IommuCore
