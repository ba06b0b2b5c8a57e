"""derain-deploy: train, export and run a lightweight coarse-to-fine deraining CNN."""

from .model import DerainConfig, DerainNet
from .weights import (
    WeightsError,
    default_weights_path,
    load_default,
    load_weights,
    save_weights,
)

__version__ = "0.1.0"

__all__ = [
    "DerainConfig",
    "DerainNet",
    "WeightsError",
    "__version__",
    "default_weights_path",
    "load_default",
    "load_weights",
    "save_weights",
]
