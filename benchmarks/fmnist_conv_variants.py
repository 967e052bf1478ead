"""Short Fashion-MNIST runs of ``fmnist-conv`` shape variants: why the zoo shape is what it is.

Each variant is the zoo's ``fmnist-conv`` sketch with the second convolution's width,
batch norm on the hidden fc layer and the learning rate changed, trained with the
project's own trainer (Adam, cosine schedule, T=4, batch 64, seed 0) on the first
``--limit-train`` training images for ``--epochs`` epochs and tested on the first
``--limit-test`` test images.  A probe, not a result: with 2,000 test images one
standard error is about 0.7 points at 90%.  The full-length runs are in
``docs/results.md``.

Usage::

    python benchmarks/fmnist_conv_variants.py [--epochs 1] [--limit-train 12800]
        [--limit-test 2000] [--data-dir DIR] [--variant c2=64,fc_bn=0,lr=2e-3 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from h2learn import spec as spec_module
from h2learn.snn.train import TrainConfig, train
from h2learn.spec import FC, Conv

DEFAULT_VARIANTS = [
    "c2=64,fc_bn=0,lr=2e-3",  # the shape before this version
    "c2=128,fc_bn=0,lr=2e-3",
    "c2=128,fc_bn=0,lr=1e-3",
    "c2=64,fc_bn=1,lr=2e-3",
    "c2=128,fc_bn=1,lr=2e-3",  # the zoo shape now
]
PROBE_NAME = "fmnist-conv-probe"


def parse_variant(text: str) -> dict[str, int | bool | float]:
    usage = f"bad --variant {text!r}; write it as c2=N,fc_bn=0|1,lr=X (any of the three)"
    if any("=" not in item for item in text.split(",")):
        raise SystemExit(usage)
    fields = dict(item.split("=", 1) for item in text.split(","))
    if set(fields) - {"c2", "fc_bn", "lr"}:
        raise SystemExit(usage)
    try:
        return {
            "c2": int(fields.get("c2", 128)),
            "fc_bn": bool(int(fields.get("fc_bn", 1))),
            "lr": float(fields.get("lr", 2e-3)),
        }
    except ValueError:
        raise SystemExit(usage) from None


def register(c2: int, fc_bn: bool) -> None:
    """Put the zoo's ``fmnist-conv`` under :data:`PROBE_NAME`, with this width and fc batch norm.

    Derived from the zoo entry (not a copy of it), so the probe follows the zoo
    in everything but the two fields varied: the second conv and the hidden fc.
    """
    make_zoo_sketch, classes, _ = spec_module.ZOO["fmnist-conv"]

    def sketch(num_classes: int):
        shape, layers, defaults = make_zoo_sketch(num_classes)
        convs = [i for i, layer in enumerate(layers) if isinstance(layer, Conv)]
        fcs = [i for i, layer in enumerate(layers) if isinstance(layer, FC)]
        layers = list(layers)
        layers[convs[1]] = dataclasses.replace(layers[convs[1]], channels=c2)
        layers[fcs[0]] = dataclasses.replace(layers[fcs[0]], batch_norm=fc_bn)
        return shape, layers, defaults

    spec_module.ZOO[PROBE_NAME] = (sketch, classes, "fmnist-conv variant (probe)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit-train", type=int, default=12800)
    ap.add_argument("--limit-test", type=int, default=2000)
    ap.add_argument("--data-dir", help="Fashion-MNIST IDX files (default: the usual places)")
    ap.add_argument("--variant", action="append", help="c2=N,fc_bn=0|1,lr=X (repeatable)")
    args = ap.parse_args()

    variants = [parse_variant(text) for text in args.variant or DEFAULT_VARIANTS]
    print("| conv2 | fc batch norm | lr | train accuracy per epoch | test accuracy per epoch | s |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        register(variant["c2"], variant["fc_bn"])
        config = TrainConfig(
            dataset="fashion-mnist",
            model=PROBE_NAME,
            epochs=args.epochs,
            batch_size=64,
            lr=variant["lr"],
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            data_dir=args.data_dir,
        )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            history = train(config, Path(out))["history"]
        train_acc = ", ".join(f"{100 * h['train_accuracy']:.1f}" for h in history)
        test_acc = ", ".join(f"{100 * h['test_accuracy']:.1f}" for h in history)
        print(
            f"| {variant['c2']} | {'yes' if variant['fc_bn'] else 'no'} | {variant['lr']:g} "
            f"| {train_acc} | {test_acc} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
