"""A Hypothesis stateful machine over the program's ops (a peer baseline for the benchmark).

Each Hypothesis example picks a configuration, then up to MAX_OPS - 1 rule steps, one op each, with the
codec's value anchors (granule/block boundaries, size shapes) and IOVAs mapped earlier in the example;
at teardown the Program is run on the variants. Hypothesis is a test-only dependency: imported lazily.
"""

import time

from ..prog.codec import IAS_TABLE, M64, _Ctx
from ..prog.ops import PROT_CODES
from ..prog.program import EVICT_WHAT, MAX_OPS, NUM_SIDS, Config, Op, Program
from ..fuzz.fuzz_target import control_shows
from ..fuzz.random_search import Search
from ..exec.runner import run_program


class _Stop(Exception):
    """Ends the Hypothesis run: a finding, or the time cap."""


def _machine(variants: list[str], policy: str, deadline: float, state: dict, control: list[str] | None):
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

    dom = st.integers(0, 1)
    sid = st.integers(0, NUM_SIDS - 1)
    prot = st.sampled_from(sorted(set(PROT_CODES)))
    room = precondition(lambda m: len(m.ops) < MAX_OPS)

    class ProgramMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.cfg = Config()
            self.ctx = _Ctx(self.cfg)
            self.ops: list[Op] = []
            self.live: list[int] = []
            self.dma_maps = 0

        def _addr(self, data, anchors, live=()):
            if live and data.draw(st.booleans()):
                return data.draw(st.sampled_from(live))
            return (data.draw(st.sampled_from(anchors)) + data.draw(st.integers(0, 15)) * self.ctx.g) & M64

        def iova(self, data):
            return self._addr(data, self.ctx.iova_anchors, self.live)

        def pa(self, data):
            return self._addr(data, self.ctx.pa_anchors)

        def size(self, data):
            return self.ctx.size_of(data.draw(st.integers(0, 0xBF)))

        @initialize(granule=st.sampled_from((12, 14, 16)), ias=st.sampled_from(IAS_TABLE), stage=st.integers(1, 2),
                    coherent=st.booleans(), range_inv=st.booleans(), ats=st.booleans(), e2h=st.booleans(),
                    attach=st.booleans())
        def config(self, granule, ias, stage, coherent, range_inv, ats, e2h, attach):
            self.cfg = Config(pg_shift=granule, ias=ias, stage=stage, coherent=coherent, range_inv=range_inv,
                              ats=ats, e2h=e2h and stage == 1)
            self.ctx = _Ctx(self.cfg)
            if attach:
                self.ops.append(Op("attach", (0, 0)))

        @room
        @rule(d=dom, data=st.data(), p=prot)
        def map(self, d, data, p):
            iova = self.iova(data)
            self.ops.append(Op("map", (d, iova, self.pa(data), self.size(data), p)))
            self.live.append(iova)

        @room
        @rule(d=dom, data=st.data())
        def unmap(self, d, data):
            self.ops.append(Op("unmap", (d, self.iova(data), self.size(data))))

        @room
        @rule(d=dom, data=st.data(), g=st.integers(0, 1))
        def unmap_fast(self, d, data, g):
            self.ops.append(Op("unmap_fast", (d, self.iova(data), self.size(data), g)))

        @room
        @rule(d=dom, g=st.integers(0, 1))
        def sync(self, d, g):
            self.ops.append(Op("sync", (d, g)))

        @room
        @rule(d=dom, data=st.data(), n=st.integers(1, 4), p=prot)
        def map_sg(self, d, data, n, p):
            iova = self.iova(data)
            sg = tuple((self.pa(data), self.size(data)) for _ in range(n))
            self.ops.append(Op("map_sg", (d, iova, sg, p)))
            self.live.append(iova)

        @room
        @rule(d=dom)
        def flush_all(self, d):
            self.ops.append(Op("flush_all", (d,)))

        @room
        @rule(d=dom, s=sid)
        def attach(self, d, s):
            self.ops.append(Op("attach", (d, s)))

        @room
        @rule(s=sid)
        def detach(self, s):
            self.ops.append(Op("detach", (s,)))

        @room
        @rule(s=sid, on=st.booleans())
        def ats(self, s, on):
            self.ops.append(Op("ats", (s, on)))

        @room
        @rule(s=sid, data=st.data())
        def fill(self, s, data):
            self.ops.append(Op("fill", (s, self.iova(data))))

        @room
        @rule(s=sid, data=st.data(), write=st.booleans())
        def dma(self, s, data, write):
            self.ops.append(Op("dma", (s, self.iova(data), write)))

        @room
        @rule(what=st.sampled_from(EVICT_WHAT), n=st.integers(0, 255))
        def evict(self, what, n):
            self.ops.append(Op("evict", (what, n)))

        @room
        @rule(n=st.integers(-1, 254))
        def writeback(self, n):
            self.ops.append(Op("writeback", (n,)))

        @room
        @rule(s=sid, data=st.data())
        def ats_req(self, s, data):
            self.ops.append(Op("ats_req", (s, self.iova(data))))

        @room
        @rule(d=dom, data=st.data(), p=prot)
        def dma_map(self, d, data, p):
            self.ops.append(Op("dma_map", (d, self.pa(data), self.size(data), p)))
            self.dma_maps += 1

        @room
        @precondition(lambda m: m.dma_maps > 0)
        @rule(data=st.data())
        def dma_unmap(self, data):
            self.ops.append(Op("dma_unmap", (data.draw(st.integers(0, self.dma_maps - 1)),)))

        @room
        @rule(d=dom)
        def fq_timeout(self, d):
            self.ops.append(Op("fq_timeout", (d,)))

        @room
        @rule(d=dom)
        def dma_enable_fq(self, d):
            self.ops.append(Op("dma_enable_fq", (d,)))

        def teardown(self):
            if "finding" in state:
                raise _Stop("finding")        # Hypothesis replaying the failing example: stay failed
            if time.perf_counter() >= deadline:
                raise _Stop("time cap")
            prog = Program(self.cfg, tuple(self.ops))
            res = run_program(prog, variants, policy)
            state["execs"] += 1
            if res.findings and not (control and control_shows(prog, res.findings, control, policy)):
                state["finding"] = res.findings[0]
                state["at"] = time.perf_counter()
                state["execs_at"] = state["execs"]
                state["program"] = prog
                raise _Stop("finding")

    return ProgramMachine


def hypothesis_search(variants: list[str], seconds: float, seed: int, policy: str = "max-cache",
                      control: list[str] | None = None) -> "Search":
    """Run the machine (generate phase only, seeded, no database, no deadline) until a finding (that
    the `control` variants, if any, do not also give) or `seconds` pass (a Search)."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as hseed
    from hypothesis.stateful import run_state_machine_as_test

    state = {"execs": 0}
    t0 = time.perf_counter()
    machine = hseed(seed)(_machine(variants, policy, t0 + seconds, state, control))
    opts = settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
                    stateful_step_count=MAX_OPS - 1, suppress_health_check=list(HealthCheck),
                    print_blob=False, report_multiple_bugs=False)
    try:
        run_state_machine_as_test(machine, settings=opts)
    except Exception:   # _Stop, or Hypothesis' wrapping of it
        pass
    if "finding" in state:
        return Search(state["finding"], state["at"] - t0, state["execs_at"], state["program"])
    return Search(None, time.perf_counter() - t0, state["execs"])
