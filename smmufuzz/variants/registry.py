"""Variant and target registry: a new variant is one small file and one line here."""

from dataclasses import dataclass

from dataclasses import replace

from .os_smmuv3 import SmmuV3Os
from . import (alloc_fail_bugs, gather_rules, iommupt, kc_core, kc_full, kernel_c, lpae_drivers, own_table_drivers,
               pte_sync, reset_bugs, sva_bugs, store_order_bugs, virtio_iommu)
from .arm_smmu_v3_invs import InvsDesign, invs_variant
from .invs import InvsFlavor


@dataclass(frozen=True)
class VariantInfo:
    name: str
    factory: type
    buggy: bool
    family: str
    summary: str
    driver: str = ""        # the driver model it runs: DIVERGENCE compares only variants of one driver


VARIANTS: dict[str, VariantInfo] = {}


def register(name: str, factory, buggy: bool, family: str, summary: str, driver: str = "") -> None:
    VARIANTS[name] = VariantInfo(name, factory, buggy, family, summary, driver)


register("smmuv3", SmmuV3Os, False, "spine",
         "mainline core (90c5def10bea + Robin's v2 fill) + io-pgtable-arm + arm-smmu-v3 classic TLBI path")
# planted (issue 18 item 7): exposed only by an SMMU another owner left entries in (arm_smmu_device_reset op)
register("smmuv3:reset-no-cfgi", reset_bugs.ResetNoCfgiOs, True, "spine", reset_bugs.ResetNoCfgiDriver.__doc__)
register("smmuv3:reset-no-el2", reset_bugs.ResetNoEl2Os, True, "spine", reset_bugs.ResetNoEl2Driver.__doc__)
# planted (issue 18 item 1): exposed only when an allocation fails (fail_nth op)
register("smmuv3:map-no-unwind", alloc_fail_bugs.NoUnwindOs, True, "spine", alloc_fail_bugs.NoUnwindCore.__doc__)
register("smmuv3:iova-reclaim-unflushed", alloc_fail_bugs.UnflushedReclaimOs, True, "spine",
         alloc_fail_bugs.UnflushedReclaimOs.__doc__)
# planted (issue 18 item 5): exposed only with weakly ordered stores (reference/store_order.py)
register("smmuv3:install-no-wmb", store_order_bugs.InstallNoWmbOs, True, "spine",
         store_order_bugs.InstallNoWmbDriver.__doc__)
register("smmuv3:ste-no-unused-sync", store_order_bugs.SteNoUnusedSyncOs, True, "spine",
         store_order_bugs.SteNoUnusedSyncDriver.__doc__)
register("smmuv3:cd-break-no-sync", store_order_bugs.CdBreakNoSyncOs, True, "spine",
         store_order_bugs.CdBreakNoSyncDriver.__doc__)
# planted (issue 18 item 4): exposed only through an SVA PASID (docs/sva.md)
register("smmuv3:sva-notifier-short", sva_bugs.NotifierShortOs, True, "spine", sva_bugs.NotifierShortDriver.__doc__)

register("pte-sync:coherent", pte_sync.Coherent, False, "003-pte-sync", pte_sync.Coherent.__doc__)
register("pte-sync:eager", pte_sync.Eager, False, "003-pte-sync", pte_sync.Eager.__doc__)
register("pte-sync:deferred-v1", pte_sync.DeferredV1, True, "003-pte-sync", pte_sync.DeferredV1.__doc__)
register("pte-sync:deferred-fixed", pte_sync.DeferredFixed, False, "003-pte-sync", pte_sync.DeferredFixed.__doc__)
register("pte-sync:deferred-nosync", pte_sync.DeferredNoSync, True, "003-pte-sync", pte_sync.DeferredNoSync.__doc__)
register("pte-sync:deferred-unmap-clean", pte_sync.DeferredUnmapClean, True, "003-pte-sync",
         pte_sync.DeferredUnmapClean.__doc__)

