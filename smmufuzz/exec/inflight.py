"""Ops in flight together (concurrent programs): the IOVA ranges they claim (overlapping concurrent map/unmap
calls are caller misuse, contract.concurrent_overlap), which streams and domains they are changing, and
which domain's intent a stream is judged against meanwhile. Functions of the runner's executor `ex`."""

from ..prog import contract
from ..prog.program import OS_KINDS, Op


def range_of(ex, op: Op):
    """(domain, lo, hi) of the IOVA range a map/unmap-like op changes (None for the others)."""
    k, a = op.kind, op.args
    if k in ("map", "unmap", "unmap_fast"):
        size = a[3] if k == "map" else a[2]
        return a[0], a[1], a[1] + size
    if k == "map_sg":
        return a[0], a[1], a[1] + sum(ln for _pa, ln in a[2])
    if k == "dma_unmap":
        e = ex.handles[a[0]] if a[0] < len(ex.handles) else None
        if e is not None:
            g = ex.granule
            return e[0], e[1] & ~(g - 1), e[1] + e[2] + g
    return None


def claim(ex, i: int, op: Op) -> None:
    """Concurrent map/unmap calls on overlapping IOVA ranges are caller misuse (contract.concurrent_overlap):
    both get an unknown outcome (whatever order they take effect in)."""
    r = range_of(ex, op)
    if r is None:
        return
    clash = contract.concurrent_overlap(ex.claims, i, r)
    if clash:
        ex.conflicts.update(clash | {i})
    ex.claims[i] = r


def release(ex, i: int) -> None:
    """Op i returned: a clash it was part of leaves its range unknown."""
    r = ex.claims.pop(i, None)
    if r is not None and i in ex.conflicts:
        ex.dspec(r[0]).mark_unknown(r[1], r[2], i)


def busy(ex, i: int) -> tuple[set, set]:
    """Streams being attached/detached and domains being changed by ops other than op i."""
    sids, doms = set(), set()
    for j, o in ex.inflight.items():
        if j == i:
            continue
        if o.kind == "attach":
            sids.add(o.args[1])
            doms.add(o.args[0])
        elif o.kind in ("detach", "ats"):
            sids.add(o.args[0])
        elif o.kind == "dma_unmap":
            h = o.args[0]
            if h < len(ex.handles) and ex.handles[h] is not None:
                doms.add(ex.handles[h][0])
        elif o.kind in OS_KINDS:
            doms.add(o.args[0])
    return sids, doms


def unstable(ex, i: int, sid: int) -> bool:
    """Is the stream, or the domain it is attached to, being changed by another op in flight?"""
    sids, doms = busy(ex, i)
    return sid in sids or ex.spec.attached.get(sid) in doms


def resolver(ex, i: int):
    """Which domain's intent a stream's configuration is checked against while other ops are in
    flight: a stream being attached is judged by the domain its STE's tag belongs to, and nothing
    that resolves to a domain another op is changing is judged until that op returns."""
    sids, doms = busy(ex, i)
    if not sids and not doms:
        return None
    tag_dom = {t: d for d, tags in ex.dom_tags.items() for t in tags}
    spec = ex.spec

    def resolve(sid, ste):
        if sid in sids:
            d = tag_dom.get(ste.tag)
            if d is None or d in doms:
                return None
            return spec.domains.get(d), False
        d = spec.attached.get(sid)
        if d in doms:
            return None
        return (spec.domains.get(d) if d is not None else None), True
    return resolve
