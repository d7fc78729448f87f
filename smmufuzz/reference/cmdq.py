"""SMMUv3 command encodings as the hardware decodes them (IHI 0070 §4; fields as in Linux arm-smmu-v3.h)."""

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Command:
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


def decode(dw0: int, dw1: int) -> Command:
    """Decode two command qwords (field positions per IHI 0070 / arm-smmu-v3.h CMDQ_* masks)."""
    op = dw0 & 0xFF
    if op in (CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA, CMD_TLBI_EL2_VA, CMD_TLBI_S2_IPA, CMD_TLBI_NH_ASID,
              CMD_TLBI_EL2_ASID, CMD_TLBI_NH_ALL, CMD_TLBI_S12_VMALL, CMD_TLBI_EL2_ALL, CMD_TLBI_NSNH_ALL):
        addr_mask = ((1 << 52) - 1) if op == CMD_TLBI_S2_IPA else ((1 << 64) - 1)
        return Command(op, num=_f(dw0, 12, 5), scale=_f(dw0, 20, 5), vmid=_f(dw0, 32, 16),
                       asid=_f(dw0, 48, 16), leaf=_f(dw1, 0, 1), ttl=_f(dw1, 8, 2), tg=_f(dw1, 10, 2),
                       addr=dw1 & addr_mask & ~0xFFF)
    if op in (CMD_CFGI_STE, CMD_CFGI_ALL, CMD_CFGI_CD, CMD_CFGI_CD_ALL, CMD_PREFETCH_CONFIG):
        return Command(op, ssv=_f(dw0, 11, 1), ssid=_f(dw0, 12, 20), sid=_f(dw0, 32, 32),
                       leaf=_f(dw1, 0, 1), range=_f(dw1, 0, 5))
    if op == CMD_ATC_INV:
        return Command(op, ssv=_f(dw0, 11, 1), glob=_f(dw0, 9, 1), ssid=_f(dw0, 12, 20), sid=_f(dw0, 32, 32),
                       size=_f(dw1, 0, 6), addr=dw1 & ~0xFFF)
    return Command(op)
