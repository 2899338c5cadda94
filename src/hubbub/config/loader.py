"""Loading configuration: defaults, then config.json, then `MM_<SECTION>_<SETTING>` variables.

Unknown settings (a real Mattermost config.json has hundreds) are accepted and listed as ignored.
An invalid value of a known setting raises `ConfigError` naming its key path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin

from pydantic import ValidationError

from hubbub.config.settings import SECRETS, SECTIONS, Settings


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the key path."""


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    ignored: list[str] = field(default_factory=list)
    source: str = "defaults"
    # The MM_* variables it was read with when not the process's own (a reload reads them again).
    environ: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def hash(self) -> str:
        return config_hash(self.settings)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None and Path(path).exists():
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a JSON object")
        source = str(path)
    elif path is not None:
        raise ConfigError(f"{path}: no such file")

    known: dict[str, dict[str, Any]] = {}
    ignored: list[str] = []
    for section, values in raw.items():
        model = SECTIONS.get(section)
        if model is None:
            ignored.append(section)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a JSON object")
        for key, value in values.items():
            if key in model.model_fields:
                known.setdefault(section, {})[key] = value
            else:
                ignored.append(f"{section}.{key}")

    for section, model in SECTIONS.items():
        for key, info in model.model_fields.items():
            var = f"MM_{section}_{key}".upper()
            if var in env:
                known.setdefault(section, {})[key] = _from_env(
                    f"{section}.{key}", env[var], info.annotation
                )

    try:
        settings = Settings.model_validate(known)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return LoadedConfig(settings=settings, ignored=sorted(ignored), source=source, environ=environ)


def _from_env(path: str, text: str, annotation: Any) -> Any:
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"{path}: expected true or false, got {text!r}")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {text!r}") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {text!r}") from None
    if get_origin(annotation) is list:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not a JSON array: {exc}") from None
            return value
        return stripped.split()
    return text


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)


def config_hash(settings: Settings) -> str:
    """A hash compared between nodes of a cluster: everything but ClusterSettings and the
    per-node listen addresses (several nodes on one host differ only in their ports)."""
    data = settings.model_dump(
        mode="json",
        exclude={
            "ClusterSettings": True,
            "ServiceSettings": {"ListenAddress"},
            "MetricsSettings": {"ListenAddress"},
        },
    )
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def masked(settings: Settings) -> dict[str, Any]:
    data = settings.model_dump(mode="json")
    for section, key in SECRETS:
        value = data[section][key]
        if isinstance(value, list):
            data[section][key] = ["********" for _ in value]
        elif value:
            data[section][key] = "********"
    return data
