"""The STEs and CDs arm-smmu-v3.c builds (arm_smmu_make_{abort,bypass,cdtable,s2_domain}_ste(), arm_smmu_make_s1_cd(),
6.12), as words, and arm_smmu_write_entry(), the writer of both."""

from ..reference import ste_words as W   # the STE layout is the hardware's (IHI 0070 §5.2)

S1DSS_SSID0 = 2
CACHE_WBRA = 1                # STRTAB_STE_1_S1C_CACHE_WBRA
ARM_SMMU_SH_ISH = 3
TCR_SH_OS, TCR_SH_IS = 2, 3   # io-pgtable-arm's ARM_LPAE_TCR_SH_*
TCR_RGN_NC, TCR_RGN_WBWA = 0, 1
TCR_PS = {32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6}


def make_abort_ste() -> tuple[int, ...]:
    """arm_smmu_make_abort_ste()."""
    return W.encode(V=1, Config=W.CONFIG_ABORT)


def make_bypass_ste() -> tuple[int, ...]:
    """arm_smmu_make_bypass_ste() (no ARM_SMMU_FEAT_ATTR_TYPES_OVR: SHCFG stays 0)."""
    return W.encode(V=1, Config=W.CONFIG_BYPASS)


def make_cdtable_ste(cdtab_dma: int, ats_enabled: bool, e2h: bool, s1dss: int = S1DSS_SSID0,
                     s1cdmax: int = 0) -> tuple[int, ...]:
    """arm_smmu_make_cdtable_ste(): a linear CD table (s1fmt 0) of 2^s1cdmax CDs, no stalls."""
    return W.encode(V=1, Config=W.CONFIG_S1, S1ContextPtr=cdtab_dma, S1CDMax=s1cdmax, S1DSS=s1dss, S1CIR=CACHE_WBRA,
                    S1COR=CACHE_WBRA, S1CSH=ARM_SMMU_SH_ISH, EATS=W.EATS_TRANS if ats_enabled else 0,
                    STRW=W.STRW_EL2 if e2h else W.STRW_NSEL1)


def make_s2_domain_ste(vmid: int, pgd: int, pg_shift: int, ias: int, oas: int, start_level: int,
                       coherent_walk: bool, ats_enabled: bool) -> tuple[int, ...]:
    """arm_smmu_make_s2_domain_ste(), with the VTCR arm_64_lpae_alloc_pgtable_s2() computes."""
    return W.encode(V=1, Config=W.CONFIG_S2, EATS=W.EATS_TRANS if ats_enabled else 0, S2VMID=vmid,
                    S2T0SZ=64 - ias, S2SL0=W.s2_sl0(pg_shift, start_level),
                    S2IR0=TCR_RGN_WBWA if coherent_walk else TCR_RGN_NC,
                    S2OR0=TCR_RGN_WBWA if coherent_walk else TCR_RGN_NC,
                    S2SH0=TCR_SH_IS if coherent_walk else TCR_SH_OS, S2TG=W.S2TG[pg_shift],
                    S2PS=TCR_PS[oas], S2AA64=1, S2PTW=1, S2R=1, S2TTB=pgd)


# io-pgtable-arm's MAIR: NC, WBRWA, DEVICE, INC_OWBRWA at indexes 0-3, computed in int: 0xf4 << 24 is negative and
# sign-extends into the u64 (the tree's arm_64_lpae_alloc_pgtable_s1() gives 0xfffffffff404ff44)
MAIR = 0xffff_ffff_f404_ff44


def make_s1_cd(asid: int, ttbr: int, pg_shift: int, ias: int, oas: int, coherent_walk: bool) -> tuple[int, ...]:
    """arm_smmu_make_s1_cd(), with the TCR arm_64_lpae_alloc_pgtable_s1() computes (little-endian, no stalls,
    no HTTU)."""
    return W.cd_encode(T0SZ=64 - ias, TG0=W.TG0[pg_shift], IRGN0=TCR_RGN_WBWA if coherent_walk else TCR_RGN_NC,
                       ORGN0=TCR_RGN_WBWA if coherent_walk else TCR_RGN_NC,
                       SH0=TCR_SH_IS if coherent_walk else TCR_SH_OS, EPD1=1, V=1, IPS=TCR_PS[oas], AA64=1, R=1,
                       A=1, ASET=1, ASID=asid, TTB0=ttbr, MAIR=MAIR)


