"""The SMMU's legal latitude as program configuration: what an implementation may choose that the driver
cannot read from the ID registers (IHI 0070 §4.4.1: TTL is a hint; which walk levels are cached and the size
of a TLB entry are the implementation's).

One program is judged on every SMMU a kernel must support: the fuzzer varies these in the program header
(one byte, zero = the defaults), the text format prints the ones that differ from the defaults, and the
minimiser moves them back to the defaults. A choice whose legality we could not verify in the architecture
(UNVERIFIED) is off by default, and a finding that needs it says so.
"""

WALK_ALL = 0b111                   # the walk cache holds table descriptors read at levels 0..2
LATITUDE_KEYS = ("ttl", "walk_levels", "splinter")
DEFAULTS = {"ttl_strict": True, "walk_levels": WALK_ALL, "splinter": False}
UNVERIFIED = {
    "splinter": "needs splinter=1 (an SMMU that caches a block as granule pieces, and whose range TLBI "
                "leaves the pieces outside its range: IHI 0070 §4.4.1 / Arm ARM TLBI RVA* unverified)",
}


def latitude_text(cfg) -> str:
    """The config keys of `cfg`'s latitude that differ from the defaults, as ", key=value" text."""
    out = ""
    if not cfg.ttl_strict:
        out += ", ttl=ignored"
    if cfg.walk_levels != WALK_ALL:
        out += ", walk_levels=" + ("".join(str(lv) for lv in range(3) if cfg.walk_levels >> lv & 1) or "none")
    if cfg.splinter:
        out += ", splinter=1"
    return out


def parse_latitude(key: str, value: str) -> dict:
    """Config fields from one latitude key of the text format; ValueError with the reason."""
    if key == "ttl":
        if value not in ("strict", "ignored"):
            raise ValueError(f"ttl must be strict or ignored, not {value!r}")
        return {"ttl_strict": value == "strict"}
    if key == "walk_levels":
        if value == "none":
            return {"walk_levels": 0}
        if not value or any(ch not in "012" for ch in value):
            raise ValueError(f"walk_levels must be digits of 0..2 or none, not {value!r}")
        return {"walk_levels": sum(1 << int(ch) for ch in set(value))}
    if value not in ("0", "1"):
        raise ValueError(f"{key} must be 0 or 1, not {value!r}")
    return {key: value == "1"}


def to_byte(cfg) -> int:
    """The header byte: bit 0 splinter, bit 1 TTL ignored, bits 2..4 the walk levels NOT cached."""
    return int(cfg.splinter) | (0 if cfg.ttl_strict else 2) | ((~cfg.walk_levels & WALK_ALL) << 2)


def from_byte(b: int) -> dict:
    return {"splinter": bool(b & 1), "ttl_strict": not b & 2, "walk_levels": ~(b >> 2) & WALK_ALL}


def hw_fields(cfg) -> dict:
    """The HwConfig fields (reference/smmu.py) the latitude sets."""
    return {"ttl_strict": cfg.ttl_strict, "walk_levels": cfg.walk_levels, "splinter": cfg.splinter}


def unverified(cfg) -> list[str]:
    """The UNVERIFIED latitude `cfg` turns on."""
    return [k for k in UNVERIFIED if getattr(cfg, k) != DEFAULTS[k]]
