"""XML configuration in the ``SipEndpoint.config`` layout of existing SIP endpoint deployments.

Theory of operation. The layout (as used by e.g. the Genesys SIP Endpoint SDK)::

    <Container name="Basic">
      <Connectivity user="5001" server="sip-a.example.com:5060" protocol="TCP"/>
      <Connectivity user="5001" server="sip-b.example.com:5060" protocol="TCP"/>
    </Container>
    <Container name="Genesys">
      <domain name="policy">
        <section name="endpoint">
          <setting name="sip_transaction_timeout" value="4000"/>
        </section>
      </domain>
      <domain name="proxies">
        <section name="proxy0"> <setting name="reg_interval" value="30"/> </section>
        <section name="proxy1"> <setting name="reg_interval" value="30"/> </section>
      </domain>
    </Container>

Each ``Connectivity`` is one connection (``transport`` is accepted as a synonym of ``protocol``,
and ``id`` is a trio-sip extension; the id defaults to ``proxy<N>``). Section ``proxy<N>`` of
domain ``proxies`` holds the settings of the N-th Connectivity (0-based, in document order);
section ``endpoint`` of domain ``policy`` holds endpoint settings. The containers may be
top-level siblings (as in the SDK's file, which is then not one XML document), or children of one
wrapper element. The snippets of the SDK's documentation load as they are written: a lone
``<domain>`` belongs to the ``Genesys`` container and a lone ``<Connectivity>`` to ``Basic``;
elements still open where the input ends are closed there (:mod:`._xmlparse`); spaces around
attribute values and names are ignored (``server=" SipServer2:5060"``).

A file with no ``Connectivity`` at all may still hold ``proxy<N>`` sections: their settings are
kept, validated, in :attr:`LoadedConfig.connection_settings` for connections defined elsewhere
(the command line's ``--server``; :meth:`LoadedConfig.configure_connections`).

Values are strings: integers and booleans (1/0, true/false, yes/no, on/off) are converted here,
and the model checks ranges; every error names the place in the file as
``container/domain/section/setting`` (``Genesys/proxies/proxy1/reg_interval``) or
``Basic/Connectivity[1]/server``. An empty value leaves the default, except ``reg_timeout``,
which is 0 (do not register), as the SDK documents. Every element, attribute, domain, section or
setting that trio-sip does not apply (the SDK's media and codec settings, for instance) becomes a
warning on the result, or an error with ``strict=True``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..proto.errors import ConfigError
from ._build import ENDPOINT_FIELDS, Builder, LoadedConfig
from ._xmlparse import parse_fragment
from .model import EndpointConfig, ListenAddress

__all__ = ["load_xml", "loads_xml"]

_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}
_BOOL_ALLOWED = "a boolean: 1/0, true/false, yes/no, on/off"
_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*")

_INT, _BOOL, _TEXT, _FILE, _LIST, _LISTEN = "int", "bool", "text", "file", "list", "listen"
_ENDPOINT_KINDS = {
    "hold_other_calls": _BOOL,
    "tls_verify": _BOOL,
    "user_agent": _TEXT,
    "dns_server": _TEXT,
    "tls_ca_file": _FILE,
    "tls_cert_file": _FILE,
    "tls_key_file": _FILE,
    "listen": _LISTEN,
}
_ENDPOINT_KINDS |= {name: _INT for name in ENDPOINT_FIELDS if name not in _ENDPOINT_KINDS}
#: The SDK's re-registration interval (seed 001): the Expires asked for in REGISTER, which sets
#: when the binding is refreshed. In proxy<N> for one connection, in policy/endpoint for all.
_REREGISTER = "reregister_in_seconds"
_REREGISTER_ALLOWED = "an integer 1..2147483647 (seconds: the Expires asked for in REGISTER)"
#: proxies/proxy<N> setting -> (ConnectionConfig field, kind). The first five are the SDK's.
_PROXY_SETTINGS = {
    "display_name": ("display_name", _TEXT),
    "password": ("password", _TEXT),
    "reg_interval": ("reg_interval", _INT),
    "reg_timeout": ("expires", _INT),
    _REREGISTER: ("expires", _INT),
    "expires": ("expires", _INT),
    "auth_user": ("auth_user", _TEXT),
    "realm": ("realm", _TEXT),
    "enabled": ("enabled", _BOOL),
    "outbound_proxies": ("outbound_proxies", _LIST),
}
_CONNECTIVITY_ATTRS = ("user", "server", "protocol", "transport", "id")
_TOP = ("Container", "domain", "Connectivity")
_PROXY_RE = re.compile(r"proxy(0|[1-9][0-9]*)")

Fields = tuple[dict[str, Any], dict[str, str]]  # (model field -> value, field -> location)


def load_xml(path: str | Path, *, strict: bool = False) -> LoadedConfig:
    """Load and validate a ``SipEndpoint.config``-style XML file."""
    path = Path(path)
    return loads_xml(path.read_bytes(), strict=strict, source=str(path), base_dir=path.parent)


def loads_xml(
    data: str | bytes,
    *,
    strict: bool = False,
    source: str = "<string>",
    base_dir: Path | None = None,
) -> LoadedConfig:
    """Validate XML text or bytes (a whole file or a fragment); ``source`` names it in
    messages."""
    root = parse_fragment(data, source)
    build = Builder(strict=strict)
    reader = _Reader(build, base_dir)
    for element in root:
        if element.tag in _TOP:
            reader.top(element)
        elif any(child.tag in _TOP for child in element):  # a wrapper element
            for child in element:
                if child.tag in _TOP:
                    reader.top(child)
                else:
                    build.unknown(f"{element.tag}/{child.tag}", child.tag, _TOP, "element")
        else:
            build.unknown(element.tag, element.tag, _TOP, "element")
    config = reader.finish()
    return build.finish(config, source, reader.settings_out, reader.defaults_out)


def _get(element: ET.Element, name: str) -> str | None:
    """An attribute without the spaces around it (the SDK's samples have some)."""
    value = element.get(name)
    return value.strip() if value is not None else None


class _Reader:
    """Walks the containers, then builds connections and the endpoint."""

    def __init__(self, build: Builder, base_dir: Path | None) -> None:
        self.build = build
        self.base_dir = base_dir
        #: per Connectivity: (fields, locations)
        self.connections: list[Fields] = []
        #: proxies/proxy<N> sections, read once every Connectivity is known
        self.proxies: list[tuple[int, str, ET.Element]] = []
        self.endpoint: dict[str, Any] = {}
        self.endpoint_locations: dict[str, str] = {}
        self.endpoint_prefix = "Genesys/policy/endpoint/"
        #: connection fields every connection gets unless its section sets them
        self.defaults: Fields = ({}, {})
        #: for LoadedConfig: the settings of each proxy<N> section, and the defaults
        self.settings_out: list[dict[str, Any]] = []
        self.defaults_out: dict[str, Any] = {}

    def attrs(self, element: ET.Element, where: str, known: tuple[str, ...]) -> None:
        for name in element.attrib:
            if name.strip() not in known:
                self.build.unknown(f"{where}/@{name}", name, known, "attribute")

    def named(self, element: ET.Element, where: str) -> str | None:
        self.attrs(element, where, ("name",))
        name = _get(element, "name")
        if not name:
            self.build.error(f"{where}/@name", name, "a name attribute")
        return name

    def top(self, element: ET.Element) -> None:
        """A top-level element: a Container, or a lone domain (of the Genesys container) or
        Connectivity (of the Basic container) as the SDK's documentation shows them."""
        if element.tag == "Container":
            self.container(element)
        elif element.tag == "domain":
            self.domain(element, "Genesys")
        else:
            self.connectivity(element, f"Basic/Connectivity[{len(self.connections)}]")

    def container(self, element: ET.Element) -> None:
        name = self.named(element, "Container")
        if name is None:
            return
        for child in element:
            if child.tag == "Connectivity":
                self.connectivity(child, f"{name}/Connectivity[{len(self.connections)}]")
            elif child.tag == "domain":
                self.domain(child, name)
            else:
                known = ("Connectivity", "domain")
                self.build.unknown(f"{name}/{child.tag}", child.tag, known, "element")

    def connectivity(self, element: ET.Element, where: str) -> None:
        self.attrs(element, where, _CONNECTIVITY_ATTRS)
        for child in element:
            self.build.unknown(f"{where}/{child.tag}", child.tag, (), "element")
        fields: dict[str, Any] = {"id": _get(element, "id") or f"proxy{len(self.connections)}"}
        locations = {"id": f"{where}/id"}
        for attr in ("user", "server"):
            fields[attr] = _get(element, attr)
            locations[attr] = f"{where}/{attr}"
        protocol, transport = _get(element, "protocol"), _get(element, "transport")
        if protocol is not None and transport is not None and protocol != transport:
            self.build.error(f"{where}/transport", transport, f"the same as protocol ({protocol})")
        if protocol is not None or transport is not None:
            fields["transport"] = protocol if protocol is not None else transport
            locations["transport"] = (
                f"{where}/{'protocol' if protocol is not None else 'transport'}"
            )
        self.connections.append((fields, locations))

    def domain(self, element: ET.Element, container: str) -> None:
        name = self.named(element, f"{container}/domain")
        if name is None:
            return
        where = f"{container}/{name}"
        if name not in ("policy", "proxies"):
            self.build.unknown(where, name, ("policy", "proxies"), "domain")
            return
        for section in element:
            if section.tag != "section":
                self.build.unknown(f"{where}/{section.tag}", section.tag, ["section"], "element")
                continue
            section_name = self.named(section, f"{where}/section")
            if section_name is None:
                continue
            match = _PROXY_RE.fullmatch(section_name)
            if name == "policy" and section_name == "endpoint":
                self.endpoint_prefix = f"{where}/endpoint/"
                for setting, value, at in self.settings(section, f"{where}/endpoint"):
                    self.endpoint_setting(setting, value, at)
            elif name == "proxies" and match:
                self.proxies.append((int(match.group(1)), f"{where}/{section_name}", section))
            else:
                known = ["endpoint"] if name == "policy" else ["proxy0", "proxy1", "..."]
                self.build.unknown(f"{where}/{section_name}", section_name, known, "section")

    def settings(self, section: ET.Element, where: str) -> list[tuple[str, str, str]]:
        """The ``(name, value, location)`` of each setting; reports everything else."""
        out = []
        for child in section:
            if child.tag != "setting":
                label = (child.get("name") or child.tag).strip()
                message = f"{child.tag} {label!r} not applied (only settings are read here)"
                self.build.doubt(f"{where}/{label}", label, "only <setting> elements", message)
                continue
            self.attrs(child, f"{where}/setting", ("name", "value"))
            name, value = _get(child, "name"), child.get("value")
            if not name or value is None:
                at = f"{where}/{name or 'setting'}"
                self.build.error(at, value, "a setting with name and value attributes")
                continue
            out.append((name, value, f"{where}/{name}"))
        return out

    def convert(self, kind: str, value: str, at: str) -> tuple[bool, Any]:
        """``(ok, python value)``; on a bad boolean, listen entry or file the error is
        recorded."""
        if kind == _INT:
            return True, int(value) if _INT_RE.fullmatch(value) else value  # model checks range
        if kind == _BOOL:
            flag = _BOOLS.get(value.strip().lower())
            if flag is None:
                self.build.error(at, value, _BOOL_ALLOWED)
            return flag is not None, flag
        if kind == _LIST:
            return True, [item.strip() for item in value.split(",") if item.strip()]
        if kind == _FILE:
            path = self.build.existing_file(at, value.strip(), self.base_dir)
            return path is not None, path
        if kind == _LISTEN:
            listen, ok = [], True
            for index, item in enumerate(i.strip() for i in value.split(",") if i.strip()):
                try:
                    listen.append(ListenAddress.parse(item))
                except ConfigError as exc:
                    self.build.error(f"{at}[{index}]", item, exc.allowed)
                    ok = False
            return ok, listen
        return True, value

    def reregister(self, value: str, at: str) -> int | None:
        """``reregister_in_seconds`` as an int, or None after recording the error."""
        if _INT_RE.fullmatch(value) and int(value) >= 1:
            return int(value)
        self.build.error(at, value, _REREGISTER_ALLOWED)
        return None

    def endpoint_setting(self, name: str, value: str, at: str) -> None:
        if name == _REREGISTER:  # a connection setting given for every connection
            fields, locations = self.defaults
            self.repeat("expires", locations, at, value)
            seconds = self.reregister(value, at)
            if seconds is not None:
                fields["expires"], locations["expires"] = seconds, at
            return
        kind = _ENDPOINT_KINDS.get(name)
        if kind is None:
            self.build.unknown(at, name, (*ENDPOINT_FIELDS, _REREGISTER), "setting")
            return
        self.repeat(name, self.endpoint_locations, at, value)
        ok, converted = self.convert(kind, value, at) if value.strip() else (False, None)
        if ok:
            self.endpoint[name] = converted
            self.endpoint_locations[name] = at

    def repeat(self, field: str, locations: dict[str, str], at: str, value: str) -> None:
        if field in locations:
            allowed = f"one value; already set at {locations[field]}"
            self.build.doubt(at, value, allowed, f"repeats {locations[field]}; the last one wins")

    def proxy(self, where: str, section: ET.Element) -> Fields:
        """The connection fields one proxy<N> section sets."""
        fields: dict[str, Any] = {}
        locations: dict[str, str] = {}
        for name, value, at in self.settings(section, where):
            field, kind = _PROXY_SETTINGS.get(name, (None, _TEXT))
            if field is None:
                self.build.unknown(at, name, _PROXY_SETTINGS, "setting")
                continue
            self.repeat(field, locations, at, value)
            if not value.strip():
                if name != "reg_timeout":
                    continue  # empty: keep the default
                value = "0"  # the SDK reads an empty reg_timeout as 0: standalone mode
            if name == _REREGISTER:
                seconds = self.reregister(value, at)
                ok, converted = seconds is not None, seconds
            else:
                ok, converted = self.convert(kind, value, at)
            if ok:
                fields[field] = converted
                locations[field] = at
        return fields, locations

    def finish(self) -> EndpointConfig | None:
        sections: dict[int, Fields] = {}
        for index, where, section in self.proxies:
            if self.connections and index >= len(self.connections):
                allowed = f"proxy0..proxy{len(self.connections) - 1} (one per Connectivity)"
                message = f"no Connectivity[{index}] for this section; its settings are not applied"
                self.build.doubt(where, section.get("name"), allowed, message)
                continue
            fields, locations = self.proxy(where, section)
            if index in sections:  # the same section twice: the later settings win
                sections[index][0].update(fields)
                sections[index][1].update(locations)
            else:
                sections[index] = (fields, locations)
        default_fields, default_locations = self.defaults
        for index, (fields, locations) in enumerate(self.connections):
            section_fields, section_locations = sections.get(index, ({}, {}))
            fields.update(default_fields | section_fields)
            locations.update(default_locations | section_locations)
            self.build.connection(fields, locations, "")
        if not self.connections:  # settings for connections defined elsewhere: check them now
            for fields, locations in sections.values():
                self.build.check_connection(default_fields | fields, default_locations | locations)
        self.settings_out = [
            sections.get(i, ({}, {}))[0] for i in range(max(sections, default=-1) + 1)
        ]
        self.defaults_out = default_fields
        return self.build.endpoint(self.endpoint, self.endpoint_locations, self.endpoint_prefix)