_CD_TCR0 = sum(((1 << w) - 1) << lo for n, (_q, lo, w) in W.CD_FIELDS.items()
               if n in ("T0SZ", "TG0", "IRGN0", "ORGN0", "SH0"))
_CD_TTB0 = ((1 << W.CD_FIELDS["TTB0"][2]) - 1) << W.CD_FIELDS["TTB0"][1]


def get_cd_used(ent) -> list[int]:
    """arm_smmu_get_cd_used(): V alone while V=0; else every bit, less TTB0 and its TCR fields under EPD0."""
    used = [0] * W.CD_DWORDS
    used[0] = 1 << W.CD_FIELDS["V"][1]
    if not W.cd_field(ent, "V"):
        return used
    used = [(1 << 64) - 1] * W.CD_DWORDS
    if W.cd_field(ent, "EPD0"):
        used[0] &= ~_CD_TCR0
        used[1] &= ~_CD_TTB0
    return used


def _mask(*names: str) -> list[int]:
    """The bits of these fields, per qword."""
    out = [0] * W.STE_DWORDS
    for n in names:
        q, lo, width = W.FIELDS[n]
        out[q] |= ((1 << width) - 1) << lo
    return out


_S1_USED = _mask("S1Fmt", "S1ContextPtr", "S1CDMax", "S1DSS", "S1CIR", "S1COR", "S1CSH", "S1STALLD", "STRW",
                 "EATS", "S2VMID")
_S2_USED = _mask("EATS", "SHCFG", "S2VMID", "S2T0SZ", "S2SL0", "S2IR0", "S2OR0", "S2SH0", "S2TG", "S2PS",
                 "S2AA64", "S2ENDI", "S2PTW", "S2S", "S2R", "S2TTB")
_SHCFG = _mask("SHCFG")


def get_ste_used(ent) -> list[int]:
    """arm_smmu_get_ste_used(): the bits of each qword the SMMU reads for this STE."""
    used = [0] * W.STE_DWORDS
    used[0] = 1                                                   # V
    if not ent[0] & 1:
        return used
    used[0] |= _mask("Config")[0]
    cfg = W.field(ent, "Config")
    if cfg & 1:                                                   # S1 translates
        used = [u | m for u, m in zip(used, _S1_USED)]
        if W.field(ent, "S1DSS") == 1:                            # STRTAB_STE_1_S1DSS_BYPASS
            used[1] |= _SHCFG[1]
    if cfg & 2:                                                   # S2 translates
        used = [u | m for u, m in zip(used, _S2_USED)]
    if cfg == W.CONFIG_BYPASS:
        used[1] |= _SHCFG[1]
    return used


def entry_qword_diff(entry, target, get_used=get_ste_used) -> tuple[int, list[int]]:
    """arm_smmu_entry_qword_diff(): the qwords whose used bits must change (a bit mask), and the entry with
    every bit the current configuration ignores already at its target value (`get_used`: the writer's
    get_used op, the STE's or the CD's)."""
    cur_used, target_used = get_used(entry), get_used(target)
    unused_update = [(e & c) | (t & ~c) for e, c, t in zip(entry, cur_used, target)]
    diff = 0
    for i in range(len(entry)):
        if unused_update[i] & target_used[i] != target[i]:
            diff |= 1 << i
    return diff, unused_update


def write_entry(entry: list[int], target, store, sync, get_used=get_ste_used) -> None:
    """arm_smmu_write_entry(): from entry (the current words, updated in place) to target, in steps the SMMU
    may observe one by one: store(q, value) is one 64-bit store, sync() the CFGI_STE (CFGI_CD) + CMD_SYNC
    after a step that changed something. One used qword to change: a hitless update (ignored bits, then that
    "critical" qword, then the rest); more: V=0, qwords 1..7, then qword 0."""
    def entry_set(words, start: int, n: int) -> bool:
        changed = False
        for i in range(start, start + n):
            if entry[i] != words[i]:
                entry[i] = words[i]
                store(i, words[i])
                changed = True
        if changed:
            sync()
        return changed

    n = len(entry)
    diff, unused_update = entry_qword_diff(entry, target, get_used)
    if bin(diff).count("1") == 1:
        crit = (diff & -diff).bit_length() - 1
        unused_update[crit] = entry[crit]
        entry_set(unused_update, 0, n)
        entry_set(target, crit, 1)
        entry_set(target, 0, n)
    elif diff:
        unused_update[0] = 0
        entry_set(unused_update, 0, 1)
        entry_set(target, 1, n - 1)
        entry_set(target, 0, 1)
    else:
        entry_set(target, 0, n)
