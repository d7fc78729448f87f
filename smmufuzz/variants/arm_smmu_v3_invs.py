"""arm-smmu-v3 with the per-domain RCU invalidation array (seed 002: arm_smmu_domain_inv_range, attach).

Every path that touches state shared between CPUs is a generator (kthread.py): the reader
(arm_smmu_domain_inv_range), attach/detach (arm_smmu_attach_prepare_invs, install_new/old_domain_invs,
arm_smmu_inv_flush_iotlb_tag) and unmap + iotlb_sync. `InvsDesign` selects the posting (v9 or merged)
and the variations the review argued about; the facade `InvsOs` runs a path alone (drain) for
sequential programs, or hands out the generator (`start`) for the harness's scheduler.
"""

from dataclasses import dataclass, field

from .arm_smmu_v3 import (ATC_INV_SIZE_ALL, CMDQ_OP_ATC_INV, CMDQ_OP_CMD_SYNC, CMDQ_OP_TLBI_EL2_ASID,
                          CMDQ_OP_TLBI_EL2_VA, CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA,
                          CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_S2_IPA, IOMMU_NO_PASID, ArmSmmuV3Driver, CmdqBatch,
                          CmdqEnt, SmmuDomain, build_cmd)
from .core import gather_init
from .gather import Gather
from .invs import (INV_TYPE_ATS, INV_TYPE_ATS_FULL, INV_TYPE_S1_ASID, INV_TYPE_S2_VMID, INV_TYPE_S2_VMID_S1_CLEAR,
                   ErrPtr, Inv, Invs, InvsFlavor, invs_alloc, invs_merge, invs_purge, invs_unref, num_invs_of,
                   users_of)
from .kthread import Acquire, Lock, Point, Release, drain
from .os_smmuv3 import SmmuV3Os

SIZE_MAX = (1 << 64) - 1


def invs_ptr(d) -> tuple:
    """The shared object domain->invs (the RCU pointer) is, for the scheduler's access record."""
    return ("invs", id(d))


@dataclass(frozen=True)
class InvsDesign:
    """The seed-002 code as posted (v9) or merged, and the variations planted as bugs."""
    flavor: InvsFlavor = field(default_factory=InvsFlavor)
    v9_reader: bool = True           # S2_VMID_S1_CLEAR / unknown type: `continue` without advancing
    reader_irqsave: bool = False     # read_lock_irqsave (merged) vs read_lock (v9)
    reader_mb: bool = True           # smp_mb() between the PTE stores and loading domain->invs
    asid_mutex: bool = True          # writers serialised by arm_smmu_asid_lock
    install_new_before_ste: bool = True
    unref_old_after_ste: bool = True
    flush_tag: bool = True           # arm_smmu_inv_flush_iotlb_tag() when an ASID/VMID's users reach 0
    reader_checks_users: bool = True
    ats_rwlock: bool = True          # the reader holds invs->rwlock (shared) when the array has ATS entries
    end_batch_on_smmu: bool = True   # a batch never spans two SMMU instances (arm_smmu_invs_end_batch)
    ats_after_tlbi: bool = False     # fix (docs/invs-ats-race.md): TLBIs + CMD_SYNC, smp_mb(), reload, ATC
    unref_on_merge_fail: bool = False  # planted: a failed merge's error path unrefs what it never referenced
    ats_disable_in_prepare: bool = False   # pci_disable_ats() where the source has it: at the end of
    #                                        arm_smmu_attach_prepare(), before the STE (docs/invs-ats-race.md)
    ats_disable_fenced: bool = False       # fix: that pci_disable_ats() under the write side of the rwlock of
    #                                        the old domain's published array (no ATC_INV of a reader in flight)


@dataclass
class InvsDomain(SmmuDomain):
    """struct arm_smmu_domain with the RCU-published invalidation array."""
    invs: Invs = field(default_factory=lambda: invs_alloc(0))
    nest_parent: bool = False


