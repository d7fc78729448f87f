"""Variant and target registry: a new variant is one small file and one line here."""

from dataclasses import dataclass

from .os_smmuv3 import SmmuV3Os


@dataclass(frozen=True)
class VariantInfo:
    name: str
    factory: type
    buggy: bool
    family: str
    summary: str


VARIANTS: dict[str, VariantInfo] = {}


def register(name: str, factory, buggy: bool, family: str, summary: str) -> None:
    VARIANTS[name] = VariantInfo(name, factory, buggy, family, summary)


register("smmuv3", SmmuV3Os, False, "spine",
         "mainline core (90c5def10bea + Robin's v2 fill) + io-pgtable-arm + arm-smmu-v3 classic TLBI path")

# target name -> variant names run side by side on the same program
TARGETS: dict[str, list[str]] = {
    "smmuv3": ["smmuv3"],
}
DEFAULT_TARGETS = ["smmuv3"]


class UnknownName(KeyError):
    pass


def variant(name: str) -> VariantInfo:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownName(f"unknown variant {name!r} (known: {', '.join(sorted(VARIANTS))})") from None


def target(name: str) -> list[str]:
    if name in TARGETS:
        return TARGETS[name]
    if name in VARIANTS:
        return [name]
    raise UnknownName(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))}; or any variant name)")