# seed 000: every core gather rule with every driver model
GATHER_DRIVERS = {
    "arm-smmu-v3": (SmmuV3Os, True),           # (facade, fills its gather before any fix)
    "arm-smmu": (lpae_drivers.ArmSmmuV2Os, False),
    "qcom": (lpae_drivers.QcomIommuOs, False),
    "ipmmu": (lpae_drivers.IpmmuVmsaOs, False),
    "mtk": (own_table_drivers.MtkOs, True),
    "msm": (own_table_drivers.MsmOs, True),           # no iotlb_sync op: nothing to skip
    "sun50i": (own_table_drivers.Sun50iOs, False),
    "sprd": (own_table_drivers.SprdOs, False),
    "dart": (own_table_drivers.DartOs, False),
    "virtio": (virtio_iommu.VirtioOs, False),
}
# (rule, driver) pairs the seed-000 thread says are broken
GATHER_BUGGY = {("skip-empty", d) for d, (_c, fills) in GATHER_DRIVERS.items() if not fills} | {("jason-v1", "mtk")}
# found here, not in the thread: Jason v2's v7s hunk has no NULL-gather check (arm_v7s_init_pte's
# table-replacement path unmaps with gather == NULL)
GATHER_FOUND = {("jason-v2", "mtk"), ("jason-v2", "msm")}
for _rule in gather_rules.RULES.values():
    for _drv, (_cls, _fills) in GATHER_DRIVERS.items():
        register(f"gather:{_rule.name}:{_drv}", gather_rules.gather_variant(_rule, _cls, _drv),
                 (_rule.name, _drv) in GATHER_BUGGY | GATHER_FOUND, "000-gather",
                 f"{_rule.summary.split(':')[0]} + {_drv}")

# seed 001: iommupt's gather_range_pages() versions, strict and DMA-FQ domains. In strict mode the original
# (A) and Robin's proposal (C, written against A) drop the range after the NO_GAPS early sync
# (what b48ca9206138 fixed); in FQ mode all three must be safe.
_PT_SUMMARY = {"A": "original gather_range_pages (if/else: NO_GAPS sync drops the new range)",
               "B": "Yu Zhang b48ca9206138: always add the range after the NO_GAPS sync",
               "C": "Robin's seed-001 proposal: skip sync and range when queued (against A)"}
for _v, _why in _PT_SUMMARY.items():
    register(f"pt:{_v}", iommupt.pt_variant(_v, False), _v in "AC", "001-fq", _why + "; strict domains")
    register(f"pt-fq:{_v}", iommupt.pt_variant(_v, True), False, "001-fq", _why + "; DMA-FQ domains")

# seed 002: arm-smmu-v3's invalidation array. v9 as posted; merged (plain users, ssid compare, read_lock_irqsave,
# S2_VMID_S1_CLEAR skipped after an S12_VMALL); and the variations the review argued about
_V9 = InvsDesign()
_MERGED = InvsDesign(flavor=InvsFlavor(refcount=False, ssid_cmp=True, notify_to_unref=True), v9_reader=False,
                     reader_irqsave=True)
