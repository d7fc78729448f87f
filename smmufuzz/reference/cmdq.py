"""SMMUv3 command encodings as the hardware decodes them (IHI 0070 §4; fields as in Linux arm-smmu-v3.h)."""

from typing import NamedTuple

CMD_PREFETCH_CONFIG = 0x01
CMD_PREFETCH_ADDR = 0x02
CMD_CFGI_STE = 0x03
CMD_CFGI_ALL = 0x04
CMD_CFGI_CD = 0x05
CMD_CFGI_CD_ALL = 0x06
CMD_TLBI_NH_ALL = 0x10
CMD_TLBI_NH_ASID = 0x11
CMD_TLBI_NH_VA = 0x12
CMD_TLBI_NH_VAA = 0x13
CMD_TLBI_EL2_ALL = 0x20
CMD_TLBI_EL2_ASID = 0x21
CMD_TLBI_EL2_VA = 0x22
CMD_TLBI_S12_VMALL = 0x28
CMD_TLBI_S2_IPA = 0x2A
CMD_TLBI_NSNH_ALL = 0x30
CMD_ATC_INV = 0x40
CMD_SYNC = 0x46

OPCODE_NAMES = {
    CMD_PREFETCH_CONFIG: "PREFETCH_CONFIG", CMD_PREFETCH_ADDR: "PREFETCH_ADDR",
    CMD_CFGI_STE: "CFGI_STE", CMD_CFGI_ALL: "CFGI_STE_RANGE", CMD_CFGI_CD: "CFGI_CD",
    CMD_CFGI_CD_ALL: "CFGI_CD_ALL", CMD_TLBI_NH_ALL: "TLBI_NH_ALL", CMD_TLBI_NH_ASID: "TLBI_NH_ASID",
    CMD_TLBI_NH_VA: "TLBI_NH_VA", CMD_TLBI_NH_VAA: "TLBI_NH_VAA", CMD_TLBI_EL2_ALL: "TLBI_EL2_ALL",
    CMD_TLBI_EL2_ASID: "TLBI_EL2_ASID", CMD_TLBI_EL2_VA: "TLBI_EL2_VA",
    CMD_TLBI_S12_VMALL: "TLBI_S12_VMALL", CMD_TLBI_S2_IPA: "TLBI_S2_IPA",
    CMD_TLBI_NSNH_ALL: "TLBI_NSNH_ALL", CMD_ATC_INV: "ATC_INV", CMD_SYNC: "CMD_SYNC",
}

ATC_INV_SIZE_ALL = 52


def _f(v: int, lo: int, width: int) -> int:
    return (v >> lo) & ((1 << width) - 1)


class Command(NamedTuple):
    """A decoded command-queue entry (only the fields its opcode defines are meaningful)."""
    op: int
    ssv: int = 0
    num: int = 0
    scale: int = 0
    vmid: int = 0
    asid: int = 0
    leaf: int = 0
    ttl: int = 0
    tg: int = 0
    addr: int = 0
    sid: int = 0
    ssid: int = 0
    size: int = 0
    range: int = 0
    glob: int = 0

    @property
    def name(self) -> str:
        return OPCODE_NAMES.get(self.op, f"OP_{self.op:#x}")

    def text(self) -> str:
        o = self.op
        if o in (CMD_TLBI_NH_VA, CMD_TLBI_EL2_VA, CMD_TLBI_S2_IPA, CMD_TLBI_NH_VAA):
            s = f"{self.name} asid={self.asid} vmid={self.vmid} addr={self.addr:#x} leaf={self.leaf}"
            if self.tg:
                s += f" tg={self.tg} scale={self.scale} num={self.num} ttl={self.ttl}"
            return s
        if o in (CMD_TLBI_NH_ASID, CMD_TLBI_EL2_ASID):
            return f"{self.name} asid={self.asid} vmid={self.vmid}"
        if o in (CMD_TLBI_NH_ALL, CMD_TLBI_S12_VMALL):
            return f"{self.name} vmid={self.vmid}"
        if o == CMD_ATC_INV:
            return f"ATC_INV sid={self.sid} ssid={self.ssid} addr={self.addr:#x} size={self.size}"
        if o in (CMD_CFGI_STE, CMD_CFGI_CD, CMD_CFGI_CD_ALL):
            return f"{self.name} sid={self.sid} leaf={self.leaf}"
        if o == CMD_CFGI_ALL:
            return f"{self.name} sid={self.sid} range={self.range}"
        return self.name


_TLBI_OPS = frozenset((CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA, CMD_TLBI_EL2_VA, CMD_TLBI_S2_IPA, CMD_TLBI_NH_ASID,
                       CMD_TLBI_EL2_ASID, CMD_TLBI_NH_ALL, CMD_TLBI_S12_VMALL, CMD_TLBI_EL2_ALL, CMD_TLBI_NSNH_ALL))
_CFGI_OPS = frozenset((CMD_CFGI_STE, CMD_CFGI_ALL, CMD_CFGI_CD, CMD_CFGI_CD_ALL, CMD_PREFETCH_CONFIG))
_VA_MASK = ((1 << 64) - 1) & ~0xFFF
_IPA_MASK = ((1 << 52) - 1) & ~0xFFF


def decode(dw0: int, dw1: int) -> Command:
    """Decode two command qwords (field positions per IHI 0070 / arm-smmu-v3.h CMDQ_* masks)."""
    op = dw0 & 0xFF
    if op in _TLBI_OPS:
        # NUM dw0[16:12], SCALE dw0[24:20], VMID dw0[47:32], ASID dw0[63:48];
        # LEAF dw1[0], TTL dw1[9:8], TG dw1[11:10], VA dw1[63:12] (IPA dw1[51:12])
        return Command(op, 0, (dw0 >> 12) & 31, (dw0 >> 20) & 31, (dw0 >> 32) & 0xFFFF, (dw0 >> 48) & 0xFFFF,
                       dw1 & 1, (dw1 >> 8) & 3, (dw1 >> 10) & 3,
                       dw1 & (_IPA_MASK if op == CMD_TLBI_S2_IPA else _VA_MASK))
    if op in _CFGI_OPS:
        # SSV dw0[11], SSID dw0[31:12], SID dw0[63:32]; LEAF dw1[0], RANGE dw1[4:0]
        return Command(op, ssv=_f(dw0, 11, 1), ssid=_f(dw0, 12, 20), sid=_f(dw0, 32, 32),
                       leaf=_f(dw1, 0, 1), range=_f(dw1, 0, 5))
    if op == CMD_ATC_INV:
        # GLOBAL dw0[9], SSID dw0[31:12], SID dw0[63:32]; SIZE dw1[5:0], ADDR dw1[63:12]
        return Command(op, ssv=_f(dw0, 11, 1), glob=_f(dw0, 9, 1), ssid=_f(dw0, 12, 20), sid=_f(dw0, 32, 32),
                       size=_f(dw1, 0, 6), addr=dw1 & _VA_MASK)
    return Command(op)
