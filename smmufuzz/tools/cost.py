"""`smmufuzz cost`: PTE cache-maintenance cost of map and map_sg per variant (seed 003's motivation).

"""

from ..prog.program import Config, Op, Program
from ..exec.runner import run_program

BASE_IOVA = 0x4000_1000      # not 2M aligned: the warm-up unmap keeps its level-3 tables
BASE_PA = 0x8000_0000


def cost_programs(pages: int) -> dict[str, Program]:
    """Each workload runs after a warm-up map+unmap of the same range, so the tables exist already
    (io-pgtable-arm keeps them) and the figures are the leaf-PTE cleans alone."""
    cfg = Config(pg_shift=12, ias=48, stage=1, coherent=False)
    size = pages * 0x1000
    warm = (Op("attach", (0, 0)), Op("map", (0, BASE_IOVA, BASE_PA + 0x1000, size, 3)),
            Op("unmap", (0, BASE_IOVA, size)))
    sg = tuple((BASE_PA + 2 * i * 0x1000, 0x1000) for i in range(pages))   # physically discontiguous
    return {
        f"iommu_map {pages} x 4K": Program(cfg, warm + (Op("map", (0, BASE_IOVA, BASE_PA + 0x1000, size, 3)),)),
        f"iommu_map_sg {pages} x 4K": Program(cfg, warm + (Op("map_sg", (0, BASE_IOVA, sg, 3)),)),
    }


def cost_table(variants: list[str], pages_list: list[int]) -> list[dict]:
    rows = []
    for pages in pages_list:
        for label, prog in cost_programs(pages).items():
            for v in variants:
                run = run_program(prog, [v], figures=True).runs[0]
                f = run.stats["last_op"]
                rows.append({"workload": label, "variant": v, "finding": run.finding.kind if run.finding else "",
                             "clean_ops": f.get("cleans", 0), "lines_cleaned": f.get("lines_cleaned", 0),
                             "redundant": f.get("redundant_cleans", 0), "distinct": f.get("lines_touched", 0)})
    return rows


def format_table(rows: list[dict]) -> str:
    out = [f"{'workload':<22} {'variant':<30} {'clean ops':>9} {'lines cleaned':>13} {'distinct lines':>14} "
           f"{'cleans/line':>11} {'redundant':>9}  finding"]
    for r in rows:
        per = f"{r['lines_cleaned'] / r['distinct']:.2f}" if r["distinct"] else "-"
        out.append(f"{r['workload']:<22} {r['variant']:<30} {r['clean_ops']:>9} {r['lines_cleaned']:>13} "
                   f"{r['distinct']:>14} {per:>11} {r['redundant']:>9}  {r['finding']}")
    return "\n".join(out)


def fq_programs(n: int) -> dict[str, Program]:
    """n dma_map of 4K pages, then n dma_unmap, then the flush-queue timer."""
    cfg = Config(pg_shift=12, ias=48, stage=1, coherent=True)
    ops = [Op("attach", (0, 0))]
    ops += [Op("dma_map", (0, 0x8000_0000 + 0x2000 * k, 0x1000, 3)) for k in range(n)]
    ops += [Op("dma_unmap", (k,)) for k in range(n)]
    ops += [Op("fq_timeout", (0,))]
    return {f"{n} x dma_unmap 4K": Program(cfg, tuple(ops))}


def fq_table(versions: str, n: int) -> list[dict]:
    """Invalidation per dma_unmap (including the flush-queue flushes it causes) in strict vs FQ mode."""
    rows = []
    for label, prog in fq_programs(n).items():
        for v in versions:
            for mode in ("pt", "pt-fq"):
                run = run_program(prog, [f"{mode}:{v}"], figures=True).runs[0]
                po = run.stats["per_op"]
                tot = {k: sum(po.get(o, {}).get(k, 0) for o in ("dma_unmap", "fq_timeout"))
                       for k in ("cmds", "syncs", "inv_pages", "full_flushes")}
                rows.append({"workload": label, "variant": f"{mode}:{v}", "n": n,
                             "finding": run.finding.kind if run.finding else "", **tot})
    return rows


def format_fq(rows: list[dict]) -> str:
    out = [f"{'workload':<22} {'variant':<10} {'inv cmds':>9} {'syncs':>6} {'pages':>6} {'full':>5} "
           f"{'cmds/unmap':>10}  finding"]
    for r in rows:
        out.append(f"{r['workload']:<22} {r['variant']:<10} {r['cmds']:>9} {r['syncs']:>6} {r['inv_pages']:>6} "
                   f"{r['full_flushes']:>5} {r['cmds'] / r['n']:>10.2f}  {r['finding']}")
    return "\n".join(out)
