"""The arm-smmu-v3-test.c invalidation-array KUnit vectors (kernel-semantics §9), v9 steps 1-7 and the
extended (merged) steps 8-11, run on smmufuzz.variants.invs."""

import pytest

from smmufuzz.variants.invs import (INV_TYPE_ATS, INV_TYPE_S2_VMID, INV_TYPE_S2_VMID_S1_CLEAR, Inv, Invs,
                                    InvsFlavor, invs_alloc, invs_merge, invs_purge, invs_unref)
from smmufuzz.variants.kthread import drain

V9 = InvsFlavor(refcount=True)
MERGED = InvsFlavor(refcount=False, ssid_cmp=True, notify_to_unref=True)


def static(*entries) -> Invs:
    """A static input array as the KUnit test declares it: users 0."""
    inv = [Inv(0, t, i, ssid=s) for t, i, s in entries]
    return Invs(inv, len(inv))


INVS1 = lambda: static((INV_TYPE_S2_VMID, 1, 0), (INV_TYPE_S2_VMID_S1_CLEAR, 1, 0), (INV_TYPE_ATS, 3, 0))
INVS2 = lambda: static((INV_TYPE_S2_VMID, 1, 0), (INV_TYPE_ATS, 4, 0), (INV_TYPE_ATS, 5, 0))
INVS3 = lambda: static((INV_TYPE_S2_VMID, 1, 0), (INV_TYPE_ATS, 5, 0), (INV_TYPE_ATS, 6, 0))
INVS4 = lambda: static((INV_TYPE_ATS, 10, 1), (INV_TYPE_ATS, 10, 3), (INV_TYPE_ATS, 12, 1))
INVS5 = lambda: static((INV_TYPE_ATS, 10, 2), (INV_TYPE_ATS, 10, 3), (INV_TYPE_ATS, 12, 2))


def verify(invs: Invs, ids, users, trashes=None, ssids=None):
    """arm_smmu_v3_test_invs_verify(): num_invs, and per index id and users (and ssid, num_trashes)."""
    assert invs.num_invs == len(ids)
    assert [e.id for e in invs.inv[:invs.num_invs]] == list(ids)
    assert [e.users for e in invs.inv[:invs.num_invs]] == list(users)
    if ssids is not None:
        assert [e.ssid for e in invs.inv[:invs.num_invs]] == list(ssids)
    if trashes is not None:
        assert invs.num_trashes == trashes


@pytest.mark.parametrize("fl", [V9, MERGED], ids=["v9", "merged"])
def test_steps_1_to_7(fl):
    i1, i2, i3 = INVS1(), INVS2(), INVS3()
    a = invs_alloc(0)
    verify(a, [], [], 0)
    b = drain(invs_merge(fl, a, i1))                                   # step 1
    verify(b, [1, 1, 3], [1, 1, 1], 0)
    assert [e.type for e in b.inv] == [INV_TYPE_S2_VMID, INV_TYPE_S2_VMID_S1_CLEAR, INV_TYPE_ATS]
    a = drain(invs_merge(fl, b, i2))                                   # step 2
    verify(a, [1, 1, 3, 4, 5], [2, 1, 1, 1, 1], 0)
    drain(invs_unref(fl, a, i2))                                       # step 3: tail trash cut
    verify(a, [1, 1, 3], [1, 1, 1], 0)
    b = drain(invs_merge(fl, a, i3))                                   # step 4
    verify(b, [1, 1, 3, 5, 6], [2, 1, 1, 1, 1], 0)
    drain(invs_unref(fl, b, i1))                                       # step 5: middle trash stays
    verify(b, [1, 1, 3, 5, 6], [1, 0, 0, 1, 1], 2)
    a = drain(invs_purge(fl, b))                                       # step 6
    verify(a, [1, 5, 6], [1, 1, 1], 0)
    drain(invs_unref(fl, a, i3))                                       # step 7
    verify(a, [], [], 0)
    assert drain(invs_purge(fl, a)) is None                            # nothing left to purge


def test_steps_8_to_11_need_ssid_in_the_compare():
    fl = MERGED
    a = invs_alloc(0)
    b = drain(invs_merge(fl, a, INVS4()))                             # step 8
    verify(b, [10, 10, 12], [1, 1, 1], 0, ssids=[1, 3, 1])
    i5 = INVS5()
    a = drain(invs_merge(fl, b, i5))                                  # step 9
    verify(a, [10, 10, 10, 12, 12], [1, 1, 2, 1, 1], 0, ssids=[1, 2, 3, 1, 2])
    drain(invs_unref(fl, a, i5))                                      # step 10
    verify(a, [10, 10, 10, 12], [1, 0, 1, 1], 1, ssids=[1, 2, 3, 1])
    assert [e.users for e in i5.inv] == [0, 1, 0]   # merged: to_unref reports which entries became trash
    b = drain(invs_purge(fl, a))                                      # step 11
    verify(b, [10, 10, 12], [1, 1, 1], 0, ssids=[1, 3, 1])


def test_v9_compare_without_ssid_gets_steps_9_to_11_wrong():
    """kernel-semantics §9: without ssid in the compare, the extended expectations do not hold."""
    fl = V9
    b = drain(invs_merge(fl, invs_alloc(0), INVS4()))
    a = drain(invs_merge(fl, b, INVS5()))
    assert [e.users for e in a.inv[:a.num_invs]] != [1, 1, 2, 1, 1]


def test_unref_free_fn_sees_each_entry_reaching_zero():
    fl = V9
    a = drain(invs_merge(fl, invs_alloc(0), INVS1()))
    freed = []

    def free_fn(e):
        freed.append((e.type, e.id))
        yield from ()
    drain(invs_unref(fl, a, INVS1(), free_fn))
    assert freed == [(INV_TYPE_S2_VMID, 1), (INV_TYPE_S2_VMID_S1_CLEAR, 1), (INV_TYPE_ATS, 3)]
    assert a.num_invs == 0 and a.num_trashes == 0
