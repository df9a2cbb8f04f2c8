"""Typed endpoint configuration, validated, loaded from XML (``SipEndpoint.config``) or TOML.

Theory of operation: :class:`EndpointConfig` (endpoint-wide policy) holds one
:class:`ConnectionConfig` per server site; both are frozen attrs values that validate themselves
and raise :class:`ConfigErrors` (a :class:`~trio_sip.proto.errors.ConfigError`) listing every bad
value with its setting, the value and what is allowed. :func:`load_config` picks the loader by
suffix: ``.xml``/``.config`` → :func:`load_xml` (the layout existing SIP endpoint deployments
use), ``.toml`` → :func:`load_toml`. Loaders return a :class:`LoadedConfig` whose ``warnings``
list everything in the file that was not applied; ``strict=True`` makes those errors instead.
See docs/configuration.md for every setting.
"""

from __future__ import annotations

from pathlib import Path

from ..proto.errors import ConfigError
from ._build import ConfigWarning, LoadedConfig
from .model import TRANSPORTS, ConfigErrors, ConnectionConfig, EndpointConfig, ListenAddress
from .toml import load_toml, loads_toml
from .xml import load_xml, loads_xml

__all__ = [
    "TRANSPORTS",
    "ConfigError",
    "ConfigErrors",
    "ConfigWarning",
    "ConnectionConfig",
    "EndpointConfig",
    "ListenAddress",
    "LoadedConfig",
    "load_config",
    "load_toml",
    "load_xml",
    "loads_toml",
    "loads_xml",
]

_LOADERS = {".xml": load_xml, ".config": load_xml, ".toml": load_toml}


def load_config(path: str | Path, *, strict: bool = False) -> LoadedConfig:
    """Load a configuration file, choosing the format by suffix (.xml, .config or .toml).

    Raises :class:`ConfigError` (a ``ConfigErrors`` listing every problem, each naming its
    setting, value and allowed range) for bad values or an unknown suffix, and ``OSError``
    when the file cannot be read."""
    path = Path(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ConfigErrors([ConfigError(str(path), path.suffix, "a .xml, .config or .toml file")])
    return loader(path, strict=strict)
