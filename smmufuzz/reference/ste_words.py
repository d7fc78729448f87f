"""The STE and the CD as 8 little-endian 64-bit words each: field layouts, encoders and decoders (IHI 0070 §5.2,
§5.4)."""

from .lpae import Geometry, geometry_for
from .ste import Cd, Ste

STE_DWORDS = 8
STE_SIZE = 8 * STE_DWORDS

# name -> (qword, lowest bit, width): IHI 0070 §5.2 (the names Linux's arm-smmu-v3.h gives them, less prefixes)
FIELDS = {
    "V": (0, 0, 1),
    "Config": (0, 1, 3),
    "S1Fmt": (0, 4, 2),
    "S1ContextPtr": (0, 6, 46),      # address bits [51:6]
    "S1CDMax": (0, 59, 5),
    "S1DSS": (1, 0, 2),
    "S1CIR": (1, 2, 2),
    "S1COR": (1, 4, 2),
    "S1CSH": (1, 6, 2),
    "S1STALLD": (1, 27, 1),
    "EATS": (1, 28, 2),
    "STRW": (1, 30, 2),
    "SHCFG": (1, 44, 2),
    "S2VMID": (2, 0, 16),
    "S2T0SZ": (2, 32, 6),
    "S2SL0": (2, 38, 2),
    "S2IR0": (2, 40, 2),
    "S2OR0": (2, 42, 2),
    "S2SH0": (2, 44, 2),
    "S2TG": (2, 46, 2),
    "S2PS": (2, 48, 3),
    "S2AA64": (2, 51, 1),
    "S2ENDI": (2, 52, 1),
    "S2AFFD": (2, 53, 1),
    "S2PTW": (2, 54, 1),
    "S2S": (2, 57, 1),
    "S2R": (2, 58, 1),
    "S2TTB": (3, 4, 48),             # address bits [51:4]
}
ADDR_FIELDS = {"S1ContextPtr": 6, "S2TTB": 4}   # fields holding an address from this bit up

CONFIG_ABORT, CONFIG_BYPASS, CONFIG_S1, CONFIG_S2 = 0b000, 0b100, 0b101, 0b110
CONFIG_NAMES = {CONFIG_ABORT: "abort", CONFIG_BYPASS: "bypass", CONFIG_S1: "s1", CONFIG_S2: "s2"}
EATS_TRANS = 1
STRW_NSEL1, STRW_EL2 = 0, 2
S2TG = {12: 0, 16: 1, 14: 2}                    # granule shift -> S2TG (VTCR_EL2.TG0)
S2TG_SHIFT = {v: k for k, v in S2TG.items()}


# the stage-1 context descriptor: IHI 0070 §5.4 (Linux's CTXDESC_CD_* names, less prefixes)
CD_DWORDS = 8
CD_FIELDS = {
    "T0SZ": (0, 0, 6),
    "TG0": (0, 6, 2),
    "IRGN0": (0, 8, 2),
    "ORGN0": (0, 10, 2),
    "SH0": (0, 12, 2),
    "EPD0": (0, 14, 1),
    "ENDI": (0, 15, 1),
    "EPD1": (0, 30, 1),
    "V": (0, 31, 1),
    "IPS": (0, 32, 3),
    "TBI0": (0, 38, 1),
    "HD": (0, 42, 1),
    "HA": (0, 43, 1),
    "AA64": (0, 41, 1),
    "S": (0, 44, 1),
    "R": (0, 45, 1),
    "A": (0, 46, 1),
    "ASET": (0, 47, 1),
    "ASID": (0, 48, 16),
    "TTB0": (1, 4, 48),              # address bits [51:4]
    "MAIR": (3, 0, 64),
}
CD_ADDR_FIELDS = {"TTB0": 4}
TG0 = {12: 0, 16: 1, 14: 2}                     # granule shift -> TCR.TG0
TG0_SHIFT = {v: k for k, v in TG0.items()}


def _encode(layout, addr_fields, n: int, what: str, fields) -> tuple[int, ...]:
    words = [0] * n
    for name, val in fields.items():
        q, lo, width = layout[name]
        if name in addr_fields:
            val >>= addr_fields[name]
        if val >> width:
            raise ValueError(f"{what} {name}={val:#x} does not fit in {width} bits")
        words[q] |= val << lo
    return tuple(words)


def _field(layout, addr_fields, words, name: str) -> int:
    q, lo, width = layout[name]
    v = (words[q] >> lo) & ((1 << width) - 1)
    return v << addr_fields[name] if name in addr_fields else v


def encode(**fields: int) -> tuple[int, ...]:
    """The 8 words of an STE holding these field values (unnamed fields 0); an address field takes the address."""
    return _encode(FIELDS, ADDR_FIELDS, STE_DWORDS, "STE", fields)


def field(words, name: str) -> int:
    """One STE field's value (an address field as the address); on every STE decode, so not through _field."""
    q, lo, width = FIELDS[name]
    v = (words[q] >> lo) & ((1 << width) - 1)
    return v << ADDR_FIELDS[name] if name in ADDR_FIELDS else v


def cd_encode(**fields: int) -> tuple[int, ...]:
    """The 8 words of a CD holding these field values (unnamed fields 0)."""
    return _encode(CD_FIELDS, CD_ADDR_FIELDS, CD_DWORDS, "CD", fields)


