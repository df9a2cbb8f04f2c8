"""TOML configuration files (stdlib ``tomllib``), the format for new deployments.

Theory of operation: the schema mirrors the model one to one, so there is nothing to translate::

    [endpoint]                 # EndpointConfig settings (all optional)
    sip_transaction_timeout = 4000
    listen = ["UDP:0.0.0.0:5060", { transport = "TCP", host = "0.0.0.0", port = 5060 }]

    [[connections]]            # one table per server site (ConnectionConfig)
    id = "site-a"
    user = "5001"
    server = "sip-a.example.com:5060"

TOML values are already typed, so they go to the model as they are and the model's checks
report a wrong type together with the allowed range (``connections[0].reg_interval='60' is not
allowed: an integer 0..86400 ...``). Errors are named by their TOML path; unknown tables and keys
become warnings on the :class:`~trio_sip.config.LoadedConfig` (errors with ``strict=True``).
A relative ``tls_ca_file``, ``tls_cert_file`` or ``tls_key_file`` is relative to the file's
folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from ..proto.errors import ConfigError
from ._build import CONNECTION_FIELDS, ENDPOINT_FIELDS, Builder, LoadedConfig
from .model import ConfigErrors, ListenAddress

__all__ = ["load_toml", "loads_toml"]

_LISTEN_KEYS = tuple(f.name for f in attrs.fields(ListenAddress))


def load_toml(path: str | Path, *, strict: bool = False) -> LoadedConfig:
    """Load and validate a TOML configuration file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(str(path), exc.reason, "UTF-8 text (TOML)")]) from None
    return loads_toml(text, strict=strict, source=str(path), base_dir=path.parent)


def loads_toml(
    text: str, *, strict: bool = False, source: str = "<string>", base_dir: Path | None = None
) -> LoadedConfig:
    """Validate TOML text; ``source`` names it in messages, ``base_dir`` anchors relative paths."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([ConfigError(source, str(exc), "valid TOML")]) from None
    build = Builder(strict=strict)
    for key in doc:
        if key not in ("endpoint", "connections"):
            build.unknown(key, key, ("endpoint", "connections"), "table")

    endpoint = doc.get("endpoint", {})
    fields: dict[str, Any] = {}
    if isinstance(endpoint, dict):
        fields = _fields(build, endpoint, "endpoint.", ENDPOINT_FIELDS)
    else:
        build.error("endpoint", endpoint, "a table of endpoint settings ([endpoint])")
    if "listen" in fields:
        fields["listen"] = _listen(build, fields["listen"])
    for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        if name in fields:
            fields[name] = build.existing_file(f"endpoint.{name}", fields[name], base_dir)
    # None marks a value already reported above (TOML itself has no null).
    fields = {name: value for name, value in fields.items() if value is not None}

    items = doc.get("connections", [])
    if not isinstance(items, list):
        build.error("connections", items, "an array of tables ([[connections]])")
        items = []
    for index, item in enumerate(items):
        prefix = f"connections[{index}]."
        if not isinstance(item, dict):
            build.error(prefix[:-1], item, "a table of connection settings")
            continue
        conn_fields = _fields(build, item, prefix, CONNECTION_FIELDS)
        for required in ("id", "user", "server"):
            conn_fields.setdefault(required, None)  # the model names what is missing
        build.connection(conn_fields, {}, prefix)
    config = build.endpoint(fields, {}, "endpoint.")
    return build.finish(config, source)


def _fields(
    build: Builder, table: dict[str, Any], prefix: str, known: tuple[str, ...]
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in table.items():
        if key in known:
            fields[key] = value
        else:
            build.unknown(f"{prefix}{key}", key, known, "key")
    return fields


def _listen(build: Builder, value: Any) -> Any:
    """Turn listen strings and tables into ListenAddress values, recording every problem."""
    if not isinstance(value, list):
        return value  # the model reports "a list"
    out: list[ListenAddress] = []
    ok = True
    for index, item in enumerate(value):
        where = f"endpoint.listen[{index}]"
        try:
            if isinstance(item, str):
                out.append(ListenAddress.parse(item))
            elif isinstance(item, dict):
                for key in item.keys() - set(_LISTEN_KEYS):
                    build.unknown(f"{where}.{key}", key, _LISTEN_KEYS, "key")
                missing = [key for key in _LISTEN_KEYS if key not in item]
                if missing:
                    build.error(f"{where}.{missing[0]}", None, "required")
                    ok = False
                    continue
                out.append(ListenAddress(**{key: item[key] for key in _LISTEN_KEYS}))
            else:
                build.error(where, item, "a string TRANSPORT:ip[:port] or a table")
                ok = False
        except ConfigError as exc:
            errors = exc.errors if isinstance(exc, ConfigErrors) else (exc,)
            for err in errors:
                sub = "" if err.setting == "listen" else f".{err.setting}"
                build.error(f"{where}{sub}", err.value, err.allowed)
            ok = False
    return out if ok else None
