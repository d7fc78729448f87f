"""Splintered TLB entries: an SMMU may cache a block translation as smaller entries, down to the
translation granule (cf. the Cortex-A53 main TLB splitting 1GB blocks). A TLBI naming one address of a block
(TG=0) removes every entry cached from that block: Linux invalidates a block with one TLBI at its base. A range
TLBI (TG!=0, IHI 0070 §4.4.1) removes only the pieces inside its range: UNVERIFIED against the architecture
(see docs/architecture.md), hence HwConfig.splinter is off unless a program's config asks for it.

A TLB key is (tag, va, span, pa, perms, level, pg_shift) for a whole leaf; a splintered rest of a leaf adds
the leaf's (va, span) as an eighth field. The max-cache policy holds every piece of every leaf at once, so the
pieces a range TLBI leaves are kept as at most two runs, one either side of its range.
"""


def leaf_extent(key: tuple) -> tuple[int, int]:
    """(va, span) of the leaf an entry was cached from: what a single-address TLBI matches."""
    return key[7] if len(key) > 7 else (key[1], key[2])


def remainders(key: tuple, lo: int, hi: int) -> list[tuple]:
    """The pieces of entry `key` outside [lo, hi), granule-aligned: what survives a range TLBI that covers
    only part of it (none when the range covers it all)."""
    tag, va, span, pa, perms, level, pgs = key[:7]
    g = 1 << pgs
    cut_lo = max(va, lo & ~(g - 1))
    cut_hi = min(va + span, -(-hi // g) * g)
    whole = leaf_extent(key)
    out = []
    if cut_lo > va:
        out.append((tag, va, cut_lo - va, pa, perms, level, pgs, whole))
    if cut_hi < va + span:
        out.append((tag, cut_hi, va + span - cut_hi, pa + (cut_hi - va), perms, level, pgs, whole))
    return out
