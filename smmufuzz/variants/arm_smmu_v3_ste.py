"""The STEs arm-smmu-v3.c builds: arm_smmu_make_{abort,bypass,cdtable,s2_domain}_ste() (6.12), as words."""

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


def make_cdtable_ste(cdtab_dma: int, ats_enabled: bool, e2h: bool, s1dss: int = S1DSS_SSID0) -> tuple[int, ...]:
    """arm_smmu_make_cdtable_ste(): a linear CD table of one CD (s1fmt 0, s1cdmax 0), no stalls."""
    return W.encode(V=1, Config=W.CONFIG_S1, S1ContextPtr=cdtab_dma, S1DSS=s1dss, S1CIR=CACHE_WBRA,
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