INVS_DESIGNS = {   # name: (design, nest-parent S2 domains, buggy, summary)
    "v9": (_V9, False, False, "v9 as posted (refcount_t users, read_lock), ordinary domains; a failed purge "
                              "allocation handled as merged (v9's own handling: invs:v9-purge-errptr)"),
    "merged": (_MERGED, False, False, "merged: plain users with READ_ONCE/WRITE_ONCE, read_lock_irqsave"),
    "merged-refcount": (replace(_MERGED, flavor=replace(_MERGED.flavor, refcount=True)), False, False,
                        "merged with users as refcount_t"),
    "v9:nest": (_V9, True, True, "B9: v9 reader `continue`s without advancing on S2_VMID_S1_CLEAR when too_big"),
    "merged:nest": (_MERGED, True, False, "merged reader on nest-parent S2 domains"),
    "no-mutex-plain": (replace(_MERGED, asid_mutex=False), False, True,
                       "writers without arm_smmu_asid_lock, plain users"),
    "no-mutex-refcount": (replace(_MERGED, asid_mutex=False, flavor=replace(_MERGED.flavor, refcount=True)), False,
                          True, "writers without arm_smmu_asid_lock, refcount_t users"),
    "new-after-ste": (replace(_MERGED, install_new_before_ste=False), False, True,
                      "B12(a): new domain's array installed after the STE write"),
    "old-unref-before-ste": (replace(_MERGED, unref_old_after_ste=False), False, True,
                             "B12(b): old domain's entries unreferenced before the STE switches away"),
    "no-tag-flush": (replace(_MERGED, flush_tag=False), False, True,
                     "B12(c): no arm_smmu_inv_flush_iotlb_tag() when users reach 0"),
    "no-mb": (replace(_MERGED, reader_mb=False), False, True,
              "B12(d): no smp_mb() between the PTE clear and loading domain->invs"),
    "writer-no-irqsave": (replace(_V9, flavor=replace(_V9.flavor, writer_irqsave=False)), False, True,
                          "B11: unref takes the rwlock with write_lock (no irqsave); v9 read_lock reader"),
    "merged-writer-no-irqsave": (replace(_MERGED, flavor=replace(_MERGED.flavor, writer_irqsave=False)), False, True,
                                 "B11 with the merged read_lock_irqsave reader: the reader's irqsave does not "
                                 "help an interrupt that arrives while the writer holds the lock"),
    "v9-fair-rwlock": (replace(_V9, flavor=replace(_V9.flavor, fair_rwlock=True)), False, True,
                       "v9 read_lock on an rwlock that queues interrupt readers behind a waiting writer "
                       "(PREEMPT_RT-like)"),
    "no-ats-rwlock": (replace(_MERGED, ats_rwlock=False), False, True,
                      "reader without invs->rwlock: ATS can be disabled under an outstanding ATC invalidation "
                      "(CMD_SYNC timeout; issue 18 item 6)"),
    "merged-fair-rwlock": (replace(_MERGED, flavor=replace(_MERGED.flavor, fair_rwlock=True)), False, False,
                           "merged read_lock_irqsave on the same fair rwlock"),
    "merged-ats-order": (replace(_MERGED, ats_after_tlbi=True), False, False,
                         "merged with the ATS-enable race fixed: TLBIs + CMD_SYNC, smp_mb(), reload the array, "
                         "then its ATC invalidations (docs/invs-ats-race.md)"),
    "merged-ats-disable-in-prepare": (replace(_MERGED, ats_disable_in_prepare=True), False, True,
                                      "merged with pci_disable_ats() where the source has it, at the end of "
                                      "arm_smmu_attach_prepare() (6.12 and the series): under the model's rule an "
                                      "ATC_INV a reader has outstanding then times out (docs/invs-ats-race.md: "
                                      "a design race of the source under the series' own endpoint rule)"),
    "merged-ats-disable-fenced": (replace(_MERGED, ats_disable_in_prepare=True, ats_disable_fenced=True), False,
                                  False, "fix of that race: pci_disable_ats() kept in arm_smmu_attach_prepare(), "
                                  "under the write side of the old domain's published array's rwlock "
                                  "(docs/invs-ats-race.md)"),
    # issue 18 item 1: the arrays' allocations failing (fail_nth invs)
    "v9-purge-errptr": (replace(_V9, flavor=replace(_V9.flavor, purge_err_ptr=True)), False, True,
                        "v9 as posted when arm_smmu_invs_purge() cannot allocate: it returns ERR_PTR(-ENOMEM), "
                        "which arm_smmu_install_old_domain_invs() (checking only for NULL) publishes as "
                        "domain->invs, freeing the old array (merged: purge returns NULL, the array stays)"),
    "merge-fail-unref": (replace(_MERGED, unref_on_merge_fail=True), False, True,
                         "planted: when arm_smmu_invs_merge() cannot allocate, the attach's error path unrefs the "
                         "master's entries from the new domain's array, references the failed merge never took "
                         "(another master's ASID/VMID entry reaches 0 users and is trashed while in use)"),
}
for _n, (_des, _nest, _bug, _why) in INVS_DESIGNS.items():
    register(f"invs:{_n}", invs_variant(_n, _des, _nest), _bug, "002-invs", _why)
# two SMMU instances sharing domains (streams 0-1 behind one, 2-3 behind the other)
INVS_TWO_SMMU = {
    "v9:2smmu": (_V9, False, "v9 with two SMMU instances sharing domains"),
    "merged:2smmu": (_MERGED, False, "merged with two SMMU instances sharing domains"),
    "batch-across-smmus:2smmu": (replace(_MERGED, end_batch_on_smmu=False), True,
                                 "a reader batch that does not end at an SMMU change: the second instance's "
                                 "commands go to the first instance's queue"),
    "new-after-ste:2smmu": (replace(_MERGED, install_new_before_ste=False), True,
                            "B12(a) where the stream joining the domain is behind the second instance"),
    "merged-ats-order:2smmu": (replace(_MERGED, ats_after_tlbi=True), False,
                               "the ATS-enable race fix with two instances: every TLBI batch, then every ATC batch"),
}
for _n, (_des, _bug, _why) in INVS_TWO_SMMU.items():
    register(f"invs:{_n}", invs_variant(_n, _des, False, instances=2), _bug, "002-invs", _why)

# kernel C from a tree (smmufuzz kernel setup): correct unless the tree is not; a patched build is the
# user's patch, so what it shows is unexpected until they say otherwise
for _n, _f, _why in kernel_c.variants() + kc_core.variants() + kc_full.variants():
    register(_n, _f, False, "kernel-c", _why, driver=_n.split(":", 1)[1])

