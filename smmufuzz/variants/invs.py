"""The per-domain invalidation array (arm-smmu-v3.c: arm_smmu_invs_merge/unref/purge, seed 002 v9 and merged).

Entries are sorted by (smmu, type, id[, ssid]); `users` counts the masters using an entry and 0 marks
trash. merge() and purge() build new arrays; unref() works in place on the published array, which
lock-free readers may be walking, so its `users` and `num_invs` updates are preemption points.
All three are generators (see kthread.py); `kthread.drain()` runs them alone.
"""

from dataclasses import dataclass, field, replace

from .kthread import Acquire, Lock, Point, Release

INV_TYPE_S1_ASID, INV_TYPE_S2_VMID, INV_TYPE_S2_VMID_S1_CLEAR, INV_TYPE_ATS, INV_TYPE_ATS_FULL = range(5)
TYPE_NAMES = ("S1_ASID", "S2_VMID", "S2_VMID_S1_CLEAR", "ATS", "ATS_FULL")


@dataclass
class Inv:
    """struct arm_smmu_inv: one invalidation target (an ASID/VMID on an SMMU, or a stream's ATC)."""
    smmu: int
    type: int
    id: int
    ssid: int = 0              # ATS types (union with pgsize in the kernel)
    pgsize: int = 0            # log2 leaf size for range TLBIs (0: no RANGE_INV)
    size_opcode: int = 0
    nsize_opcode: int = 0
    users: int = 0

    def is_ats(self) -> bool:
        """arm_smmu_inv_is_ats()."""
        return self.type in (INV_TYPE_ATS, INV_TYPE_ATS_FULL)

    def text(self) -> str:
        ssid = f" ssid {self.ssid}" if self.is_ats() else ""
        return f"smmu{self.smmu} {TYPE_NAMES[self.type]} {self.id}{ssid} users {self.users}"


@dataclass
class Invs:
    """struct arm_smmu_invs: num_invs may lag behind len(inv) only by tail trash (cut by unref)."""
    inv: list = field(default_factory=list)
    num_invs: int = 0
    num_trashes: int = 0
    has_ats: bool = False
    rwlock: Lock = field(default_factory=lambda: Lock("invs->rwlock", rw=True))

    def text(self) -> str:
        return "[" + ", ".join(e.text() for e in self.inv[:self.num_invs]) + "]"


def invs_alloc(n: int, fair_rwlock: bool = False) -> Invs:
    """arm_smmu_invs_alloc(): zeroed entries, num_invs = n, rwlock initialised."""
    return Invs([Inv(0, 0, 0) for _ in range(n)], n, rwlock=Lock("invs->rwlock", rw=True, fair=fair_rwlock))


@dataclass(frozen=True)
class InvsFlavor:
    """Which posting of the array code: v9 (refcount_t users, free_fn per entry) or the merged one."""
    refcount: bool = True          # users as refcount_t (atomic RMW) vs a plain int with READ_ONCE/WRITE_ONCE
    ssid_cmp: bool = False         # merged: ssid is part of the order for ATS entries
    notify_to_unref: bool = False  # merged: unref reports 1/0 in to_unref.inv[j].users instead of free_fn
    fair_rwlock: bool = False
    writer_irqsave: bool = True    # write_lock_irqsave around the num_invs update (B11 without it)
    purge_err_ptr: bool = False    # v9 as posted: a failed purge allocation returns ERR_PTR(-ENOMEM), not NULL


def inv_cmp(fl: InvsFlavor, a: Inv, b: Inv) -> int:
    """arm_smmu_inv_cmp()."""
    ka = (a.smmu, a.type, a.id, a.ssid if fl.ssid_cmp and a.is_ats() else 0)
    kb = (b.smmu, b.type, b.id, b.ssid if fl.ssid_cmp and b.is_ats() else 0)
    return (ka > kb) - (ka < kb)


def iter_next(invs: Invs, nxt: int) -> int:
    """arm_smmu_invs_iter_next(): the index of the next live entry at or after nxt (num_invs if none)."""
    while nxt < invs.num_invs and not invs.inv[nxt].users:
        nxt += 1
    return nxt


def for_each_cmp(fl: InvsFlavor, left: Invs, right: Invs):
    """arm_smmu_invs_for_each_cmp(): walk two sorted arrays; left skips trash, right is raw."""

    def next_cmp(ni: int, nj: int) -> tuple[int, int, int]:
        i = iter_next(left, ni)
        if i >= left.num_invs:
            return 1, i, nj
        if nj >= right.num_invs:
            return -1, i, nj
        return inv_cmp(fl, left.inv[i], right.inv[nj]), i, nj

    c, i, j = next_cmp(0, 0)
    while i < left.num_invs or j < right.num_invs:
        yield c, i, j
        c, i, j = next_cmp(i + (c <= 0), j + (c >= 0))


def users_of(e) -> tuple:
    """The shared object an entry's `users` is (for the scheduler's access record)."""
    return ("users", id(e))