class ArmSmmuV3InvsDriver(ArmSmmuV3Driver):
    """arm-smmu-v3 driver ops rewired through the invalidation array (seed 002 patch 7)."""

    design = InvsDesign()
    nest_parent = False
    smmu_index = 0                   # this instance's place in the (smmu, type, id) order

    def __init__(self, hw, core, pgcfg):
        super().__init__(hw, core, pgcfg)
        self.asid_lock = Lock("arm_smmu_asid_lock")
        self.instances = {self.smmu_index: hw}     # every SMMU an array entry may name: inv->smmu

    def hw_of(self, smmu_index: int):
        return self.instances[smmu_index]

    # ---- domain ----------------------------------------------------------------------------
    def domain_alloc_paging(self, dom_id: int, stage: int) -> InvsDomain:
        """arm_smmu_domain_alloc(): an empty array (alloc(0)) published at allocation."""
        base = super().domain_alloc_paging(dom_id, stage)
        d = InvsDomain(**{k: getattr(base, k) for k in SmmuDomain.__dataclass_fields__})
        d.invs = invs_alloc(0, self.design.flavor.fair_rwlock)
        d.nest_parent = self.nest_parent and stage == 2
        d.pgtbl.tlb.d = d
        return d

    # ---- building a master's entries ------------------------------------------------------------
    def build_invs(self, m, ats_enabled: bool, ssid: int, d: InvsDomain) -> Invs:
        """arm_smmu_master_build_invs(): the master's sorted entries for domain d."""
        rng = self.features_range_inv
        pgsize = (d.pgsize_bitmap & -d.pgsize_bitmap).bit_length() - 1 if rng else 0
        out = []
        if d.stage == 1:
            e2h = self.features_e2h
            out.append(Inv(self.smmu_index, INV_TYPE_S1_ASID, d.asid, pgsize=pgsize,
                           size_opcode=CMDQ_OP_TLBI_EL2_VA if e2h else CMDQ_OP_TLBI_NH_VA,
                           nsize_opcode=CMDQ_OP_TLBI_EL2_ASID if e2h else CMDQ_OP_TLBI_NH_ASID))
        else:
            out.append(Inv(self.smmu_index, INV_TYPE_S2_VMID, d.vmid, pgsize=pgsize,
                           size_opcode=CMDQ_OP_TLBI_S2_IPA, nsize_opcode=CMDQ_OP_TLBI_S12_VMALL))
            if d.nest_parent:
                out.append(Inv(self.smmu_index, INV_TYPE_S2_VMID_S1_CLEAR, d.vmid,
                               size_opcode=CMDQ_OP_TLBI_NH_ALL, nsize_opcode=CMDQ_OP_TLBI_NH_ALL))
        if ats_enabled:
            t = INV_TYPE_ATS_FULL if d.nest_parent else INV_TYPE_ATS
            out.append(Inv(self.smmu_index, t, m.sid, ssid=ssid, size_opcode=CMDQ_OP_ATC_INV,
                           nsize_opcode=CMDQ_OP_ATC_INV))
        return Invs(out, len(out))

    # ---- the reader ------------------------------------------------------------------------------
    def too_big(self, size: int, granule: int) -> bool:
        """arm_smmu_inv_size_too_big()."""
        if size == 0 or size == SIZE_MAX:
            return True
        if self.features_range_inv:
            return False
        return size >= (1 << (granule.bit_length() - 1 - 3)) * granule

    def domain_inv_range(self, d: InvsDomain, iova: int, size: int, granule: int, leaf: bool, snap=None):
        """arm_smmu_domain_inv_range(): walk the published array (a generator).
        snap: the array a CPU without the smp_mb() may already have loaded before its PTE stores."""
        des = self.design
        if des.reader_mb or snap is None:
            yield Point("smp_mb(); rcu_dereference(domain->invs)", reads=(invs_ptr(d),))
            invs = d.invs
        else:
            invs = snap                     # the load was satisfied before the PTE stores were visible
        if des.ats_after_tlbi:
            yield from self._inv_tlb_then_atc(d, invs, iova, size, granule, leaf)
            return
        if invs.has_ats and des.ats_rwlock:
            yield Acquire(invs.rwlock, shared=True, irqsave=des.reader_irqsave)
            yield from self._inv_body(invs, iova, size, granule, leaf)
            yield Release(invs.rwlock, shared=True, irqsave=des.reader_irqsave)
        else:
            yield from self._inv_body(invs, iova, size, granule, leaf)

    def _inv_tlb_then_atc(self, d: InvsDomain, invs: Invs, iova: int, size: int, granule: int, leaf: bool):
        """The fix in arm_smmu_atc_inv_domain()'s order: the loaded array's TLBIs and their CMD_SYNC, smp_mb(),
        then domain->invs loaded again and only its ATC invalidations, under that array's rwlock."""
        yield from self._inv_body(invs, iova, size, granule, leaf, ats=False)
        yield Point("smp_mb(); rcu_dereference(domain->invs) again: who has ATS now", reads=(invs_ptr(d),))
        invs = d.invs
        if not invs.has_ats:
            return
        if self.design.ats_rwlock:
            yield Acquire(invs.rwlock, shared=True, irqsave=self.design.reader_irqsave)
        yield from self._inv_body(invs, iova, size, granule, leaf, ats=True)
        if self.design.ats_rwlock:
            yield Release(invs.rwlock, shared=True, irqsave=self.design.reader_irqsave)

    def _live(self, invs: Invs, i: int, end: int, ats: bool | None = None) -> int:
        """The next entry before `end` (the walk's READ_ONCE(num_invs)) the walk issues: live (users) and,
        with `ats`, of that half (ATS or not)."""
        users = self.design.reader_checks_users
        while i < end and ((users and not invs.inv[i].users) or (ats is not None and invs.inv[i].is_ats() != ats)):
            i += 1
        return i

    def _inv_body(self, invs: Invs, iova: int, size: int, granule: int, leaf: bool, ats: bool | None = None):
        """__arm_smmu_domain_inv_range(): one batch per SMMU run; TLBIs synced before ATC invalidations.
        ats: walk only the ATS entries (True) or only the others (False); None: all."""
        des = self.design
        big = self.too_big(size, granule)
        end = invs.num_invs                 # READ_ONCE(invs->num_invs)
        yield Point(f"reader: num_invs = {end}", reads=(num_invs_of(invs),))
        batch = CmdqBatch(self.hw)
        used_s12_vmall = False
        i = self._live(invs, 0, end, ats)
        while i < end:
            cur = invs.inv[i]
            yield Point(f"reader: entry {i} ({cur.text()})", reads=(users_of(cur),))
            if not batch.cmds:
                batch.hw = self.hw_of(cur.smmu)         # arm_smmu_cmdq_batch_init(cur->smmu, ...)
            t = cur.type
            if t in (INV_TYPE_S1_ASID, INV_TYPE_S2_VMID):
                if big:
                    if t == INV_TYPE_S1_ASID:
                        batch.add(CmdqEnt(cur.nsize_opcode, asid=cur.id))
                    else:
                        batch.add(CmdqEnt(cur.nsize_opcode, vmid=cur.id))
                    used_s12_vmall = t == INV_TYPE_S2_VMID
                else:
                    if t == INV_TYPE_S1_ASID:
                        cmd = CmdqEnt(cur.size_opcode, asid=cur.id, leaf=leaf)
                    else:
                        cmd = CmdqEnt(cur.size_opcode, vmid=cur.id, leaf=leaf)
                    self.batch_add_range(batch, cmd, iova, size, granule, cur.pgsize)
                    used_s12_vmall = False
            elif t == INV_TYPE_S2_VMID_S1_CLEAR:
                if big:
                    if des.v9_reader:
                        self.hw.tick()
                        continue            # v9: `continue` without advancing cur (B9)
                    if not used_s12_vmall:
                        batch.add(CmdqEnt(CMDQ_OP_TLBI_NH_ALL, vmid=cur.id))
                else:
                    batch.add(CmdqEnt(CMDQ_OP_TLBI_NH_ALL, vmid=cur.id))
            elif t == INV_TYPE_ATS:
                cmd = self.atc_inv_to_cmd(cur.ssid, iova, size)
                cmd.sid = cur.id
                batch.add(cmd)
            elif t == INV_TYPE_ATS_FULL:
                cmd = self.atc_inv_to_cmd(IOMMU_NO_PASID, 0, 0)
                cmd.sid = cur.id
                batch.add(cmd)
            nxt = self._live(invs, i + 1, end, ats)
            if batch.cmds and (nxt >= end or self._end_batch(cur, invs.inv[nxt])):
                yield from submit_polling(batch)
                yield Point("reader: batch submitted with CMD_SYNC")
            i = nxt

    def _end_batch(self, cur: Inv, nxt: Inv) -> bool:
        """arm_smmu_invs_end_batch(): another SMMU, the S1-clear after the VMID, or the first ATS entry."""
        if cur.smmu != nxt.smmu and self.design.end_batch_on_smmu:
            return True
        if nxt.type == INV_TYPE_S2_VMID_S1_CLEAR and cur.type != INV_TYPE_S2_VMID_S1_CLEAR:
            return True
        return nxt.is_ats() and not cur.is_ats()

    # ---- domain ops through the array ------------------------------------------------------------
    def iotlb_sync_steps(self, d: InvsDomain, g: Gather, snap=None):
        """arm_smmu_iotlb_sync(): nothing without a pgsize, else a leaf range invalidation."""
        if not g.pgsize:
            return
        yield from self.domain_inv_range(d, g.start, g.end - g.start + 1, g.pgsize, True, snap)

    def iotlb_sync(self, domain, gather: Gather) -> None:
        drain(self.iotlb_sync_steps(domain.priv, gather))

    def flush_iotlb_all(self, domain) -> None:
        """arm_smmu_flush_iotlb_all() -> arm_smmu_domain_inv(): the whole domain (size 0)."""
        drain(self.domain_inv_range(domain.priv, 0, 0, 0, False))

    def flush_all_steps(self, d: InvsDomain):
        yield from self.domain_inv_range(d, 0, 0, 0, False)

    def tlb_inv_context(self, d: InvsDomain) -> None:
        drain(self.domain_inv_range(d, 0, 0, 0, False))

    def tlb_inv_range_domain(self, iova: int, size: int, granule: int, leaf: bool, d: InvsDomain) -> None:
        """arm_smmu_tlb_inv_walk() -> arm_smmu_domain_inv_range(leaf=False)."""
        drain(self.domain_inv_range(d, iova, size, granule, leaf))

    # ---- attach / detach -----------------------------------------------------------------------
    def flush_tag(self, inv: Inv):
        """arm_smmu_inv_flush_iotlb_tag(): an ASID/VMID no array holds any more is flushed from the TLB."""
        if inv.type == INV_TYPE_S1_ASID:
            cmds = [CmdqEnt(inv.nsize_opcode, asid=inv.id)]
        elif inv.type == INV_TYPE_S2_VMID:
            cmds = [CmdqEnt(CMDQ_OP_TLBI_S12_VMALL, vmid=inv.id)]
        else:
            return
        self.hw_of(inv.smmu).cmdq_publish([build_cmd(c) for c in cmds] + [build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])
        yield Point(f"flush tag {inv.text()}")

    def attach_steps(self, sid: int, new: InvsDomain | None):
        """arm_smmu_attach_dev() / blocking domain: prepare invs, install new, STE, commit, install old."""
        des = self.design
        fl = des.flavor
        m = self.master(sid)
        if des.asid_mutex:
            yield Acquire(self.asid_lock)
        old = m.domain
        ats_new = new is not None and m.ats_supported and self.features_ats
        # arm_smmu_attach_prepare_invs()
        new_invs = to_unref = old_invs = None
        if new is not None:
            to_merge = self.build_invs(m, ats_new, IOMMU_NO_PASID, new)
            cur = new.invs
            yield Point("prepare: load new_domain->invs", reads=(invs_ptr(new),))
            new_invs = yield from invs_merge(fl, cur, to_merge, self.hw.mem.faults)
            if isinstance(new_invs, ErrPtr):
                # arm_smmu_attach_prepare() returns the error before touching anything: both arrays, the
                # devices lists, the STE and ATS stay as they were
                if des.unref_on_merge_fail:
                    yield from self._unref(new.invs, to_merge)
                if des.asid_mutex:
                    yield Release(self.asid_lock)
                return new_invs.err
        if old is not None:
            old_invs = new_invs if old is new else old.invs
            yield Point("prepare: load old_domain->invs", reads=(invs_ptr(old),))
            to_unref = self.build_invs(m, m.ats_enabled, IOMMU_NO_PASID, old)
        if new is not None and m not in new.devices:
            new.devices.append(m)
        published = old.invs if old is not None else None      # what a reader of the old domain may hold
        if new is not None and des.install_new_before_ste:
            yield from self._install_new(new, new_invs)
        if old is not None and not des.unref_old_after_ste:
            yield from self._install_old(old, old_invs, to_unref)
        was_ats = m.ats_enabled
        if was_ats and not ats_new and des.ats_disable_in_prepare:
            fence = published if des.ats_disable_fenced else None
            if fence is not None:
                yield Acquire(fence.rwlock, shared=False, irqsave=True)
            self.hw.set_ats(sid, False)          # arm_smmu_attach_prepare(): pci_disable_ats(); wmb();
            yield Point(f"pci_disable_ats(sid {sid})", writes=(("ats", sid),))
            if fence is not None:
                yield Release(fence.rwlock, shared=False, irqsave=True)
        # the STE (EATS follows the new state), CFGI_STE + CMD_SYNC
        m.domain = new
        m.ats_enabled = ats_new
        self.install_ste_for_dev(m)
        yield Point(f"STE[{sid}] written", writes=(("ste", sid),))
        if new is not None and not des.install_new_before_ste:
            yield from self._install_new(new, new_invs)
        # arm_smmu_attach_commit(): ATS (enable: flush then enable; disable: flush, and pci_disable_ats() once
        # the old array's write side shows no ATC invalidation outstanding, below), leave old
        if was_ats or ats_new:
            self.atc_inv_master(m)
        if ats_new and not was_ats:
            self.hw.set_ats(sid, True)
        yield Point("commit: ATS")
        if old is not None and old is not new and m in old.devices:
            old.devices.remove(m)
        if old is not None and des.unref_old_after_ste:
            yield from self._install_old(old, old_invs, to_unref)
        if was_ats and not ats_new and not des.ats_disable_in_prepare:
            self.hw.set_ats(sid, False)
            yield Point(f"pci_disable_ats(sid {sid})", writes=(("ats", sid),))
        if des.asid_mutex:
            yield Release(self.asid_lock)
        return 0

    def _install_new(self, d: InvsDomain, new_invs: Invs):
        """arm_smmu_install_new_domain_invs(): rcu_assign_pointer, kfree_rcu(old)."""
        d.invs = new_invs
        yield Point("install new: rcu_assign_pointer(new_domain->invs)", writes=(invs_ptr(d),))

    def _unref(self, invs: Invs, to_unref: Invs):
        """arm_smmu_invs_unref() with the tags whose users reach 0 flushed (free_fn, or merged: the caller
        reading to_unref's first entry)."""
        des = self.design
        fl = des.flavor
        free_fn = self.flush_tag if des.flush_tag and not fl.notify_to_unref else None
        yield from invs_unref(fl, invs, to_unref, free_fn)
        if des.flush_tag and fl.notify_to_unref and to_unref.num_invs and not to_unref.inv[0].users:
            yield from self.flush_tag(to_unref.inv[0])

    def _install_old(self, d: InvsDomain, invs: Invs, to_unref: Invs):
        """arm_smmu_install_old_domain_invs(): unref (tags reaching 0 flushed), purge, publish. A purge that
        could not allocate returns NULL (merged): the old array stays, trimmed in place by the unref; v9 as
        posted checks only for NULL and publishes its ERR_PTR(-ENOMEM) (and frees the old array)."""
        yield from self._unref(invs, to_unref)
        purged = yield from invs_purge(self.design.flavor, invs, self.hw.mem.faults)
        if purged is not None:
            d.invs = purged
            yield Point("install old: rcu_assign_pointer(old_domain->invs)", writes=(invs_ptr(d),))

    def attach_dev(self, sid: int, d) -> int:
        return drain(self.attach_steps(sid, d))

    def detach_dev(self, m) -> None:
        if m.domain is not None:
            drain(self.attach_steps(m.sid, None))

    def ats_steps(self, sid: int, on: bool):
        """The endpoint's ATS capability toggled: a re-attach to the same domain."""
        m = self.master(sid)
        m.ats_supported = on
        if m.domain is not None and m.ats_enabled != (on and self.features_ats):
            yield from self.attach_steps(sid, m.domain)

    def set_ats_supported(self, sid: int, on: bool) -> None:
        drain(self.ats_steps(sid, on))


