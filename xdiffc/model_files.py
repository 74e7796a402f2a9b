"""Where model files are and what they are called, without importing torch.

A model is named by a bare name (a file shipped in ``xdiffc/weights/<name>.pt``) or by a path,
and identified by the sha256 of its bytes. Codecs and stores record (model id, sha256), so a
reader can tell which model a chunk needs before any network is loaded.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from .errors import ModelNotFoundError

#: Models shipped inside the package.
MODELS_DIR = Path(__file__).resolve().parent / "weights"
#: Names that mean "no model": the model-free coders only.
NO_MODEL = ("", "none")


def resolve(name_or_path: str) -> Path:
    """A bare name is a model shipped in ``xdiffc/weights/<name>.pt``; anything else is a path to a file."""
    shipped = MODELS_DIR / f"{name_or_path}.pt"
    if "/" not in name_or_path and "\\" not in name_or_path and shipped.exists():
        return shipped
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MODELS_DIR.glob("*.pt"))) or "none"
        raise ModelNotFoundError(f"no model {name_or_path!r}: not a shipped model name ({known}) nor a file")
    return path


def identify(name_or_path: str) -> tuple[str, str]:
    """(model id, sha256) of a model file: the id is the file's stem, as the stream records it."""
    path = resolve(name_or_path)
    return path.stem, hashlib.sha256(path.read_bytes()).hexdigest()


def codec_model(name: str | None) -> tuple[str, str]:
    """(model, sha256) for a codec config: a shipped model name or a model file path, and its file's hash.

    ``None``, "" and "none" mean the model-free coders only: ("", "").
    """
    if name is None or name in NO_MODEL:
        return "", ""
    return str(name), identify(str(name))[1]


def store_model(name: str | None) -> dict:
    """The codec configuration entries of a model for a store: ``model_id``, ``model_sha256``, and ``model_file``.

    A shipped model is named (every reader with xdiffc has it); any other model file travels in
    the configuration itself (base64, ``model_file``) under its stem as id, so that a reader
    elsewhere needs nothing but the store.
    """
    if name is None or name in NO_MODEL:
        return {"model_id": "", "model_sha256": ""}
    path = resolve(str(name))
    data = path.read_bytes()
    entries = {"model_id": path.stem, "model_sha256": hashlib.sha256(data).hexdigest()}
    if path.parent != MODELS_DIR:
        entries["model_file"] = base64.b64encode(data).decode("ascii")
    return entries
