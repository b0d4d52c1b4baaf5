"""Random-weight video models saved as their publishers ship them, written into a test model store.

The three architectures are fixed by their checkpoints, so the store holds the full
models (random weights; BatchNorm randomised so that every block counts).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tests.video.reference import BUILDERS, STORE_PATHS


def _randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """BatchNorm scales near 1, small shifts and statistics.

    The default initialisation (zeroed last BatchNorm of each residual branch) leaves a
    deep network nearly blind to its input; scales in [0.7, 1.0] keep features of order 1
    that differ by about 10-30 % between two trailers, so a wrong frame or transform shows.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.data = 0.7 + 0.3 * torch.rand(n, generator=generator)
            module.bias.data = 0.02 * torch.randn(n, generator=generator)
            module.running_mean = 0.02 * torch.randn(n, generator=generator)
            module.running_var = 0.9 + 0.2 * torch.rand(n, generator=generator)
    return model


def save_random_model(store: Path, name: str, seed: int = 0) -> Path:
    """A random `name` saved as its publisher ships it: PyTorchVideo checkpoints hold the
    weights under `model_state`; the IG-65M release is a bare state dict."""
    torch.manual_seed(seed)
    model = _randomise_batchnorm(BUILDERS[name](), torch.Generator().manual_seed(seed))
    path = store / STORE_PATHS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state if name == "r2p1d" else {"epoch": 196, "model_state": state, "cfg": "MODEL:\n  ARCH: random\n"}, path)
    return path


def add_r2p1d(store: Path) -> Path:
    """The cheapest of the video models, for the guarantee tests' runs."""
    return save_random_model(store, "r2p1d")