def submit_polling(batch: CmdqBatch):
    """arm_smmu_cmdq_batch_submit() as other CPUs see it: with ATC invalidations in the batch, the CPU polls
    for the CMD_SYNC (arm_smmu_cmdq_poll_until_sync) while the endpoints answer over PCIe: a window in which
    the commands are published and not yet complete."""
    sids = batch.atc_sids()
    if not sids:
        batch.submit()
        return
    batch.hw.cmdq_publish(batch.cmds)
    batch.cmds = []
    yield Point("reader: ATC_INV published, polling for the CMD_SYNC", reads=tuple(("ats", s) for s in sorted(sids)))
    batch.submit()


class InvsOs(SmmuV3Os):
    """Linux on one SMMUv3 with the invalidation array; the `*_task()` methods give the concurrent form of an op."""

    driver_cls = ArmSmmuV3InvsDriver
    CONCURRENT = True

    def drv(self, sid: int) -> ArmSmmuV3InvsDriver:
        """The driver instance behind a stream."""
        return self.driver

    def alloc_can_fail(self, kind: str) -> bool:
        """The invalidation array's allocations (merge, purge) fail too."""
        return kind == "invs" or super().alloc_can_fail(kind)

    # the ops as task bodies (generators returning what the API returns), for the scheduler: the kernel call
    # of each, step by step at its shared-memory accesses and locks; the other ops run as one step
    def attach_task(self, sid: int, dom: int):
        """iommu_attach_device()."""
        return self._attach_steps(sid, self.domain(dom).priv)

    def detach_task(self, sid: int):
        """iommu_detach_device(): the stream to a blocking domain."""
        return self.drv(sid).attach_steps(sid, None)

    def set_ats_task(self, sid: int, on: int):
        """pci_enable_ats() / pci_disable_ats() through the driver."""
        return self.drv(sid).ats_steps(sid, bool(on))

    def unmap_task(self, dom: int, iova: int, size: int):
        """iommu_unmap()."""
        return self._unmap_steps(dom, iova, size)

    def iotlb_sync_task(self, dom: int, gather: int):
        """iommu_iotlb_sync()."""
        return self._sync_steps(dom, gather)

    def flush_iotlb_all_task(self, dom: int):
        """iommu_flush_iotlb_all()."""
        return self.driver.flush_all_steps(self.domain(dom).priv)

    def attach(self, sid, dom) -> int:
        return drain(self._attach_steps(sid, self.domain(dom).priv))

    def _attach_steps(self, sid: int, new: InvsDomain):
        """iommu_attach_device(): if the driver's attach fails, the core attaches the group's domain again
        (6.12 __iommu_group_set_domain_internal(), err_revert; a stream on no domain has nothing to go back to)."""
        drv = self.drv(sid)
        old = drv.master(sid).domain
        ret = yield from drv.attach_steps(sid, new)
        if ret and old is not None:
            yield from drv.attach_steps(sid, old)
        return ret

    def _unmap_steps(self, dom: int, iova: int, size: int):
        """iommu_unmap(): __iommu_unmap() into an on-stack gather, then iommu_iotlb_sync()."""
        d = self.domain(dom)
        snap = d.priv.invs                      # what an unordered (no smp_mb) later load may return
        yield Point("unmap: (without smp_mb) the domain->invs load may be satisfied here", reads=(invs_ptr(d.priv),))
        g = Gather()
        ret = self.core.iommu_unmap_fast(d, iova, size, g)
        yield Point(f"unmap: PTEs cleared ({ret:#x} bytes)", writes=(("ptes", id(d)),))
        if not self.core.sync_skips_gather(g):
            yield from self.driver.iotlb_sync_steps(d.priv, g, snap)
        gather_init(g)
        return ret

    def _sync_steps(self, dom: int, gid: int):
        d = self.domain(dom)
        g = self.gather(dom, gid)
        if not self.core.sync_skips_gather(g):
            yield from self.driver.iotlb_sync_steps(d.priv, g)
        gather_init(g)