# target name -> variant names run side by side on the same program
TARGETS: dict[str, list[str]] = {
    "smmuv3": ["smmuv3"],
    "pte-sync": ["pte-sync:coherent", "pte-sync:eager", "pte-sync:deferred-fixed"],
    "pt-fq": ["pt-fq:A", "pt-fq:B", "pt-fq:C"],
    # the classic per-domain path is the baseline the array versions must agree with (sequential programs)
    "invs": ["smmuv3", "invs:v9", "invs:merged", "invs:merged-refcount"],
    "invs-nest": ["invs:merged:nest"],
    "invs-2smmu": ["smmuv3", "invs:v9:2smmu", "invs:merged:2smmu"],
}
for _drv in GATHER_DRIVERS:   # every rule side by side for one driver: a divergence names the rules
    TARGETS[f"gather:{_drv}"] = [f"gather:{r}:{_drv}" for r in gather_rules.RULES]
    TARGETS[f"gather-correct:{_drv}"] = [f"gather:{r}:{_drv}" for r in ("legacy", "robin-draft", "robin-v2")]
# the README's short campaign: mainline, the seed-003 correct trio, and two seed-000 drivers with every
# core rule side by side (so a short run shows the empty-gather regression being found)
DEFAULT_TARGETS = ["smmuv3", "pte-sync", "gather:arm-smmu", "gather:virtio"]


# targets that need a kernel tree (not in `all` unless one is there); kc-diff adds the patched build when
# patches are given
KERNEL_TARGETS: dict[str, list[str]] = {
    "kc:smmuv3": ["kc:smmuv3"],
    "kc-diff": ["kc:smmuv3", "kc-patched:smmuv3", "kc-model:smmuv3"],
    # the tree against the tree + patch, C only: a DIVERGENCE is the patch's, never a model difference
    "kc-patch-diff": ["kc:smmuv3", "kc-patched:smmuv3"],
    "kc-pte-sync": ["kc:pte-sync", "kc-patched:pte-sync"],
    "kc-lpae-drivers": ["kc:arm-smmu", "kc:qcom", "kc:ipmmu"],
    # everything Linux does on the SMMUv3 from the tree, against the tree + patch (driver patches run as real code)
    "kc-full-diff": ["kc-full:smmuv3", "kc-full-patched:smmuv3"],
    # seed 003 whole: the tree against the tree + the series, on a non-coherent walker, all C
    "kc-full-pte-sync": ["kc-full:pte-sync", "kc-full-patched:pte-sync"],
}
for _drv in kc_core.DRIVERS:       # the tree's core against the tree + patch (seed 000's core patches)
    KERNEL_TARGETS[f"kc-core-diff:{_drv}"] = [f"kc-core:{_drv}", f"kc-core-patched:{_drv}"]


def kernel_builds(names) -> set:
    """Which kernel builds ("base", "patched") these variants need ("core": with the tree's iommu core, "driver":
    with arm-smmu-v3's invalidation path)."""
    out = set()
    for n in names:
        f = VARIANTS[n].factory if n in VARIANTS else None
        if getattr(f, "KERNEL_BUILD", None):
            out.add(f.KERNEL_BUILD)
            if getattr(f, "KERNEL_CORE", False):
                out.add("core")
            if getattr(f, "KERNEL_DRIVER", False):
                out.add("driver")
        elif getattr(f, "KERNEL_TREE", False):
            out.add("tree")
    return out


class UnknownName(KeyError):
    pass


def comparable(names: list[str]) -> list[list[str]]:
    """The variants DIVERGENCE compares, in groups: those of one driver model (a target may run several drivers side
    by side, e.g. kc-lpae-drivers: their page sizes, IAS and capabilities differ by design); unknown names together."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(VARIANTS[n].driver if n in VARIANTS else "", []).append(n)
    return list(groups.values())


def variant(name: str) -> VariantInfo:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownName(f"unknown variant {name!r} (known: {', '.join(sorted(VARIANTS))})") from None


def target(name: str) -> list[str]:
    if name in TARGETS:
        return TARGETS[name]
    if name in KERNEL_TARGETS:
        from ..kernel.session import patch_specs
        names = KERNEL_TARGETS[name]
        return names if patch_specs() else [n for n in names if not n.startswith("kc-patched:")]
    if name in VARIANTS:
        return [name]
    raise UnknownName(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS) + sorted(KERNEL_TARGETS))}; or any variant name)")
