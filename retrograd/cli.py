"""The `retrograd` command line: `retrograd xor`, `retrograd train`, `retrograd inspect`."""
from __future__ import annotations

import argparse
from typing import Sequence


def _xor(args: argparse.Namespace) -> int:
    from .demos import xor
    return xor.main(lr=args.lr, epochs=args.epochs, threshold=args.threshold, seed=args.seed,
                    hidden=args.hidden, print_every=args.print_every, show_trace=args.trace)


def _train(args: argparse.Namespace) -> int:
    from .demos import digits
    if args.threads:
        from .parallel import set_num_threads
        set_num_threads(args.threads)
    if args.resume:
        return digits.main(digits.resume_config(args.resume, args.epochs, not args.quiet))
    epochs = digits.DigitsConfig.epochs if args.epochs is None else args.epochs
    config = digits.DigitsConfig(hidden=args.hidden, depth=args.depth, optimizer=args.optimizer,
                                 lr=args.lr, epochs=epochs, batch_size=args.batch_size,
                                 dropout=args.dropout, weight_decay=args.weight_decay,
                                 seed=args.seed, out=args.out, progress=not args.quiet,
                                 compile=args.compile)
    return digits.main(config)


def _inspect(args: argparse.Namespace) -> int:
    from .demos import inspection
    if args.what == "graph":
        return inspection.main("graph", fmt=args.format, out=args.out, hidden=args.hidden,
                               seed=args.seed, values=args.values, grads=args.grads,
                               direction=args.direction)
    if args.what == "trace":
        return inspection.main("trace", hidden=args.hidden, seed=args.seed)
    return inspection.main("flow", activation=args.activation, depth=args.depth,
                           width=args.width, epochs=args.epochs, lr=args.lr, seed=args.seed,
                           out=args.out, progress=not args.quiet)


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="see backprop: the graph, a layer-by-layer trace, "
                                       "gradient flow")
    what = p.add_subparsers(dest="what", required=True)
    g = what.add_parser("graph", help="the recorded graph of the XOR network's error")
    g.add_argument("--format", default="mermaid", choices=["mermaid", "dot", "svg", "png"])
    g.add_argument("--out", default=None, help="write here instead of printing")
    g.add_argument("--values", action="store_true", help="show leaf values")
    g.add_argument("--grads", action="store_true", help="show leaf gradients")
    g.add_argument("--direction", default="LR", choices=["LR", "TD"])
    t = what.add_parser("trace", help="z, a, delta, dE/dW, dE/db of the XOR network, one pass")
    for q in (g, t):
        q.add_argument("--hidden", type=int, default=2, help="hidden units (default 2)")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    f = what.add_parser("flow", help="per-layer gradient norms of a deep MLP training on digits")
    f.add_argument("--activation", default="sigmoid", choices=["sigmoid", "tanh", "relu"])
    f.add_argument("--depth", type=int, default=8, help="hidden layers (default 8)")
    f.add_argument("--width", type=int, default=64, help="units per hidden layer (default 64)")
    f.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    f.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    f.add_argument("--out", default="gradient_flow.png", help="heat map PNG path")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_inspect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrograd",
                                     description="Backpropagation done completely and well.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("xor", help="train the textbook 2-2-1 XOR network by gradient descent")
    p.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    p.add_argument("--epochs", type=int, default=10_000, help="maximum epochs (default 10000)")
    p.add_argument("--threshold", type=float, default=0.01,
                   help="stop once the total error falls below this (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--hidden", type=int, default=2, help="hidden units (default 2)")
    p.add_argument("--print-every", type=int, default=1000, help="epochs between error lines")
    p.add_argument("--trace", action="store_true",
                   help="first show epoch 1 in textbook notation: z, a, delta, dE/dW, dE/db per layer")
    p.set_defaults(run=_xor)

    from .demos.digits import DigitsConfig
    d = DigitsConfig()
    p = sub.add_parser("train", help="train an MLP on the bundled 8x8 digits (the default job)")
    p.add_argument("--hidden", type=int, default=d.hidden, help=f"units per hidden layer ({d.hidden})")
    p.add_argument("--depth", type=int, default=d.depth, help=f"hidden layers ({d.depth})")
    p.add_argument("--optimizer", default=d.optimizer,
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate ({d.lr})")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs ({d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"batch size ({d.batch_size})")
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout after each hidden layer")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed ({d.seed})")
    p.add_argument("--out", default=d.out, help=f"output directory ({d.out})")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads for matrix products (default: NumPy's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--compile", nargs="?", const=True, default=False, choices=["numba"],
                   help="record each training step once and replay it (rg.compile); "
                        "--compile numba fuses it with Numba (pip install 'retrograd[numba]')")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the interrupted run in DIR (its --out) from its last "
                        "checkpoint, with its config.json; --epochs may extend it")
    p.set_defaults(run=_train)
    _add_inspect(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
