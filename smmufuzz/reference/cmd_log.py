"""The log of published commands: (sequence number, command) in publication order (IHI 0070 §4.1: the SMMU
consumes a queue in order), where a run of single-address invalidations a stride apart is one record until
read. A driver's per-granule loop is that long: arm_smmu_tlb_inv_range_s1() writes 262,144 registers for a
1 GiB range at 4K, __arm_smmu_tlb_inv_range() without RANGE_INV queues 512 commands for a 2 MiB block."""

from itertools import islice


class _Run:
    """`count` commands like `cmd` at cmd.addr + k * stride, numbered first + k * step."""

    __slots__ = ("first", "step", "head", "tail", "addr", "stride", "count", "kind")

    def __init__(self, first: int, step: int, cmd: tuple, at: int, stride: int, count: int):
        self.first, self.step, self.stride, self.count, self.kind = first, step, stride, count, type(cmd)
        self.head, self.addr, self.tail = tuple(cmd[:at]), cmd[at], tuple(cmd[at + 1:])

    def __iter__(self):
        new, kind, head, tail, a, s, first, step = (tuple.__new__, self.kind, self.head, self.tail, self.addr,
                                                    self.stride, self.first, self.step)
        for k in range(self.count):
            yield first + k * step, new(kind, head + (a + k * s,) + tail)

    def __reduce__(self):
        cmd = tuple.__new__(self.kind, self.head + (self.addr,) + self.tail)
        return _Run, (self.first, self.step, cmd, len(self.head), self.stride, self.count)


def _expand(items: list, i: int):
    """The (seq, command) pairs of items[i:], runs expanded."""
    for it in islice(items, i, None):
        if it.__class__ is _Run:
            yield from it
        else:
            yield it


class CmdLog:
    """A list of (seq, command) as far as readers see (iteration, len, a slice from a position, equality),
    appended to one command at a time (`append`, `extend`: list's own) or a run at a time (`add_run`)."""

    __slots__ = ("_items", "_extra", "append", "extend")

    def __init__(self, items=()):
        self._items: list = []
        self._extra = 0                     # commands beyond one per record (the runs' others)
        self.append = self._items.append
        self.extend = self._items.extend
        for it in items:
            self._items.append(it)
            if it.__class__ is _Run:            # a run is never changed once made: copies may share it
                self._extra += it.count - 1

    def add_run(self, first: int, step: int, cmd: tuple, at: int, stride: int, count: int) -> None:
        """`count` commands like `cmd` (a command tuple whose field `at` is the address) at cmd[at] + k * stride,
        numbered first + k * step."""
        if count == 1:
            self.append((first, cmd))
            return
        self._items.append(_Run(first, step, cmd, at, stride, count))
        self._extra += count - 1

    def __len__(self) -> int:
        return len(self._items) + self._extra

    def __iter__(self):
        return _expand(self._items, 0)

    def __getitem__(self, key: slice) -> list:
        """The commands from a position on (a slice with step 1), found from the end: a reader takes what an
        op published since its start."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("CmdLog supports slices with step 1 only")
        start, stop, _step = key.indices(len(self))
        if start >= stop:
            return []
        items, at, i = self._items, len(self), len(self._items)
        while at > start:
            i -= 1
            it = items[i]
            at -= it.count if it.__class__ is _Run else 1
        return list(islice(_expand(items, i), start - at, stop - at))

    def clear(self) -> None:
        self._items.clear()
        self._extra = 0

    def __eq__(self, other) -> bool:
        if isinstance(other, (CmdLog, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None

    def __reduce__(self):
        return CmdLog, (list(self._items),)

    def __repr__(self) -> str:
        return f"CmdLog({list(self)!r})"
