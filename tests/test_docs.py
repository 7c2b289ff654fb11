"""docs/ARCHITECTURE.md says what the code does: every code span naming a project module, file,
folder or attribute (``featurestore/store.py``, ``featurestore.store.FeatureStore.load``)
exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("featurestore", "trainkit", "encoders", "seqtrain", "jobs")
DOC = REPO / "docs" / "ARCHITECTURE.md"


def _spans() -> list[str]:
    text = re.sub(r"```.*?```", "", DOC.read_text(), flags=re.S)  # code blocks are sketches
    spans = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for part in re.split(r",\s*", span):
            part = part.strip()
            if re.fullmatch(r"[A-Za-z_][\w./]*", part) and part.split("/")[0].split(".")[0] in PACKAGES:
                spans.append(part)
    return sorted(set(spans))


def _resolve(name: str) -> bool:
    if "/" in name:
        return (REPO / name).exists()
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_doc_names_things():
    assert len(_spans()) > 60


@pytest.mark.parametrize("name", _spans())
def test_every_name_in_architecture_md_exists(name):
    assert _resolve(name), f"docs/ARCHITECTURE.md names {name!r}, which does not exist"
