from .config import Config, ConfigError, load
from .loop import TrainingError, train

__all__ = ["Config", "ConfigError", "TrainingError", "load", "train"]
