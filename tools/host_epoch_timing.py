"""Seconds per training epoch of the digits CNN hosts and the byte-level transformer hosts, on one CPU thread.

How the transformer presets were sized: an epoch of a ~300,000-byte corpus cut into context-64 windows should
cost about what a digits epoch costs. Each epoch is forward + cross-entropy + backward + an SGD step per batch of
64, on random inputs of the real shapes (the arithmetic does not depend on the values), through
``MorphogeneticModel`` with empty slots. Prints the median of ``--repeats`` epochs after one warm-up epoch.

    uv run python tools/host_epoch_timing.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor
from torch.nn import functional as F

from esper.kasmina import CNNHostConfig, MorphogeneticModel, TransformerHostConfig

DIGITS_TRAIN_IMAGES = 1259
CORPUS_BYTES = 300_000
BATCH = 64


def epoch_seconds(model: MorphogeneticModel, inputs: Tensor, targets: Tensor, repeats: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    times: list[float] = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for first in range(0, inputs.shape[0], BATCH):
            logits = model(inputs[first : first + BATCH])
            loss = F.cross_entropy(logits.flatten(0, -2), targets[first : first + BATCH].flatten())
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    for name in ("digits_impaired", "digits_strong"):
        model = MorphogeneticModel.from_cnn_config(CNNHostConfig.preset(name), seed=0, image_size=8)
        images = torch.randn(DIGITS_TRAIN_IMAGES, 1, 8, 8, generator=generator)
        labels = torch.randint(0, 10, (DIGITS_TRAIN_IMAGES,), generator=generator)
        seconds = epoch_seconds(model, images, labels, args.repeats)
        print(f"{name:16s} {DIGITS_TRAIN_IMAGES} images          {seconds:.3f} s/epoch")
    for name in ("bytes_small", "bytes_impaired"):
        config = TransformerHostConfig.preset(name)
        model = MorphogeneticModel.from_transformer_config(config, seed=0)
        windows = CORPUS_BYTES // config.context
        tokens = torch.randint(0, config.vocab_size, (windows, config.context + 1), generator=generator)
        seconds = epoch_seconds(model, tokens[:, :-1], tokens[:, 1:], args.repeats)
        print(f"{name:16s} {windows} windows of {config.context} {seconds:.3f} s/epoch")


if __name__ == "__main__":
    main()
