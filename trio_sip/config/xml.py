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
wrapper element: the text is parsed inside a synthetic root, so both load.

Values are strings: integers and booleans (1/0, true/false, yes/no, on/off) are converted here,
and the model checks ranges; every error names the place in the file as
``container/domain/section/setting`` (``Genesys/proxies/proxy1/reg_interval``) or
``Basic/Connectivity[1]/server``. An empty value leaves the default, except ``reg_timeout``,
which is 0 (do not register), as the SDK documents. Every element, attribute, domain, section or
setting that trio-sip does not apply (the SDK's media and codec settings, for instance) becomes a
warning on the result, or an error with ``strict=True``.

Security: defusedxml is not a dependency, so the loader refuses any DOCTYPE or ENTITY
declaration before parsing (this blocks entity-expansion "billion laughs" and external-entity
attacks); :mod:`xml.etree.ElementTree` never fetches external resources.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..proto.errors import ConfigError
from ._build import ENDPOINT_FIELDS, Builder, LoadedConfig
from .model import ConfigErrors, EndpointConfig, ListenAddress

__all__ = ["load_xml", "loads_xml"]

_DECLARATION_RE = re.compile(r"\A\s*<\?xml[^>]*\?>")
_ENCODING_RE = re.compile(rb"\A\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT = "trio-sip-root"
_PREFIX = f"<{_ROOT}>"
_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}
_BOOL_ALLOWED = "a boolean: 1/0, true/false, yes/no, on/off"
_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*")

_INT, _BOOL, _TEXT, _LIST, _LISTEN = "int", "bool", "text", "list", "listen"
_ENDPOINT_KINDS = {
    "hold_other_calls": _BOOL,
    "tls_verify": _BOOL,
    "user_agent": _TEXT,
    "dns_server": _TEXT,
    "tls_ca_file": _TEXT,
    "listen": _LISTEN,
}
_ENDPOINT_KINDS |= {name: _INT for name in ENDPOINT_FIELDS if name not in _ENDPOINT_KINDS}
#: proxies/proxy<N> setting -> (ConnectionConfig field, kind). The first four are the SDK's names.
_PROXY_SETTINGS = {
    "display_name": ("display_name", _TEXT),
    "password": ("password", _TEXT),
    "reg_interval": ("reg_interval", _INT),
    "reg_timeout": ("expires", _INT),
    "expires": ("expires", _INT),
    "auth_user": ("auth_user", _TEXT),
    "realm": ("realm", _TEXT),
    "enabled": ("enabled", _BOOL),
    "outbound_proxies": ("outbound_proxies", _LIST),
}
_CONNECTIVITY_ATTRS = ("user", "server", "protocol", "transport", "id")
_PROXY_RE = re.compile(r"proxy(0|[1-9][0-9]*)")


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
    """Validate XML text or bytes; ``source`` names it in messages."""
    root = _parse(data, source)
    build = Builder(strict=strict)
    reader = _Reader(build, base_dir)
    for element in root:
        if element.tag == "Container":
            reader.container(element)
        elif any(child.tag == "Container" for child in element):  # a wrapper element
            for child in element:
                if child.tag == "Container":
                    reader.container(child)
                else:
                    build.unknown(f"{element.tag}/{child.tag}", child.tag, ["Container"], "element")
        else:
            build.unknown(element.tag, element.tag, ["Container"], "element")
    return build.finish(reader.finish(), source)


def _parse(data: str | bytes, source: str) -> ET.Element:
    def fail(value: object, allowed: str) -> ConfigErrors:
        return ConfigErrors([ConfigError(source, value, allowed)])

    if isinstance(data, bytes):
        match = _ENCODING_RE.match(data)
        encoding = match.group(1).decode("ascii") if match else "utf-8"
        if data.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise fail(encoding, f"text in the declared encoding ({exc})") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    dtd = _DTD_RE.search(text)
    if dtd:
        allowed = "no DOCTYPE or ENTITY declaration (refused: entity-expansion defence)"
        raise fail(f"<!{dtd.group(1)}", allowed)
    # Keep line and column numbers: blank the declaration out instead of deleting it.
    text = _DECLARATION_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    try:
        return ET.fromstring(f"{_PREFIX}{text}</{_ROOT}>")
    except ET.ParseError as exc:
        line, column = exc.position
        if line == 1:
            column -= len(_PREFIX)
        reason = str(exc).split(":")[0]
        raise fail(f"line {line}, column {column + 1}", f"well-formed XML ({reason})") from None


class _Reader:
    """Walks the containers, then builds connections and the endpoint."""

    def __init__(self, build: Builder, base_dir: Path | None) -> None:
        self.build = build
        self.base_dir = base_dir
        #: per Connectivity: (fields, locations)
        self.connections: list[tuple[dict[str, Any], dict[str, str]]] = []
        #: proxies/proxy<N> sections, applied once every Connectivity is known
        self.proxies: list[tuple[int, str, ET.Element]] = []
        self.endpoint: dict[str, Any] = {}
        self.endpoint_locations: dict[str, str] = {}
        self.endpoint_prefix = "Genesys/policy/endpoint/"

    def attrs(self, element: ET.Element, where: str, known: tuple[str, ...]) -> None:
        for name in element.attrib:
            if name not in known:
                self.build.unknown(f"{where}/@{name}", name, known, "attribute")

    def named(self, element: ET.Element, where: str) -> str | None:
        self.attrs(element, where, ("name",))
        name = element.get("name")
        if not name:
            self.build.error(f"{where}/@name", name, "a name attribute")
        return name

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
        fields: dict[str, Any] = {"id": element.get("id", f"proxy{len(self.connections)}")}
        locations = {"id": f"{where}/id"}
        for attr in ("user", "server"):
            fields[attr] = element.get(attr)
            locations[attr] = f"{where}/{attr}"
        protocol, transport = element.get("protocol"), element.get("transport")
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
                label = child.get("name", child.tag)
                message = f"{child.tag} {label!r} not applied (only settings are read here)"
                self.build.doubt(f"{where}/{label}", label, "only <setting> elements", message)
                continue
            self.attrs(child, f"{where}/setting", ("name", "value"))
            name, value = child.get("name"), child.get("value")
            if not name or value is None:
                at = f"{where}/{name or 'setting'}"
                self.build.error(at, value, "a setting with name and value attributes")
                continue
            out.append((name, value, f"{where}/{name}"))
        return out

    def convert(self, kind: str, value: str, at: str) -> tuple[bool, Any]:
        """``(ok, python value)``; on a bad boolean or listen entry the error is recorded."""
        if kind == _INT:
            return True, int(value) if _INT_RE.fullmatch(value) else value  # model checks range
        if kind == _BOOL:
            flag = _BOOLS.get(value.strip().lower())
            if flag is None:
                self.build.error(at, value, _BOOL_ALLOWED)
            return flag is not None, flag
        if kind == _LIST:
            return True, [item.strip() for item in value.split(",") if item.strip()]
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

    def endpoint_setting(self, name: str, value: str, at: str) -> None:
        kind = _ENDPOINT_KINDS.get(name)
        if kind is None:
            self.build.unknown(at, name, ENDPOINT_FIELDS, "setting")
            return
        self.repeat(name, self.endpoint_locations, at, value)
        ok, converted = self.convert(kind, value, at) if value.strip() else (False, None)
        if name == "tls_ca_file" and ok:
            converted = self.build.existing_file(at, converted, self.base_dir)
            ok = converted is not None
        if ok:
            self.endpoint[name] = converted
            self.endpoint_locations[name] = at

    def repeat(self, field: str, locations: dict[str, str], at: str, value: str) -> None:
        if field in locations:
            allowed = f"one value; already set at {locations[field]}"
            self.build.doubt(at, value, allowed, f"repeats {locations[field]}; the last one wins")

    def proxy(self, index: int, where: str, section: ET.Element) -> None:
        if index >= len(self.connections):
            allowed = f"proxy0..proxy{len(self.connections) - 1} (one per Connectivity)"
            message = f"no Connectivity[{index}] for this section; its settings are not applied"
            self.build.doubt(where, section.get("name"), allowed, message)
            return
        fields, locations = self.connections[index]
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
            ok, converted = self.convert(kind, value, at)
            if ok:
                fields[field] = converted
                locations[field] = at

    def finish(self) -> EndpointConfig | None:
        for index, where, section in self.proxies:
            self.proxy(index, where, section)
        for fields, locations in self.connections:
            self.build.connection(fields, locations, "")
        return self.build.endpoint(self.endpoint, self.endpoint_locations, self.endpoint_prefix)
