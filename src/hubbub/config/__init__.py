"""Configuration: typed settings per section and loading with overrides."""

from hubbub.config.loader import ConfigError, LoadedConfig, config_hash, load_config, masked
from hubbub.config.settings import Settings, split_address

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "Settings",
    "config_hash",
    "load_config",
    "masked",
    "split_address",
]
