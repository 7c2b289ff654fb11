"""Image data for the encoders: preprocessing, static face sets, Aff-Wild2 EXPR frames.

Every model input is ``(N, 3, S, S)`` float32, normalised with the ImageNet mean/std.
:func:`to_model_input` is the one evaluation preprocessing (used by fine-tuning validation and by
:class:`encoders.encode.FrameEncoder`), so features never depend on who computed them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset
from torchvision.transforms import v2

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(images: np.ndarray | Sequence[np.ndarray], img_size: int) -> torch.Tensor:
    """uint8 RGB images (N, H, W, 3) (or a list of (H, W, 3)) -> (N, 3, S, S) normalised float32.

    Images already S x S are converted in one batched operation; others are resized one by one
    (bilinear, antialiased). Torch releases the GIL here, so threads can prepare batches.
    """
    if len(images) == 0:
        return torch.empty(0, 3, img_size, img_size)
    if all(img.shape[:2] == (img_size, img_size) for img in images):
        arr = np.require(np.stack(images) if not isinstance(images, np.ndarray) else images,
                         np.uint8, ["C", "W"])  # (N, S, S, 3)
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, S, S)
    else:
        x = torch.cat([_resized(img, img_size) for img in images])  # (N, 3, S, S)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)  # (N, 3, S, S); in place: the same values, no extra copies


def _resized(img: np.ndarray, img_size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, S, S) float in [0, 1]."""
    x = _chw(img).unsqueeze(0).float() / 255.0  # (1, 3, H, W)
    if x.shape[-2:] != (img_size, img_size):
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False,
                          antialias=True).clamp(0, 1)  # (1, 3, S, S)
    return x


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) normalised -> (N, 3, H, W) in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def pretrain_transform(img_size: int) -> v2.Compose:
    """uint8 (3, H, W) tensor -> augmented (3, S, S) float: random resized crop + flip."""
    return v2.Compose([
        v2.RandomResizedCrop(img_size, scale=(0.2, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def finetune_transform(img_size: int) -> v2.Compose:
    """Milder augmentation for fine-tuning: crop keeping most of the face + flip."""
    return v2.Compose([
        v2.RandomResizedCrop(img_size, scale=(0.7, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.require(img, np.uint8, ["C", "W"])).permute(2, 0, 1)  # (3, H, W) uint8


class FaceSetDataset(Dataset):
    """One FaceSet (featurestore.facesets protocol) -> (image (3, S, S), expr label or -1)."""

    def __init__(self, faceset, transform):
        self.faceset = faceset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.faceset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        face = self.faceset[i]
        return self.transform(_chw(face.image)), int(face.expr)


def faceset_union(root: str | os.PathLike, img_size: int, transform=None) -> ConcatDataset:
    """The union of every static face set found under ``root`` (for MAE pretraining)."""
    from featurestore.facesets import discover_facesets

    sets = discover_facesets(root)
    if not sets:
        raise FileNotFoundError(f"{root}: no face set found (FER2013, FER+, RAF-DB, AffectNet "
                                "or an image folder)")
    transform = transform or pretrain_transform(img_size)
    for s in sets:
        log.info("face set %s: %d images", s.name, len(s))
    return ConcatDataset([FaceSetDataset(s, transform) for s in sets])


def expr_frame_index(root: str | os.PathLike, split: str, max_frames_per_video: int | None = None,
                     seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Frames of ``split`` ("train" | "val") that have a jpg and a valid EXPR label.

    Returns (videos, video_idx (M,) int64, frame numbers (M,) int64, labels (M,) int64). With
    ``max_frames_per_video`` each video is subsampled with a seeded stride.
    """
    from featurestore.affwild2 import read_affwild2

    if split not in ("train", "val"):
        raise ValueError(f"split={split!r} must be 'train' or 'val'")
    data = read_affwild2(root)
    rng = np.random.default_rng(seed)
    names, vids, nums, labels = [], [], [], []
    for name, video in data.videos.items():
        task = video.labels.get("expr")
        if task is None or task.split != split:
            continue
        numbers = np.asarray(video.frame_numbers, dtype=np.int64)  # (k,)
        numbers = numbers[numbers <= len(task.values)]
        numbers = numbers[task.valid[numbers - 1]]
        if max_frames_per_video and len(numbers) > max_frames_per_video:
            stride = -(-len(numbers) // max_frames_per_video)
            numbers = numbers[int(rng.integers(stride))::stride][:max_frames_per_video]
        if len(numbers) == 0:
            continue
        vids.append(np.full(len(numbers), len(names), dtype=np.int64))
        nums.append(numbers)
        labels.append(np.asarray(task.values, dtype=np.int64)[numbers - 1])
        names.append(name)
    if not names:
        raise FileNotFoundError(f"{root}: no {split} frames with valid EXPR labels")
    return names, np.concatenate(vids), np.concatenate(nums), np.concatenate(labels)


class ExprFrames(Dataset):
    """Aff-Wild2 frames with valid EXPR labels -> (image (3, S, S), label 0..7).

    Frames come from ``frames`` (an LMDB pack or the jpg tree; default: ``root``), opened lazily
    in each process so DataLoader workers never share an LMDB environment. ``transform=None``
    applies the evaluation preprocessing :func:`to_model_input`.
    """

    def __init__(self, root: str | os.PathLike, split: str, img_size: int, *,
                 frames: str | os.PathLike | None = None, transform=None,
                 max_frames_per_video: int | None = None, seed: int = 0):
        self.frames_path = Path(frames) if frames is not None else Path(root)
        self.img_size = img_size
        self.transform = transform
        self.videos, self.video_idx, self.numbers, self.labels = expr_frame_index(
            root, split, max_frames_per_video, seed)
        self._source = self._decoder = None

    def __getstate__(self):  # each worker opens its own FrameSource and decoder
        return dict(self.__dict__, _source=None, _decoder=None)

    @property
    def decoder(self):
        """The fastest installed JPEG decoder (:mod:`encoders.jpeg`; PIL as the fallback)."""
        if self._decoder is None:
            from encoders.jpeg import make_decoder

            self._decoder = make_decoder()
        return self._decoder

    @property
    def source(self):
        if self._source is None:
            from featurestore.frames import open_frames

            self._source = open_frames(self.frames_path)
        return self._source

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        video, number = self.videos[self.video_idx[i]], int(self.numbers[i])
        img = self.decoder.decode_one(self.source.read_bytes(video, number),
                                      f"{video}/{number:05d}.jpg")  # (H, W, 3) uint8
        if self.transform is None:
            x = to_model_input([img], self.img_size)[0]  # (3, S, S)
        else:
            x = self.transform(_chw(img))  # (3, S, S)
        return x, int(self.labels[i])
