"""DistributedDataParallel: every rank computes gradients on its own batch; after backward each
parameter's `.grad` holds the mean over ranks, identical on every rank, so identical optimizers
keep identical parameters.

Gradients travel in buckets: the parameters, in reverse registration order (the order backward
produces their gradients), are packed by dtype into flat buffers of about `bucket_cap_mb`, and
each buffer is summed over ranks by one in-place `Allreduce`, then scaled by 1/world_size.
Buckets are always reduced in the same order on every rank, as MPI's collectives require.

How the gradients are caught. The engine hands each leaf its gradient at the end of the backward
walk, calling the leaf's tensor hooks there, in the order the gradients were completed. DDP
registers such a hook on each parameter: it copies the gradient into its bucket, and the hook
that completes a bucket reduces it. Nothing else runs after these hooks, so by default there is
nothing to overlap communication with, and one blocking `Allreduce` per bucket is the fastest.

With `overlap=True` DDP catches gradients inside the walk instead: a forward pre-hook on each
module that owns parameters hands the module's forward an identity view of each parameter (as
`torch.func.functional_call` swaps parameters), made just before the layer uses it; the identity
node is then walked right after the layer's backward, with the parameter's complete gradient. A
completed bucket starts a non-blocking `Iallreduce` while backward goes on with the layers below;
the leaf hooks at the end wait for it. docs/distributed.md measures whether that pays (on one
shared 2-core machine it does not: MPICH progresses a non-blocking collective only inside MPI
calls, and there is no idle core to move the bytes).
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any, Iterable, Iterator

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..nn import Module
from ..tensor import Tensor, _wrap
from .comm import broadcast_parameters, comm, get_world_size, init, mpi


class _Slot:
    """One parameter's place in its bucket's flat buffer."""

    __slots__ = ("param", "name", "bucket", "offset", "size", "shape", "view", "collected",
                 "deferred", "delivered", "uses", "arrived", "norm2")

    def __init__(self, param: Tensor, name: str, bucket: "_Bucket", offset: int):
        self.param, self.name, self.bucket, self.offset = param, name, bucket, offset
        self.size, self.shape = param.data.size, param.data.shape


class _Bucket:
    __slots__ = ("slots", "size", "dtype", "buf", "pending", "request", "done")

    def __init__(self, dtype: np.dtype):
        self.slots: list[_Slot] = []
        self.size, self.dtype = 0, dtype


def make_buckets(named_params: Iterable[tuple[str, Tensor]], bucket_cap_mb: float) -> list:
    """Parameters in reverse order, grouped by dtype into buckets of at most `bucket_cap_mb` MB
    (a single larger parameter gets a bucket of its own)."""
    cap = max(1, int(bucket_cap_mb * 2 ** 20))
    open_buckets: dict = {}
    buckets: list[_Bucket] = []
    for name, p in reversed(list(named_params)):
        dtype = p.data.dtype
        b = open_buckets.get(dtype)
        if b is None or (b.size and (b.size + p.data.size) * dtype.itemsize > cap):
            b = open_buckets[dtype] = _Bucket(dtype)
            buckets.append(b)
        b.slots.append(_Slot(p, name, b, b.size))
        b.size += p.data.size
    return buckets


def all_reduce_gradients(params: Module | Iterable[Tensor], bucket_cap_mb: float = 25.0) -> None:
    """Replace each parameter's `.grad` by its mean over all ranks: one blocking `Allreduce` per
    bucket. A parameter without a gradient counts as zeros (and gets the mean).

    This is what `fit` runs after each backward when launched by mpiexec; for a loop of your
    own, `DistributedDataParallel` does the same automatically.

    >>> loss.backward()
    >>> rg.distributed.all_reduce_gradients(model)
    >>> optimizer.step()
    """
    named = (params.named_parameters() if isinstance(params, Module)
             else ((str(i), p) for i, p in enumerate(params)))
    world = get_world_size()
    if world <= 1:
        return
    c, MPI = comm(), mpi()
    for b in make_buckets([(n, p) for n, p in named if p.requires_grad], bucket_cap_mb):
        buf = np.empty(b.size, b.dtype)
        for s in b.slots:
            view = buf[s.offset:s.offset + s.size]
            if s.param.grad is None:
                view[...] = 0
            else:
                view[...] = s.param.grad.data.reshape(-1)
        c.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        buf *= b.dtype.type(1 / world)
        for s in b.slots:
            s.param.grad = _wrap(buf[s.offset:s.offset + s.size].reshape(s.shape))


class _Ready(Function):
    """Identity; its node is walked once the gradient of the parameter it views is complete."""

    returns_view = True

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        return g


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over MPI: call it as the module; after
    `loss.backward()` every parameter's `.grad` is the mean over ranks (bucketed all-reduce).

    At construction the parameters and buffers are broadcast from rank 0, so every rank starts
    from the same weights; with `broadcast_buffers` (the default, as PyTorch) the buffers, e.g.
    BatchNorm's running statistics, are broadcast again before each forward in training mode. Every parameter that requires grad must receive a gradient on every
    step (freeze unused ones with `requires_grad_(False)` before wrapping). `no_sync()` skips the
    all-reduce, for gradient accumulation. `overlap=True` starts each bucket's reduction during
    backward (see the module docstring). In a world of one, nothing is installed.

    Launch: `mpiexec -n 2 python -m mpi4py train.py`.

    >>> rg.distributed.init()
    >>> model = DistributedDataParallel(build_model())
    >>> opt = rg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> for x, y in loader:               # a DataLoader with a DistributedSampler
    ...     opt.zero_grad()
    ...     F.cross_entropy(model(x), y).backward()    # .grad: averaged over ranks
    ...     opt.step()
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, overlap: bool = False,
                 broadcast: bool = True, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        self.module = module
        init()
        self.world_size = get_world_size()
        self.overlap = bool(overlap)
        if broadcast:
            broadcast_parameters(module)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._buckets = make_buckets(named, bucket_cap_mb) if self.world_size > 1 else []
        self._sync_buffers = [b for b in module.buffers() if b is not None] \
            if broadcast_buffers and self.world_size > 1 else []
        self._handles: list = []
        self._sync = True
        self._started = False     # some gradient of the current step has been collected
        self._next = 0            # index of the next bucket to reduce
        self._finished = 0        # buckets reduced and scaled
        self._inflight: list = []
        self._swapped: list = []
        for b in self._buckets:
            for s in b.slots:
                self._handles.append(s.param.register_hook(partial(self._leaf_hook, s)))
        if self.overlap and self._buckets:
            slot_of = {id(s.param): s for b in self._buckets for s in b.slots}
            for m in module.modules():
                own = [(name, slot_of[id(p)]) for name, p in m._parameters.items()
                       if p is not None and id(p) in slot_of]
                if own:
                    self._handles.append(m.register_forward_pre_hook(partial(self._swap_in, own)))
                    self._handles.append(m.register_forward_hook(self._swap_out))
        self._begin_step()

    @property
    def bucket_sizes(self) -> list[int]:
        """Elements per bucket, in reduction order."""
        return [b.size for b in self._buckets]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._buckets:
            self._check_finished()
            self._begin_step()
        if self._sync_buffers and self.training:
            broadcast_parameters(self._sync_buffers)
        if not self.overlap:
            return self.module(*args, **kwargs)
        try:
            return self.module(*args, **kwargs)
        finally:  # a forward that raised must not leave identity views in the modules
            self._restore()

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside only accumulate local gradients; the first backward after it
        reduces the accumulated `.grad`.

        >>> with model.no_sync():
        ...     loss_fn(model(x1), y1).backward()
        >>> loss_fn(model(x2), y2).backward()         # reduces the sum of both
        """
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def remove_hooks(self) -> None:
        """Take DDP's hooks off the wrapped module's parameters and submodules."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._buckets = []

    # -- the step --------------------------------------------------------------------------------
    def _begin_step(self) -> None:
        for b in self._buckets:
            b.buf = np.empty(b.size, b.dtype)
            b.pending, b.request, b.done = len(b.slots), None, False
            for s in b.slots:
                s.view = b.buf[s.offset:s.offset + s.size].reshape(s.shape)
                s.collected = s.deferred = s.delivered = False
                s.uses = s.arrived = 0
        self._next, self._finished, self._started, self._inflight = 0, 0, False, []

    def _check_finished(self) -> None:
        if self._started and self._finished < len(self._buckets):
            missing = [s.name for b in self._buckets for s in b.slots if not s.collected]
            raise RuntimeError(
                f"DistributedDataParallel: the last backward gave no gradient to "
                f"{len(missing)} parameter(s) {missing[:8]}, so their buckets were never "
                "all-reduced and the ranks may now differ. Every parameter that requires grad "
                "must take part in the loss on every step: freeze unused ones with "
                "requires_grad_(False) before wrapping the model.")

    def _collect(self, s: _Slot, g: np.ndarray, accumulate: bool) -> None:
        if accumulate:
            s.view += g
        elif s.param.grad is None:
            s.view[...] = g
        else:  # accumulated locally under no_sync: reduce the whole .grad, as PyTorch does
            np.add(s.param.grad.data, g, out=s.view)

    def _mark_collected(self, s: _Slot, wait: bool) -> None:
        s.collected = True
        s.bucket.pending -= 1
        if s.bucket.pending == 0:
            self._launch(wait)

    def _launch(self, wait: bool) -> None:
        """Reduce every complete bucket whose predecessors are launched: buckets go in order."""
        c, MPI = comm(), mpi()
        buckets = self._buckets
        while self._next < len(buckets) and buckets[self._next].pending == 0:
            b = buckets[self._next]
            self._next += 1
            if wait:
                if b.request is None:
                    c.Allreduce(MPI.IN_PLACE, b.buf, op=MPI.SUM)
                self._finish(b)
            else:
                b.request = c.Iallreduce(MPI.IN_PLACE, b.buf, op=MPI.SUM)
                self._inflight.append(b.request)

    def _finish(self, b: _Bucket) -> None:
        if b.request is not None:
            b.request.Wait()
        b.buf *= b.dtype.type(1 / self.world_size)
        b.done = True
        self._finished += 1
        for s in b.slots:
            if s.deferred:  # its local gradient was delivered before the bucket was complete
                if s.param.grad is None:
                    s.param.grad = _wrap(s.view)
                else:
                    s.param.grad.data = s.view

    def _leaf_hook(self, s: _Slot, grad: Tensor) -> Tensor | None:
        """End of the walk: the parameter's gradient; returns the mean over ranks when ready."""
        if not self._sync:
            return None
        if s.delivered:            # a new backward that did not go through forward()
            self._check_finished()
            self._begin_step()
        s.delivered = self._started = True
        if not s.collected:
            self._collect(s, grad.data, accumulate=False)
            self._mark_collected(s, wait=True)
        elif s.uses:
            self._check_seen(s, grad.data)
        b = s.bucket
        if not b.done and b.request is not None:
            self._finish(b)
        if not b.done:
            s.deferred = True
            return None
        s.param.grad = None        # the mean already includes the accumulated .grad
        return _wrap(s.view)

    # -- overlap: catch gradients during the walk ------------------------------------------------
    def _swap_in(self, own: list, m: Module, args: tuple) -> None:
        if not (self._sync and is_grad_enabled()):
            return None
        d = m.__dict__
        for name, s in own:
            view = _Ready.apply(s.param)
            view.register_hook(partial(self._ready_hook, s))
            s.uses += 1
            d[name] = view
            self._swapped.append((d, name, s.param))
        return None

    def _swap_out(self, m: Module, args: tuple, out: Any) -> None:
        d = m.__dict__
        for name, p in m._parameters.items():
            if p is not None and d.get(name) is not p:
                d[name] = p
        return None

    def _check_seen(self, s: _Slot, g: np.ndarray) -> None:
        if s.param.grad is not None:    # the identity hooks collected .grad + the new gradient
            g = s.param.grad.data + g
        flat = g.reshape(-1)
        norm2 = float(flat @ flat)
        if abs(norm2 - s.norm2) > 1e-3 * (norm2 + s.norm2) + 1e-30:
            raise RuntimeError(
                f"DistributedDataParallel(overlap=True): parameter {s.name!r} was also used "
                "outside its module's forward (e.g. a tied weight read as other.weight), which "
                "the overlap hooks cannot see, so its bucket was reduced too early. Use "
                "overlap=False for this model.")

    def _restore(self) -> None:
        for d, name, p in self._swapped:
            d[name] = p
        self._swapped = []

    def _ready_hook(self, s: _Slot, grad: Tensor) -> None:
        self._started = True
        s.arrived += 1
        self._collect(s, grad.data, accumulate=s.arrived > 1)
        if s.arrived == s.uses and not s.collected:
            flat = s.view.reshape(-1)
            s.norm2 = float(flat @ flat)     # to check the leaf's gradient against, at the end
            self._mark_collected(s, wait=False)
        elif self._inflight:       # let MPI move the buckets already started
            mpi().Request.Testall(self._inflight)
        return None
