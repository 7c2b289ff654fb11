"""The three MTCNN networks (Zhang et al., 2016): P-Net, R-Net, O-Net, and their weights.

Parameter names match the state dicts shipped in the facenet-pytorch 2.6.0 wheel (MIT licence),
which :func:`fetch_mtcnn_weights` takes from the registry with ``pip download --no-deps`` and
stores once as one safetensors file. Those weights were converted from a network that saw images
transposed; the convolutions were converted for upright images, and only the flattening before the
dense layers keeps the transposed order: hence the ``permute(0, 3, 2, 1)`` below.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from featurestore.wheelfetch import default_cache, fetch_wheel_members

__all__ = ["PNet", "RNet", "ONet", "fetch_mtcnn_weights", "load_mtcnn_nets", "WHEEL"]

log = logging.getLogger(__name__)

WHEEL = "facenet-pytorch==2.6.0"
WEIGHTS_FILE = "mtcnn.safetensors"
NETS = ("pnet", "rnet", "onet")


def _conv(cin: int, cout: int, k: int, name: str) -> list[tuple[str, nn.Module]]:
    return [(f"conv{name}", nn.Conv2d(cin, cout, k)), (f"prelu{name}", nn.PReLU(cout))]


class PNet(nn.Module):
    """Proposal net, fully convolutional: (B, 3, H, W) -> face prob (B, H', W'), box deltas
    (B, 4, H', W'); one output cell per 12x12 window at stride 2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (B, 32, H', W')
        prob = torch.softmax(self.conv4_1(x), dim=1)[:, 1]  # (B, H', W')
        return prob, self.conv4_2(x)  # (B, 4, H', W')


class RNet(nn.Module):
    """Refine net: (B, 3, 24, 24) -> face prob (B,), box deltas (B, 4)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))  # (B, 128)
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net: (B, 3, 48, 48) -> face prob (B,), box deltas (B, 4), landmarks (B, 10) as
    five x then five y, relative to the input box."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))  # (B, 128, 3, 3)
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))  # (B, 256)
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def fetch_mtcnn_weights(cache: str | os.PathLike | None = None) -> Path:
    """The MTCNN weights as one safetensors file in the cache, taken from the facenet-pytorch
    wheel on first use. Raises ``featurestore.wheelfetch.FetchError`` when it cannot be fetched."""
    folder = Path(cache) if cache is not None else default_cache() / "mtcnn"
    target = folder / WEIGHTS_FILE
    if target.is_file():
        return target
    members = {f"{n}.pt": f"facenet_pytorch/data/{n}.pt" for n in NETS}
    members["LICENSE.md"] = "facenet_pytorch-2.6.0.dist-info/LICENSE.md"
    files = fetch_wheel_members(WHEEL, members, folder / "wheel")
    tensors = {}
    for n in NETS:  # plain tensor state dicts: the weights-only loader refuses anything else
        for k, v in torch.load(files[f"{n}.pt"], map_location="cpu", weights_only=True).items():
            tensors[f"{n}.{k}"] = v.contiguous()
    part = target.with_name(f".{WEIGHTS_FILE}.part")
    save_file(tensors, str(part), metadata={"source": WHEEL, "licence": "MIT"})
    os.replace(part, target)
    log.info("MTCNN weights ready at %s", target)
    return target


def load_mtcnn_nets(weights: str | os.PathLike | None = None, device: str = "cpu"
                    ) -> tuple[PNet, RNet, ONet]:
    """The three nets in eval mode with the pretrained weights (fetched when ``weights`` is None)."""
    path = Path(weights) if weights is not None else fetch_mtcnn_weights()
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no MTCNN weights file here")
    tensors = load_file(str(path), device=device)
    nets = (PNet(), RNet(), ONet())
    for name, net in zip(NETS, nets, strict=True):
        net.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                             if k.startswith(name + ".")})
        net.to(device).eval()
    return nets
