"""Seed 003 cost figures: map_sg of 512 discontiguous 4K pages at IOVA 0x40001000 writes 511 PTEs in one
level-3 table and 1 in the next, i.e. 64 + 1 = 65 distinct 64-byte lines. Eager cleaning cleans one line
per page (512 line cleans); deferred cleaning cleans each line once (65)."""

from smmufuzz.tools.cost import cost_table


def _rows(variants, pages):
    return {(r["workload"].split()[0], r["variant"]): r for r in cost_table(variants, [pages])}


def test_map_sg_512_eager_cleans_every_line_about_eight_times():
    rows = _rows(["pte-sync:eager", "pte-sync:deferred-fixed", "pte-sync:coherent"], 512)
    eager = rows[("iommu_map_sg", "pte-sync:eager")]
    fixed = rows[("iommu_map_sg", "pte-sync:deferred-fixed")]
    assert (eager["clean_ops"], eager["lines_cleaned"], eager["distinct"]) == (512, 512, 65)
    assert (fixed["lines_cleaned"], fixed["distinct"]) == (65, 65)
    assert fixed["clean_ops"] == 2            # one CMO per level-3 table touched
    assert rows[("iommu_map_sg", "pte-sync:coherent")]["lines_cleaned"] == 0
    assert not eager["finding"] and not fixed["finding"]


def test_plain_map_is_already_batched_in_mainline():
    rows = _rows(["pte-sync:eager", "pte-sync:deferred-fixed"], 512)
    assert rows[("iommu_map", "pte-sync:eager")]["lines_cleaned"] == rows[("iommu_map", "pte-sync:deferred-fixed")]["lines_cleaned"] == 65