class InvsTwoSmmuOs(InvsOs):
    """Two SMMU instances (streams 0-1 behind the first, 2-3 behind the second) sharing domains: one
    array per domain holds both instances' entries (the point of the array)."""

    INSTANCES = 2

    def __init__(self, hw, pg_shift: int, ias: int, oas: int, stage: int):
        from ..reference.smmu import SmmuInstance
        super().__init__(hw, pg_shift, ias, oas, stage)
        second = type(self.driver)(SmmuInstance(hw, 1), self.core, self.driver.pgcfg)
        second.smmu_index = 1
        second.asid_lock = self.driver.asid_lock             # one global arm_smmu_asid_lock
        for d in (self.driver, second):
            d.instances = {0: self.driver.hw, 1: second.hw}
        self.drivers = [self.driver, second]

    def drv(self, sid: int) -> ArmSmmuV3InvsDriver:
        return self.drivers[sid * self.INSTANCES // 4]

    def detach(self, sid) -> None:
        d = self.drv(sid)
        d.detach_dev(d.master(sid))

    def set_ats(self, sid, on) -> None:
        self.drv(sid).set_ats_supported(sid, on)


def invs_variant(name: str, design: InvsDesign, nest_parent: bool = False, instances: int = 1) -> type:
    """A facade class for one design (the registry's one line per variant)."""
    drv = type(f"ArmSmmuV3InvsDriver_{name}", (ArmSmmuV3InvsDriver,), {"design": design, "nest_parent": nest_parent})
    attrs = {"driver_cls": drv, "__doc__": f"arm-smmu-v3 invalidation array: {name}"}
    if nest_parent:
        attrs["CONFIG"] = {"stage": 2}
    return type(f"InvsOs_{name}", (InvsTwoSmmuOs if instances == 2 else InvsOs,), attrs)
