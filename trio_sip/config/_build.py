"""Shared loader plumbing: warnings, the loaded result, and errors that name the file location.

Theory of operation: a loader walks its file and hands raw values to a :class:`Builder`, each
with the *location* it came from (``Genesys/proxies/proxy1/reg_interval`` in XML,
``connections[1].reg_interval`` in TOML). The builder constructs the model objects; the model
validates and reports problems under its own field names, and the builder renames each problem to
the location the value came from. Problems found while reading (bad syntax, unknown names in
strict mode) join the same list, so the user sees every problem of a file in one
:class:`~trio_sip.config.model.ConfigErrors`, in file order. Unknown names are never dropped
silently: they become :class:`ConfigWarning` entries, or errors when ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from ..proto.errors import ConfigError
from .model import ConfigErrors, ConnectionConfig, EndpointConfig, raise_all

__all__ = ["Builder", "ConfigWarning", "LoadedConfig"]

#: Model fields a file may set, per object.
ENDPOINT_FIELDS = tuple(f.name for f in attrs.fields(EndpointConfig) if f.name != "connections")
CONNECTION_FIELDS = tuple(f.name for f in attrs.fields(ConnectionConfig))


@attrs.frozen(slots=True)
class ConfigWarning:
    """Something in a file that trio-sip did not apply (an unknown setting, say)."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def _settings(value: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(MappingProxyType(dict(item)) for item in value)


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class LoadedConfig:
    """A loaded file: the validated ``config``, the ``warnings`` about it and its ``source``.

    ``connection_settings[N]`` holds what the file sets for connection N (an XML ``proxy<N>``
    section: model field -> value, already in ``config.connections[N]`` when the file defines
    that connection) and ``connection_defaults`` what it sets for every connection (XML
    ``reregister_in_seconds`` in ``policy/endpoint``), so that connections defined elsewhere
    (the command line's ``--server``) get them too: :meth:`configure_connections`.
    """

    config: EndpointConfig
    warnings: tuple[ConfigWarning, ...] = ()
    source: str = "<string>"
    connection_settings: tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), converter=_settings
    )
    connection_defaults: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def configure_connections(
        self, connections: Iterable[ConnectionConfig]
    ) -> tuple[ConnectionConfig, ...]:
        """``connections`` with the file's settings applied: connection N gets
        ``connection_defaults``, then ``connection_settings[N]`` (validated again)."""
        out = []
        for index, conn in enumerate(connections):
            fields = dict(self.connection_defaults)
            if index < len(self.connection_settings):
                fields.update(self.connection_settings[index])
            out.append(attrs.evolve(conn, **fields) if fields else conn)
        return tuple(out)


def _relocate(err: ConfigError, locations: Mapping[str, str], prefix: str) -> ConfigError:
    """Rename ``err.setting`` (a model field, maybe with ``[i]``) to where the value came from."""
    cut = min((i for i in (err.setting.find("["), err.setting.find(".")) if i >= 0), default=-1)
    base, rest = (err.setting, "") if cut < 0 else (err.setting[:cut], err.setting[cut:])
    where = locations.get(base, f"{prefix}{base}")
    return ConfigError(f"{where}{rest}", err.value, err.allowed)


class Builder:
    """Collects errors and warnings while a loader reads one file."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigWarning] = []
        self._ids: dict[str, str] = {}  # connection id -> where it was first written
        self._connections: list[ConnectionConfig] = []

    def error(self, setting: str, value: object, allowed: str) -> None:
        self.errors.append(ConfigError(setting, value, allowed))

    def doubt(self, location: str, value: object, allowed: str, message: str) -> None:
        """Something applied or dropped with doubt: a warning, or an error in strict mode."""
        if self.strict:
            self.error(location, value, allowed)
        else:
            self.warnings.append(ConfigWarning(location, message))

    def unknown(self, location: str, value: object, known: Iterable[str], what: str) -> None:
        """Report an unknown name: a warning, or an error in strict mode."""
        names = sorted(known)
        allowed = f"a known {what}: {', '.join(names)}" if names else f"no {what} here"
        self.doubt(location, value, allowed, f"unknown {what} {value!r} not applied")

    def existing_file(self, location: str, value: Any, base_dir: Path | None) -> Any:
        """Resolve a path against the file's folder and check it exists.

        Returns the resolved path, ``value`` unchanged when it is not a non-empty string (the
        model reports it), or None after recording an error.
        """
        if not isinstance(value, str) or not value:
            return value
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            allowed = "an existing file (a relative path is relative to the configuration file)"
            self.error(location, value, allowed)
            return None
        return str(path)

    def warn(self, location: str, message: str) -> None:
        self.warnings.append(ConfigWarning(location, message))

    def connection(self, fields: dict[str, Any], locations: Mapping[str, str], prefix: str) -> None:
        """Build one connection, recording relocated errors, and keep it for :meth:`endpoint`.

        Ids are checked for uniqueness here, against every earlier connection of the file (valid
        or not), so a duplicate is reported where it was written.
        """
        id_location = locations.get("id", f"{prefix}id")
        conn_id = fields.get("id")
        earlier = self._ids.get(conn_id) if isinstance(conn_id, str) else None
        if earlier is not None:
            self.error(id_location, conn_id, f"a unique id; already used by {earlier}")
        elif isinstance(conn_id, str):
            self._ids[conn_id] = id_location
        try:
            conn = ConnectionConfig(**fields)
        except ConfigErrors as exc:
            self.errors.extend(_relocate(err, locations, prefix) for err in exc.errors)
            return
        if earlier is None:
            self._connections.append(conn)

    def check_connection(self, fields: dict[str, Any], locations: Mapping[str, str]) -> None:
        """Validate settings meant for a connection defined elsewhere (none here to build)."""
        probe = {"id": "probe", "user": "probe", "server": "probe.invalid"} | fields
        try:
            ConnectionConfig(**probe)
        except ConfigErrors as exc:
            self.errors.extend(_relocate(err, locations, "") for err in exc.errors)

    def endpoint(
        self, fields: dict[str, Any], locations: Mapping[str, str], prefix: str
    ) -> EndpointConfig | None:
        """Build the endpoint from the connections that validated."""
        try:
            return EndpointConfig(**fields, connections=self._connections)
        except ConfigErrors as exc:
            self.errors.extend(_relocate(err, locations, prefix) for err in exc.errors)
            return None

    def finish(
        self,
        config: EndpointConfig | None,
        source: str,
        connection_settings: Iterable[Mapping[str, Any]] = (),
        connection_defaults: Mapping[str, Any] | None = None,
    ) -> LoadedConfig:
        """Raise :class:`ConfigErrors` listing every problem, or return the loaded result."""
        raise_all(self.errors)
        assert config is not None, "a failed build always records an error"
        return LoadedConfig(
            config,
            tuple(self.warnings),
            source,
            tuple(connection_settings),
            connection_defaults or {},
        )