def num_invs_of(invs) -> tuple:
    """The shared object an array's `num_invs` is."""
    return ("num_invs", id(invs))


class Warn(Exception):
    """A WARN_ON the kernel code would hit (reported as a crash-like finding by the caller's harness)."""


class KernelOops(Exception):
    """A dereference the kernel would fault on."""


ENOMEM = 12


class ErrPtr:
    """ERR_PTR(-errno) (include/linux/err.h): IS_ERR() tells it apart; any dereference oopses."""

    def __init__(self, err: int):
        self.err = err

    def __getattr__(self, name):
        raise KernelOops(f"Unable to handle kernel paging request: ERR_PTR({self.err})->{name}")


def invs_merge(fl: InvsFlavor, invs: Invs, to_merge: Invs, faults=None):
    """arm_smmu_invs_merge(): a new sorted array; shared entries get users + 1, new ones users = 1.
    ERR_PTR(-ENOMEM) if the allocation fails (`faults`: reference/alloc_faults.py, kind "invs")."""
    n = sum(1 for _ in for_each_cmp(fl, invs, to_merge))
    if faults is not None and faults.fails("invs"):
        return ErrPtr(-ENOMEM)
    new = invs_alloc(n, fl.fair_rwlock)
    k = 0
    for c, i, j in for_each_cmp(fl, invs, to_merge):
        if k >= n:
            raise Warn("arm_smmu_invs_merge: more entries than counted (array changed under the merge)")
        if c <= 0:
            e = replace(invs.inv[i])                # *new = invs->inv[i] (loads the shared users)
            yield Point(f"merge: copy {e.text()}", reads=(users_of(invs.inv[i]),))
            if c == 0:
                e.users += 1
        else:
            e = replace(to_merge.inv[j], users=1)
        if k and inv_cmp(fl, new.inv[k - 1], e) == 1:
            raise Warn("arm_smmu_invs_merge: output not sorted")
        new.inv[k] = e
        if e.is_ats():
            new.has_ats = True
        k += 1
    # a short copy leaves zeroed (users 0: trash) entries at the end; the kernel WARNs
    new.num_trashes = 0
    return new


def invs_unref(fl: InvsFlavor, invs: Invs, to_unref: Invs, free_fn=None):
    """arm_smmu_invs_unref(): decrement users in place; entries reaching 0 become trash (free_fn called,
    or, merged, to_unref.inv[j].users set to 0 / 1); tail trash is cut under the write lock."""
    num = 0
    for c, i, j in for_each_cmp(fl, invs, to_unref):
        if c < 0:
            num = i + 1
        elif c == 0:
            e = invs.inv[i]
            if fl.refcount:
                if e.users == 0:            # refcount_dec_and_test() on 0: saturates and WARNs
                    yield Point("unref: refcount underflow")
                    continue
                e.users -= 1                # one atomic RMW
                zero = e.users == 0
                yield Point(f"unref: refcount_dec {e.text()}", reads=(users_of(e),), writes=(users_of(e),))
            else:
                u = e.users                 # READ_ONCE
                yield Point(f"unref: READ_ONCE users={u} of {e.text()}", reads=(users_of(e),))
                if u == 0:                  # merged: WARN_ON(users < 0 after decrement), skip
                    continue
                e.users = u - 1             # WRITE_ONCE
                zero = u - 1 == 0
                yield Point(f"unref: WRITE_ONCE users={u - 1} of {e.text()}", writes=(users_of(e),))
            if fl.notify_to_unref:
                to_unref.inv[j].users = 0 if zero else 1
            if not zero:
                num = i + 1
                continue
            if free_fn is not None:
                yield from free_fn(e)
            invs.num_trashes += 1
        # c > 0: an entry not in invs, or already trash: WARN_ON and go on
    invs.num_trashes -= invs.num_invs - num
    yield Acquire(invs.rwlock, shared=False, irqsave=fl.writer_irqsave)
    invs.num_invs = num
    yield Point(f"unref: num_invs = {num}", writes=(num_invs_of(invs),))
    yield Release(invs.rwlock, shared=False, irqsave=fl.writer_irqsave)


def invs_purge(fl: InvsFlavor, invs: Invs, faults=None):
    """arm_smmu_invs_purge(): a new array without trash, or None if there is nothing to purge or (merged) the
    allocation failed; v9 as posted returns ERR_PTR(-ENOMEM) then."""
    if invs.num_invs < invs.num_trashes:
        return None                       # WARN_ON
    if not invs.num_invs or not invs.num_trashes:
        return None
    if faults is not None and faults.fails("invs"):
        return ErrPtr(-ENOMEM) if fl.purge_err_ptr else None
    new = invs_alloc(invs.num_invs - invs.num_trashes, fl.fair_rwlock)
    k = 0
    i = iter_next(invs, 0)
    while i < invs.num_invs:
        if k < len(new.inv):
            new.inv[k] = replace(invs.inv[i])
            new.has_ats |= new.inv[k].is_ats()
        k += 1
        i = iter_next(invs, i + 1)
    yield Point("purge: copied live entries")
    return new
