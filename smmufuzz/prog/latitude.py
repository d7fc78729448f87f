"""The SMMU's legal latitude as program configuration: what an implementation may choose that the driver
cannot read from the ID registers (IHI 0070 §4.4.1.1: a TTL hint only narrows the required scope, so an SMMU
may honour it or invalidate every level; which table levels a walk cache holds is the implementation's).

So every SMMU a kernel must support is a program away: the fuzzer varies these in the program header (one byte,
0 = the defaults), the text format prints the ones that differ from the defaults, and the minimiser moves them
back to the defaults. The defaults are the most adversarial choices (TTL honoured, every level cached): under
the max-cache oracle the others keep a subset of the entries, so they can hide a finding but not add one.
"""

WALK_ALL = 0b111                   # the walk cache holds table descriptors read at levels 0..2
LATITUDE_KEYS = ("ttl", "walk_levels")
DEFAULTS = {"ttl_strict": True, "walk_levels": WALK_ALL}
CHOSEN = 0xE0                      # header byte bits 5..7 all set: the byte's other bits choose the latitude


def latitude_text(cfg) -> str:
    """The config keys of `cfg`'s latitude that differ from the defaults, as ", key=value" text."""
    out = ""
    if not cfg.ttl_strict:
        out += ", ttl=ignored"
    if cfg.walk_levels != WALK_ALL:
        out += ", walk_levels=" + ("".join(str(lv) for lv in range(3) if cfg.walk_levels >> lv & 1) or "none")
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
    raise ValueError(f"unknown latitude key {key!r}")


def to_byte(cfg) -> int:
    """The header byte: 0 for the defaults, else CHOSEN | bit 1 TTL ignored | bits 2..4 the walk levels NOT
    cached. A random byte keeps the defaults 7 times in 8: the search stays on the most adversarial SMMU mostly."""
    bits = (0 if cfg.ttl_strict else 2) | ((~cfg.walk_levels & WALK_ALL) << 2)
    return CHOSEN | bits if bits else 0


def from_byte(b: int) -> dict:
    """Config fields from the header byte (to_byte's inverse; any byte is valid)."""
    if b & CHOSEN != CHOSEN:
        return dict(DEFAULTS)
    return {"ttl_strict": not b & 2, "walk_levels": ~(b >> 2) & WALK_ALL}


def hw_fields(cfg) -> dict:
    """The HwConfig fields (reference/smmu.py) the latitude sets."""
    return {"ttl_strict": cfg.ttl_strict, "walk_levels": cfg.walk_levels}
