"""CPU stores to coherent table memory, as the SMMU may observe them: Arm's weakly ordered memory model
(Arm ARM B2.3; IHI 0070 §3.16.1: a coherent SMMU's table walks observe memory as another observer does).

A store is visible to the CPU at once but reaches the SMMU at some later point the CPU does not choose.
The kernel orders stores with `dma_wmb()` (stores before it are observed before stores after it:
arm_lpae_install_table()'s "Ensure the table itself is visible before its PTE can be") and completes them
with `wmb()` (arm_lpae_map_pages()'s "Synchronise all PTE updates for the new mapping before there's a
chance for anything to kick off a table walk") or by publishing a command (the dma_wmb() before the
command queue's producer index moves, which arm_smmu_tlb_inv_context() relies on).

So the stores since the last completion form epochs separated by dma_wmb(). A legal SMMU view shows every
store of the epochs before some epoch j, any subset of epoch j, and nothing later. The adversarial views
kept here are, per epoch j holding a non-zero store, "epochs before j, and every non-zero store of epoch j":
a pointer published while the zeroing of what it points to is still on its way. A view with more zero
stores visible reaches only fewer translations, so these views are what max-cache needs. Not modelled: one
CPU's dma_wmb() orders only that CPU's stores (here it orders every CPU's, a stronger order: fewer views).
"""

MAX_PENDING = 1 << 14      # more stores than this complete the oldest first (a store may become visible early)


class StoreBuffer:
    """The stores (address, value before, value) not yet known to be visible to the SMMU, in program order,
    cut into dma_wmb() epochs."""

    __slots__ = ("stores", "cuts", "on_complete", "_gen", "_memo")

    def __init__(self):
        self.stores: list[tuple[int, int, int]] = []
        self.cuts: list[int] = [0]          # index in `stores` where each epoch starts
        self.on_complete = None             # called before pending stores become visible (the SMMU's last look)
        self._gen = 0                       # completions so far
        self._memo: tuple = (None, [])      # (key, views): the CPU's words at these addresses change only by
        #                                     recorded stores, so the views change only when the buffer does

    def record(self, addr: int, old: int, new: int) -> None:
        """One CPU store that changed a word."""
        self.stores.append((addr, old, new))
        if len(self.stores) > MAX_PENDING:
            self.complete()

    def dma_wmb(self) -> None:
        """dma_wmb(): later stores are observed after every store so far."""
        if self.cuts[-1] != len(self.stores):
            self.cuts.append(len(self.stores))

    def complete(self) -> bool:
        """wmb() or a command publication: every store so far is visible. Returns whether any was pending."""
        if not self.stores:
            return False
        if self.on_complete is not None:
            self.on_complete()
        self.stores.clear()
        self.cuts = [0]
        self._gen += 1
        return True

    def views(self, cpu: dict) -> list[dict[int, int]]:
        """The adversarial partial views (see the module docstring), each as {address: value the SMMU sees}
        for the addresses where it differs from `cpu` (the CPU's view, every store visible). Views that differ
        only by zeros (entries not visible yet) are left out: they reach no translation the CPU's view lacks."""
        key = (self._gen, len(self.stores), len(self.cuts))
        if self._memo[0] == key:
            return self._memo[1]
        stores, cuts = self.stores, self.cuts + [len(self.stores)]
        committed: dict[int, int] = {}
        for a, old, _ in stores:
            committed.setdefault(a, old)
        seen = dict(committed)              # what the SMMU sees after the epochs before j
        out = []
        for j in range(len(cuts) - 1):
            epoch = stores[cuts[j]:cuts[j + 1]]
            if any(new for _, _, new in epoch):
                view = dict(seen)
                for a, _, new in epoch:
                    if new:
                        view[a] = new
                diff = {a: v for a, v in view.items() if cpu.get(a, 0) != v}
                if any(diff.values()):      # only zeros where the CPU has entries: no translation the CPU's lacks
                    out.append(diff)
            for a, _, new in epoch:
                seen[a] = new
        self._memo = (key, out)
        return out