def cd_field(words, name: str) -> int:
    """One CD field's value (TTB0 as the address)."""
    return _field(CD_FIELDS, CD_ADDR_FIELDS, words, name)


def cd_decode(words) -> Cd:
    """The CD the SMMU uses for these words (IHI 0070 §5.4): V=0, EPD0=1 (no TTB0 walks), AA64=0 or a reserved
    TG0 translate nothing (`valid` False: each transaction faults, C_BAD_CD or a translation fault; not an
    error of the stream's configuration). The start level is the one T0SZ and TG0 give (stage 1 concatenates
    nothing)."""
    pg_shift = TG0_SHIFT.get(cd_field(words, "TG0"))
    if not cd_field(words, "V") or cd_field(words, "EPD0") or not cd_field(words, "AA64") or pg_shift is None:
        return Cd(0, 0, None, valid=False)
    return Cd(cd_field(words, "ASID"), cd_field(words, "TTB0"), geometry_for(pg_shift, 64 - cd_field(words, "T0SZ"), 1))


def s2_start_level(pg_shift: int, sl0: int) -> int | None:
    """VTCR.SL0 -> the first lookup level (no FEAT_LPA2): 4K 2/1/0 for SL0 0/1/2; 16K and 64K 3/2/1."""
    lvl = 3 - sl0 - (pg_shift == 12)
    return lvl if sl0 != 3 and lvl >= 0 else None


def s2_sl0(pg_shift: int, start_level: int) -> int:
    """The inverse of s2_start_level (io-pgtable-arm's `vtcr->sl = ~sl & 3`, sl one more for 4K)."""
    return ~(start_level + (pg_shift == 12)) & 3


def decode(words, cd_at, ns: int = 0) -> tuple[Ste, str | None]:
    """The STE the SMMU uses for these words, and why it is not the one they seem to ask for (None if it is).

    V=0 and Config=abort both terminate transactions (an invalid STE raises C_BAD_STE, not modelled: both
    decode as abort); so do a reserved Config, nested translation (Config 0b111: not modelled), and an
    ILLEGAL stage-2 configuration (S2AA64=0 with AArch64 tables only, a reserved S2TG or S2SL0). A stage-1
    STE takes ASID and table from its CD (`cd_at(S1ContextPtr)`, SSID 0's of a linear table of 2^S1CDMax CDs;
    the other SSIDs' are substream.py's).
    `ns` is the tag namespace of the SMMU instance whose table holds it (smmu.SmmuInstance)."""
    if not field(words, "V"):
        return Ste("abort"), None
    cfg = CONFIG_NAMES.get(field(words, "Config"))
    if cfg is None:
        return Ste("abort"), f"Config {field(words, 'Config'):#05b} not modelled"
    if cfg in ("abort", "bypass"):
        return Ste(cfg), None
    eats = field(words, "EATS") != 0
    vmid = field(words, "S2VMID") + ns
    if cfg == "s1":
        cd = cd_at(field(words, "S1ContextPtr"))
        if cd is None or field(words, "S1Fmt"):
            return Ste("abort"), "no CD at S1ContextPtr (or a 2-level CD table: not modelled)"
        if not cd.valid:
            return Ste("abort"), None
        el2 = field(words, "STRW") == STRW_EL2
        return Ste("s1", asid=cd.asid + ns, vmid=vmid, ttb=cd.ttb, geo=cd.geo, eats=eats, el2=el2,
                   s1cdmax=field(words, "S1CDMax")), None
    pg_shift = S2TG_SHIFT.get(field(words, "S2TG"))
    lvl = None if pg_shift is None else s2_start_level(pg_shift, field(words, "S2SL0"))
    if lvl is None or not field(words, "S2AA64"):
        return Ste("abort"), "ILLEGAL stage-2 configuration (S2AA64, S2TG or S2SL0)"
    geo = Geometry(pg_shift, 64 - field(words, "S2T0SZ"), lvl)
    why = "S2AFFD=1 not modelled (the walker faults on AF=0)" if field(words, "S2AFFD") else None
    return Ste("s2", vmid=vmid, ttb=field(words, "S2TTB"), geo=geo, eats=eats), why


def from_ste(ste: Ste, cd_ptr: int) -> tuple[tuple[int, ...], Cd | None]:
    """Words (and the CD for cd_ptr, stage 1) for a decoded STE: what an IOMMU whose stream mapping is not
    an SMMUv3 STE (context banks, virtio-iommu's host) is modelled with. SMMUv3 drivers write their own."""
    if not ste.translates:
        return encode(V=1, Config=CONFIG_ABORT if ste.config == "abort" else CONFIG_BYPASS), None
    eats = EATS_TRANS if ste.eats else 0
    if ste.config == "s1":
        return (encode(V=1, Config=CONFIG_S1, S1ContextPtr=cd_ptr, S1CDMax=ste.s1cdmax, EATS=eats,
                       STRW=STRW_EL2 if ste.el2 else STRW_NSEL1, S2VMID=ste.vmid),
                Cd(ste.asid, ste.ttb, ste.geo))
    g = ste.geo
    return encode(V=1, Config=CONFIG_S2, EATS=eats, S2VMID=ste.vmid, S2T0SZ=64 - g.ias,
                  S2SL0=s2_sl0(g.pg_shift, g.start_level), S2TG=S2TG[g.pg_shift], S2AA64=1,
                  S2TTB=ste.ttb), None
