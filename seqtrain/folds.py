"""Cross-validation folds grouped by source video.

Fold 0 is the official Train/Validation split of the task. Folds 1..4 split the task's
train+val videos into 4 groups; fold k validates on group k-1 and trains on the other three.
The groups are assigned once over the annotated videos of ALL tasks and then restricted to the
task's videos, so every source falls in the same fold for VA, EXPR and AU. The multi-task run
(``mtl``) takes the union of the three tasks' videos; in fold 0 a video that any task validates
on is a validation video (never trained on).

Grouping: every video is keyed by its source video (``store.source``), so the ``_left`` and
``_right`` halves of one recording always share a group. Each source first goes to the group
``sha1(source) mod 4`` (deterministic, independent of the other videos, so adding a video never
moves the others at this step); then a bounded balancing pass moves single sources from the
heaviest group to the lightest one while that strictly lowers the spread of frame counts, trying
sources in hash order. Adding videos can only change the sources the balancing pass moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from featurestore.abaw import MTL

__all__ = ["NUM_GROUPS", "assign_groups", "fold_videos"]

NUM_GROUPS = 4


def _hash(source: str) -> int:
    return int.from_bytes(hashlib.sha1(source.encode("utf-8")).digest()[:8], "big")


def _balance(groups: dict[str, int], weight: Mapping[str, int]) -> dict[str, int]:
    order = sorted(groups, key=_hash)
    for _ in range(len(order)):  # bounded: at most one move per source
        totals = [0] * NUM_GROUPS
        for src, g in groups.items():
            totals[g] += weight[src]
        heavy = max(range(NUM_GROUPS), key=lambda g: (totals[g], -g))
        light = min(range(NUM_GROUPS), key=lambda g: (totals[g], g))
        gap = totals[heavy] - totals[light]
        # moving a source of weight x changes the pair's gap to |gap - 2x|: improves iff x < gap
        best = next((s for s in order if groups[s] == heavy and 0 < weight[s] < gap
                     and abs(gap - 2 * weight[s]) < gap), None)
        if best is None:
            break
        groups[best] = light
    return groups


def assign_groups(sources: Mapping[str, str], frames: Mapping[str, int]) -> dict[str, int]:
    """Group index 0..3 of every video.

    sources: video -> source video; frames: video -> frame count. Returns video -> group.
    """
    weight: dict[str, int] = {}
    for video, src in sources.items():
        weight[src] = weight.get(src, 0) + int(frames[video])
    groups = _balance({src: _hash(src) % NUM_GROUPS for src in sorted(weight)}, weight)
    return {video: groups[src] for video, src in sources.items()}


def fold_videos(store, task: str, fold: int) -> tuple[list[str], list[str]]:
    """(train videos, validation videos) of ``fold`` for ``task``, each sorted by name.

    store: a FeatureStore (``videos``, ``source``, ``num_frames``). Fold 0 = official split.
    """
    if fold not in range(NUM_GROUPS + 1):
        raise ValueError(f"fold must be 0..{NUM_GROUPS}, got {fold!r}")
    one = None if task == MTL else task  # mtl: videos of any task
    val = list(store.videos(split="val", task=one))
    held_out = set(val) if one is None else set()  # mtl: validated by any task -> not trained
    train = [v for v in store.videos(split="train", task=one) if v not in held_out]
    if fold == 0:
        return sorted(train), sorted(val)
    pool: Sequence[str] = sorted(set(train) | set(val))
    # groups over every annotated video of every task, so a source sits in the same group for
    # VA, EXPR and AU (a multi-task model never validates on a video it trained on)
    every = sorted(set(store.videos(split="train")) | set(store.videos(split="val")) | set(pool))
    groups = assign_groups({v: store.source(v) for v in every},
                           {v: store.num_frames(v) for v in every})
    return ([v for v in pool if groups[v] != fold - 1], [v for v in pool if groups[v] == fold - 1])
