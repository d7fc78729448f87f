"""What another owner of the SMMU leaves in its caches: the kernel before a kexec, the boot kernel of a
hibernation restore, or firmware. IHI 0070 §6.3.9.6: "A change to SMMUEN is not required to invalidate cached
configuration or TLB entries", so the new owner's arm_smmu_device_reset() finds them under the StreamIDs,
ASIDs and VMIDs it uses too (allocation starts at 1 in every kernel) and must remove them: CMD_CFGI_ALL, then
CMD_TLBI_EL2_ALL (with FEAT_HYP) and CMD_TLBI_NSNH_ALL. The endpoints are re-initialised as well (§6.3.9.6:
all ATS clients are, when the SMMU is re-enabled): their ATCs are empty. The SMMU is left disabled
(SMMUEN=0: nothing is filled until the driver's reset enables it again).
"""

from dataclasses import replace

FOREIGN_PA = 1 << 46       # where the other owner's translations pointed: no program maps there
FOREIGN_ID = 0x80          # ASID/VMID offset of the other owner's STEs for the same streams


def foreign_ste(ste):
    """The other owner's STE for the same stream: another ASID (VMID at stage 2), the same tables (its table
    memory was freed and is ours now)."""
    if ste.config == "s2":
        return replace(ste, vmid=ste.vmid + FOREIGN_ID)
    return replace(ste, asid=ste.asid + FOREIGN_ID)


def leave_foreign_entries(smmu) -> None:
    """The adversarial leftovers: per stream with a translating STE, a cached STE of the other owner, and under
    both tags every leaf of the tables translating to another PA (what the other owner's tables gave)."""
    smmu.set_enabled(False)
    epoch = smmu.new_epoch()
    for sid, ste in list(smmu.strtab.items()):
        if not ste.translates:
            continue
        other = foreign_ste(ste)
        smmu.cfgc.setdefault(sid, {})[other] = epoch
        leaves, _tables = smmu.tree(ste)
        pgs = ste.geo.pg_shift
        for tag in (ste.tag, other.tag):
            for lf in leaves:
                smmu.tlb[(tag, lf.va, lf.span, lf.pa ^ FOREIGN_PA, lf.perms, lf.level, pgs)] = epoch
    smmu.atc.clear()
    smmu.atc_pasid.clear()
    smmu.cache_ver += 1
    smmu.strtab_ver += 1
