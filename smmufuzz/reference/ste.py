"""Stream table entries as the SMMU decodes them (STE + its single CD folded in; IHI 0070 §5.2, §5.4)."""

from dataclasses import dataclass

from .lpae import Geometry


@dataclass(frozen=True, slots=True)
class Cd:
    """A stage-1 context descriptor, kept decoded: ASID, TTB0 and the TCR geometry (IHI 0070 §5.4); not `valid`:
    one that translates nothing (V=0, or TTB0 walks disabled)."""
    asid: int
    ttb: int
    geo: object
    valid: bool = True


@dataclass(frozen=True, slots=True)
class Ste:
    """One STE: Config, translation context (ASID/VMID, TTB, TCR geometry) and EATS."""
    config: str = "abort"          # abort | bypass | s1 | s2
    asid: int = 0
    vmid: int = 0
    ttb: int = 0
    geo: Geometry | None = None    # the table format and its shape (any object with the format protocol)
    eats: bool = False
    el2: bool = False              # StreamWorld EL2-E2H (Linux FEAT_E2H): EL2 TLBI commands apply
    s1cdmax: int = 0               # S1CDMax: a CD table of 2^s1cdmax CDs, SSID 0 the one folded in (substream.py)

    @property
    def translates(self) -> bool:
        return self.config in ("s1", "s2")

    @property
    def stage(self) -> int:
        return 2 if self.config == "s2" else 1

    @property
    def tag(self) -> tuple:
        """TLB tag: (world, vmid, asid); asid -1 for stage-2-only entries."""
        if self.config == "s2":
            return ("s2", self.vmid, -1)
        if self.el2:
            return ("el2", 0, self.asid)
        return ("nh", self.vmid, self.asid)

    def text(self) -> str:
        if not self.translates:
            return self.config
        return (f"{self.config} asid={self.asid} vmid={self.vmid} ttb={self.ttb:#x} "
                f"{self.geo.name}: {self.geo.text()} eats={int(self.eats)}")
