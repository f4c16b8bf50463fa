"""Arithmetic: + - * / ** and negation. Broadcast gradients are summed back by the engine, not here."""
from __future__ import annotations

import numpy as np

from ..autograd import Function


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(b if need_a else None, a if need_b else None)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        b, a = ctx.saved_tensors
        return (None if b is None else grad * b), (None if a is None else grad * a)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx, grad):
        b, out = ctx.saved_tensors
        grad_a = grad / b if ctx.needs_input_grad[0] else None
        grad_b = -grad * out / b if out is not None else None   # d(a/b)/db = -a/b^2 = -out/b
        return grad_a, grad_b


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out if ctx.needs_input_grad[1] else None)   # out: for db only
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            if b == 2 if isinstance(b, (int, float)) else False:   # the common square: no a^(b-1)
                grad_a = grad * (a + a)   # exactly 2a; NumPy is slow with a Python-int operand
            else:
                # a^0 is constant: its gradient is 0 also at a == 0, where b a^(b-1) is 0 * inf
                with np.errstate(divide="ignore", invalid="ignore"):
                    grad_a = np.where(b == 0, 0, grad * b * a ** (b - 1))
        if ctx.needs_input_grad[1]:
            a = np.asarray(a)
            # d(a^b)/db = a^b log(a); at a == 0 the limit is 0 (as PyTorch defines it).
            log_a = np.log(np.where(a == 0, 1, a))
            grad_b = grad * out * log_a
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad
