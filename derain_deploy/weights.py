"""Weights files: safetensors with the model config and a format version in the metadata.

Nothing here unpickles: safetensors stores raw tensors and a JSON header only.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .atomic import write_atomic
from .model import DerainConfig, DerainNet

FORMAT_NAME = "derain-deploy-weights"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS_NAME = "derain_default.safetensors"
# Sizes a config may give (the bundled model: 12 stages, 16 channels, dilations 1, 2, 4, 8): checked
# before a model is built, so that a file claiming 10^7 channels fails at once, not after minutes.
CONFIG_BOUNDS = {"stages": (1, 64), "channels": (1, 256)}
MAX_DILATIONS, MAX_DILATION = 16, 1024


class WeightsError(ValueError):
    """A weights file that cannot be used; the message is one line."""


def save_weights(model: DerainNet, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
    }
    meta.update(extra or {})
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    return write_atomic(path, _canonical(save(tensors, metadata=meta)))


def _canonical(data: bytes) -> bytes:
    """The same safetensors bytes with the JSON header's keys sorted: safetensors writes its
    metadata in hash order, and equal weights must give equal files (and sha256 cache keys)."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return len(header).to_bytes(8, "little") + header + data[8 + n :]


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of ``path``, validated as a derain-deploy weights file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: not a safetensors file (only {len(head)} bytes)")
            n = int.from_bytes(head, "little")
            size = path.stat().st_size
            if n <= 0 or n > min(size - 8, 100_000_000):
                raise WeightsError(
                    f"{path}: not a safetensors file (header length {n} does not fit a {size}-byte file)"
                )
            header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (header is not a JSON object)")
    meta = header.get("__metadata__") or {}
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise WeightsError(f"{path}: expected a {FORMAT_NAME} file, found metadata format {fmt!r}")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        found = meta.get("format_version")
        raise WeightsError(f"{path}: format_version {found!r} is not an integer") from None
    if version > FORMAT_VERSION:
        raise WeightsError(
            f"{path}: weights format version {version} is newer than this derain-deploy reads "
            f"(up to {FORMAT_VERSION}); upgrade derain-deploy"
        )
    return meta


def check_config_bounds(config: DerainConfig) -> None:
    """Refuse (ValueError, one line) sizes outside :data:`CONFIG_BOUNDS` and the dilation limits."""
    for key, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(config, key)
        if not low <= value <= high:
            raise ValueError(f"{key} {value} is out of range {low}..{high}")
    if len(config.dilations) > MAX_DILATIONS:
        raise ValueError(f"{len(config.dilations)} dilations, at most {MAX_DILATIONS}")
    for d in config.dilations:
        if not 1 <= d <= MAX_DILATION:
            raise ValueError(f"dilation {d} is out of range 1..{MAX_DILATION}")


def load_config(path: str | Path) -> DerainConfig:
    meta = read_metadata(path)
    try:
        config = DerainConfig.from_dict(json.loads(meta["config"]))
        check_config_bounds(config)
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: bad model config in metadata ({e})") from None
    return config


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> DerainNet:
    """Build the model the file describes and load its tensors; strict about every key and shape."""
    config = load_config(path)
    model = DerainNet(config)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: unreadable tensors ({str(e).splitlines()[0]})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{path}: tensors do not match the architecture in its config: "
            f"expected {len(expected)} tensors, found {len(tensors)} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, ref in expected.items():
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise WeightsError(
                f"{path}: tensor {name} has shape {tuple(tensors[name].shape)}, expected {tuple(ref.shape)}"
            )
    model.load_state_dict(tensors)
    return model.eval().to(device)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: str | Path) -> Path:
    """The model card beside a weights file: ``name.safetensors`` -> ``name.card.json``."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(".safetensors") + ".card.json")


def default_weights_path() -> Path:
    """The bundled default weights inside the package."""
    return Path(str(resources.files("derain_deploy") / "weights" / DEFAULT_WEIGHTS_NAME))


def load_default(device: str | torch.device = "cpu") -> DerainNet:
    path = default_weights_path()
    if not path.is_file():
        raise WeightsError(f"bundled default weights are missing at {path}; reinstall derain-deploy")
    return load_weights(path, device)
