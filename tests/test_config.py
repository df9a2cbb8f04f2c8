"""Configuration: the validated model, the SipEndpoint.config XML loader and the TOML loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from trio_sip.config import (
    ConfigError,
    ConfigErrors,
    ConnectionConfig,
    EndpointConfig,
    ListenAddress,
    load_config,
    loads_toml,
    loads_xml,
)

DATA = Path(__file__).parent / "data" / "config"


def conn(**kw: Any) -> ConnectionConfig:
    fields: dict[str, Any] = {"id": "east", "user": "5001", "server": "sip.example.com"}
    return ConnectionConfig(**(fields | kw))


def the_error(exc: pytest.ExceptionInfo[ConfigError], setting: str) -> ConfigError:
    """The one reported problem for ``setting`` (and its message names it)."""
    errors = exc.value.errors if isinstance(exc.value, ConfigErrors) else (exc.value,)
    found = [err for err in errors if err.setting == setting]
    assert found, f"no error for {setting}; got {[str(e) for e in errors]}"
    assert str(found[0]) in str(exc.value)
    return found[0]


# --- the model -------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    ep = EndpointConfig()
    assert (ep.sip_transaction_timeout, ep.t1, ep.t2, ep.t4) == (32000, 500, 4000, 5000)
    assert (ep.keep_alive_period, ep.rfc5626_pong_timeout) == (0, 10)
    assert ep.hold_other_calls is True and ep.tls_verify is True
    assert ep.listen == () and ep.connections == () and ep.dns_server is None
    c = conn()
    assert (c.transport, c.reg_interval, c.expires, c.enabled) == ("UDP", 3600, 1800, True)


@pytest.mark.parametrize(
    ("server", "scheme", "host", "port"),
    [
        ("sip.example.com", None, "sip.example.com", None),
        ("10.0.0.1:5070", None, "10.0.0.1", 5070),
        ("[2001:db8::1]:5060", None, "2001:db8::1", 5060),
        ("sip:sip.example.com:5080;transport=tcp;lr", "sip", "sip.example.com", 5080),
        ("sip:5001@sip.example.com", "sip", "sip.example.com", None),
    ],
)
def test_server_forms(server: str, scheme: str | None, host: str, port: int | None) -> None:
    c = conn(server=server)
    assert (c.server_scheme, c.server_host, c.server_port) == (scheme, host, port)


def test_transport_is_case_insensitive_and_normalised() -> None:
    assert conn(transport="tls").transport == "TLS"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("reg_interval", -1, "0..86400"),
        ("reg_interval", "60", "integer 0..86400"),
        ("reg_interval", True, "integer"),
        ("expires", -5, "0..2147483647"),
        ("transport", "SCTP", "one of UDP, TCP, TLS"),
        ("server", "sip.example.com:70000", "port 1..65535"),
        ("server", "sip.example.com:", "port 1..65535"),
        ("server", "2001:db8::1:5060", "brackets"),
        ("server", "10.0.0.300", "host[:port]"),
        ("server", "bad host", "host[:port]"),
        ("user", "agent 5001", "DN or user name"),
        ("user", "5001@", "user@domain"),
        ("user", None, "DN or user name"),
        ("id", "", "non-empty string"),
        ("enabled", "yes", "true or false"),
        ("display_name", "Agent\r\nX-Evil: 1", "printable"),
        ("outbound_proxies", ("sbc:5060", "sbc:0"), "port 1..65535"),
    ],
)
def test_bad_connection_value(field: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        conn(**{field: value})
    setting = "outbound_proxies[1]" if field == "outbound_proxies" else field
    err = the_error(exc, setting)
    assert allowed in err.allowed
    expected = value[1] if field == "outbound_proxies" else value
    assert err.value == expected
    assert f"{setting}={expected!r} is not allowed: " in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("sip_transaction_timeout", 0, "1..32000 (ms)"),
        ("sip_transaction_timeout", 32001, "1..32000 (ms)"),
        ("t1", 0, "1..60000"),
        ("t4", 1.5, "integer"),
        ("keep_alive_period", -1, "0..3600"),
        ("rfc5626_pong_timeout", 0, "1..300"),
        ("hold_other_calls", 1, "true or false"),
        ("user_agent", "x\ny", "printable"),
        ("dns_server", "dns.example.com", "IP address"),
        ("dns_server", "10.0.0.53:0", "IP address"),
        ("tls_verify", None, "true or false"),
    ],
)
def test_bad_endpoint_value(field: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        EndpointConfig(**{field: value})
    err = the_error(exc, field)
    assert err.value == value
    assert allowed in err.allowed


def test_every_problem_is_reported_first_one_on_the_exception() -> None:
    with pytest.raises(ConfigErrors) as exc:
        conn(reg_interval=-1, transport="SCTP", server="x:0")
    assert [e.setting for e in exc.value.errors] == ["server", "transport", "reg_interval"]
    assert (exc.value.setting, exc.value.value) == ("server", "x:0")
    assert str(exc.value).startswith("3 configuration errors:")


def test_t2_must_not_be_below_t1() -> None:
    with pytest.raises(ConfigError) as exc:
        EndpointConfig(t1=5000)
    err = the_error(exc, "t2")
    assert err.value == 4000 and "at least t1 (5000 ms)" in err.allowed


def test_connection_ids_must_be_unique() -> None:
    with pytest.raises(ConfigError) as exc:
        EndpointConfig(connections=[conn(), conn(id="west"), conn()])
    err = the_error(exc, "connections[2].id")
    assert err.value == "east" and "connections[0]" in err.allowed


def test_sips_server_needs_tls() -> None:
    with pytest.raises(ConfigError) as exc:
        conn(server="sips:sip.example.com", transport="TCP")
    assert "TLS" in the_error(exc, "transport").allowed
    assert conn(server="sips:sip.example.com", transport="TLS").server_scheme == "sips"


def test_listen_accepts_strings_and_structured_values() -> None:
    ep = EndpointConfig(
        listen=[
            "udp:127.0.0.1:5060",
            "TLS:[::1]",
            ListenAddress(transport="TCP", host="::", port=0),
        ]
    )
    assert [str(a) for a in ep.listen] == ["UDP:127.0.0.1:5060", "TLS:[::1]:5061", "TCP:[::]:0"]


@pytest.mark.parametrize("bad", ["SCTP:127.0.0.1:5060", "UDP:localhost:5060", "UDP:1.2.3.4:65536"])
def test_bad_listen_entry(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        EndpointConfig(listen=["UDP:127.0.0.1:5060", bad])
    err = the_error(exc, "listen[1]")
    assert err.value == bad and "TRANSPORT:ip[:port]" in err.allowed


def test_values_are_frozen_and_evolve_revalidates() -> None:
    c = conn()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        c.reg_interval = 5  # type: ignore[misc]
    assert attrs.evolve(c, reg_interval=5).reg_interval == 5
    with pytest.raises(ConfigError):
        attrs.evolve(c, reg_interval=-5)


def test_password_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(conn(password="s3cret"))


def test_timer_config_for_the_core() -> None:
    timers = EndpointConfig(t1=250, t2=2000, t4=2500, sip_transaction_timeout=4000).timer_config()
    assert (timers.t1, timers.t2, timers.t4) == (0.25, 2.0, 2.5)
    assert timers.transaction_timeout == 4.0


def test_endpoint_helpers() -> None:
    ep = EndpointConfig(
        dns_server="[2001:db8::53]", connections=[conn(), conn(id="west", enabled=False)]
    )
    assert ep.dns_server_address == ("2001:db8::53", 53)
    assert ep.connection("west").enabled is False
    assert [c.id for c in ep.enabled_connections()] == ["east"]
    with pytest.raises(KeyError):
        ep.connection("north")


# --- XML: the SipEndpoint.config layout ------------------------------------------------------


def xml(endpoint: str = "", proxies: str = "", basic: str | None = None) -> str:
    if basic is None:
        basic = (
            '<Connectivity user="5001" server="sip-east.example.com:5060" protocol="TCP"/>'
            '<Connectivity user="5001" server="sip-west.example.com:5060" protocol="TCP"/>'
        )
    return (
        f'<?xml version="1.0"?>\n<Container name="Basic">{basic}</Container>\n'
        '<Container name="Genesys">\n'
        f'<domain name="policy"><section name="endpoint">{endpoint}</section></domain>\n'
        f'<domain name="proxies">{proxies}</domain>\n</Container>\n'
    )


def setting(name: str, value: str) -> str:
    return f'<setting name="{name}" value="{value}"/>'


def proxy(index: int, *settings: str) -> str:
    return f'<section name="proxy{index}">{"".join(settings)}</section>'


def test_realistic_sip_endpoint_config_loads() -> None:
    loaded = load_config(DATA / "SipEndpoint.config")
    ep = loaded.config
    assert ep.sip_transaction_timeout == 4000 and ep.keep_alive_period == 30
    assert ep.hold_other_calls is True
    east, west = ep.connections
    assert (east.id, east.user, east.server_host, east.server_port, east.transport) == (
        "proxy0",
        "5001",
        "sip-east.example.com",
        5060,
        "TCP",
    )
    assert west.id == "proxy1" and west.server_host == "sip-west.example.com"
    for c in ep.connections:
        assert (c.reg_interval, c.expires, c.password) == (30, 1800, "s3cret")
        assert c.display_name == "Agent 5001"
    # Nothing that was not applied goes unmentioned.
    where = {w.location for w in loaded.warnings}
    assert {
        "Genesys/policy/endpoint/rtp_port_min",
        "Genesys/policy/session",
        "Genesys/codecs",
        "Genesys/system",
        "Genesys/proxies/proxy0/nat",
        "Genesys/proxies/proxy1/reg_match",
    } <= where
    assert "Genesys/policy/endpoint/sip_transaction_timeout" not in where


def test_strict_mode_rejects_what_it_would_not_apply() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load_config(DATA / "SipEndpoint.config", strict=True)
    err = the_error(exc, "Genesys/codecs")
    assert err.value == "codecs" and "policy, proxies" in err.allowed
    assert the_error(exc, "Genesys/proxies/proxy0/reg_match").value == "reg_match"


def test_wrapped_document_transport_synonym_and_id_attribute() -> None:
    loaded = load_config(DATA / "wrapped.xml")
    ep = loaded.config
    assert [(c.id, c.transport) for c in ep.connections] == [("east", "UDP")]
    assert (ep.t1, ep.t2, ep.tls_verify) == (250, 2000, False)
    assert [str(a) for a in ep.listen] == ["UDP:127.0.0.1:5060", "TCP:[::1]:0"]
    assert loaded.warnings == ()


def test_single_container_document() -> None:
    text = '<Container name="Basic"><Connectivity user="7" server="pbx"/></Container>'
    assert loads_xml(text).config.connections[0].server == "pbx"


def test_empty_values_keep_defaults_but_empty_reg_timeout_means_no_registration() -> None:
    ep = loads_xml(
        xml(
            setting("sip_transaction_timeout", ""),
            proxy(0, setting("reg_interval", ""), setting("reg_timeout", "")),
        )
    ).config
    assert ep.sip_transaction_timeout == 32000
    assert (ep.connections[0].reg_interval, ep.connections[0].expires) == (3600, 0)
    assert ep.connections[1].expires == 1800


@pytest.mark.parametrize(
    ("doc", "where", "value", "allowed"),
    [
        (
            xml(setting("sip_transaction_timeout", "40000")),
            "Genesys/policy/endpoint/sip_transaction_timeout",
            40000,
            "1..32000 (ms)",
        ),
        (
            xml(proxies=proxy(1, setting("reg_interval", "-5"))),
            "Genesys/proxies/proxy1/reg_interval",
            -5,
            "0..86400",
        ),
        (
            xml(proxies=proxy(0, setting("reg_timeout", "30m"))),
            "Genesys/proxies/proxy0/reg_timeout",
            "30m",
            "integer 0..2147483647",
        ),
        (
            xml(setting("hold_other_calls", "maybe")),
            "Genesys/policy/endpoint/hold_other_calls",
            "maybe",
            "1/0, true/false",
        ),
        (
            xml(basic='<Connectivity user="5001" server="sip.example.com" protocol="SCTP"/>'),
            "Basic/Connectivity[0]/protocol",
            "SCTP",
            "one of UDP, TCP, TLS",
        ),
        (
            xml(basic='<Connectivity user="5001" server="sip.example.com:99999"/>'),
            "Basic/Connectivity[0]/server",
            "sip.example.com:99999",
            "port 1..65535",
        ),
        (
            xml(basic='<Connectivity server="sip.example.com"/>'),
            "Basic/Connectivity[0]/user",
            None,
            "DN or user name",
        ),
        (
            xml(setting("t1", "5000")),
            "Genesys/policy/endpoint/t2",
            4000,
            "at least t1 (5000 ms)",
        ),
        (
            xml(setting("listen", "UDP:0.0.0.0:5060, UDP:example.com:5060")),
            "Genesys/policy/endpoint/listen[1]",
            "UDP:example.com:5060",
            "TRANSPORT:ip[:port]",
        ),
        (
            xml(setting("tls_ca_file", "no-such-ca.pem")),
            "Genesys/policy/endpoint/tls_ca_file",
            "no-such-ca.pem",
            "an existing file",
        ),
        (
            xml(
                basic='<Connectivity id="a" user="1" server="x"/>'
                '<Connectivity id="a" user="2" server="y"/>'
            ),
            "Basic/Connectivity[1]/id",
            "a",
            "already used by Basic/Connectivity[0]/id",
        ),
    ],
)
def test_bad_xml_value_names_its_location(doc: str, where: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loads_xml(doc)
    err = the_error(exc, where)
    assert err.value == value and allowed in err.allowed


def test_xml_reports_every_problem_of_the_file() -> None:
    doc = xml(
        setting("t4", "0"),
        proxy(0, setting("reg_interval", "-1")) + proxy(1, setting("enabled", "perhaps")),
    )
    with pytest.raises(ConfigErrors) as exc:
        loads_xml(doc)
    assert {e.setting for e in exc.value.errors} == {
        "Genesys/policy/endpoint/t4",
        "Genesys/proxies/proxy0/reg_interval",
        "Genesys/proxies/proxy1/enabled",
    }


def test_unknown_setting_section_and_attribute_are_warnings() -> None:
    doc = xml(
        setting("colour", "red"),
        proxy(5, setting("reg_interval", "1")),
        basic='<Connectivity user="5001" server="pbx" colour="red"/>',
    )
    loaded = loads_xml(doc)
    messages = {w.location: w.message for w in loaded.warnings}
    assert "unknown setting 'colour'" in messages["Genesys/policy/endpoint/colour"]
    assert "no Connectivity[5]" in messages["Genesys/proxies/proxy5"]
    assert "unknown attribute 'colour'" in messages["Basic/Connectivity[0]/@colour"]
    with pytest.raises(ConfigErrors) as exc:
        loads_xml(doc, strict=True)
    assert len(exc.value.errors) == 3


def test_repeated_setting_last_wins_with_a_warning() -> None:
    loaded = loads_xml(
        xml(proxies=proxy(0, setting("reg_timeout", "60"), setting("expires", "90")))
    )
    assert loaded.config.connections[0].expires == 90
    assert "the last one wins" in loaded.warnings[0].message


def test_malformed_xml_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as exc:
        loads_xml('<Container name="Basic">\n  <Connectivity user="1" server="x">\n</Container>')
    err = the_error(exc, "<string>")
    assert str(err.value).startswith("line 3,") and "well-formed XML" in err.allowed


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Container name="Basic"><Connectivity user="&lol2;" server="x"/></Container>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!doctype c [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Container name="Basic"><Connectivity user="&xxe;" server="x"/></Container>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_doctype_and_entities_are_refused(doc: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loads_xml(doc.encode())
    err = the_error(exc, "<string>")
    assert str(err.value).upper() == "<!DOCTYPE" and "entity-expansion" in err.allowed


def test_declared_encoding_is_honoured() -> None:
    doc = xml(proxies=proxy(0, setting("display_name", "Agent Éloïse")))
    data = doc.replace('version="1.0"', 'version="1.0" encoding="iso-8859-1"').encode("latin-1")
    assert loads_xml(data).config.connections[0].display_name == "Agent Éloïse"


def test_fragments_load_as_the_sdk_documentation_shows_them() -> None:
    # A lone Connectivity belongs to Basic, a lone domain to Genesys; spaces around attribute
    # values and names are ignored; the end of the input closes what is still open.
    doc = (
        '<Connectivity user=" 5001 " server=" pbx.example.com:5070 " protocol=" tcp "/>\n'
        '<domain name=" policy "><section name="endpoint">'
        '<setting name=" t1 " value=" 250 "/><setting name="tls_verify" value=" off "/>'
    )
    loaded = loads_xml(doc, strict=True)
    (conn,) = loaded.config.connections
    assert (conn.user, conn.server, conn.transport) == ("5001", "pbx.example.com:5070", "TCP")
    assert (loaded.config.t1, loaded.config.tls_verify) == (250, False)
    # Text values keep their spaces (a password may have some).
    doc = xml(proxies=proxy(0, setting("password", " s3cret ")))
    assert loads_xml(doc).config.connections[0].password == " s3cret "


def test_proxy_sections_without_connectivity_are_kept_and_checked() -> None:
    doc = (
        '<domain name="proxies"><section name="proxy1">'
        + setting("reg_interval", "15")
        + setting("reregister_in_seconds", "90")
        + "</section></domain>"
    )
    loaded = loads_xml(doc, strict=True)
    assert loaded.connection_settings == ({}, {"reg_interval": 15, "expires": 90})
    conns = [conn(id="a"), conn(id="b"), conn(id="c")]
    assert [(c.reg_interval, c.expires) for c in loaded.configure_connections(conns)] == [
        (3600, 1800),
        (15, 90),
        (3600, 1800),
    ]
    with pytest.raises(ConfigError) as exc:
        loads_xml(doc.replace('"15"', '"-15"'))
    assert the_error(exc, "Genesys/proxies/proxy1/reg_interval").value == -15


@pytest.mark.parametrize(
    ("doc", "where", "value"),
    [
        (xml(proxies=proxy(0, setting("reregister_in_seconds", "0"))),
         "Genesys/proxies/proxy0/reregister_in_seconds", "0"),
        (xml(setting("reregister_in_seconds", "1h")),
         "Genesys/policy/endpoint/reregister_in_seconds", "1h"),
    ],
)  # fmt: skip
def test_reregister_in_seconds_must_be_seconds(doc: str, where: str, value: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loads_xml(doc)
    assert the_error(exc, where).value == value
    assert "1..2147483647 (seconds: the Expires asked for in REGISTER)" in str(exc.value)


def test_reregister_in_seconds_sets_expires_per_connection_or_for_all() -> None:
    doc = xml(
        setting("reregister_in_seconds", "600"),
        proxy(1, setting("reregister_in_seconds", "120")),
    )
    loaded = loads_xml(doc, strict=True)
    assert [c.expires for c in loaded.config.connections] == [600, 120]
    assert loaded.connection_defaults == {"expires": 600}
    # reg_timeout is the same setting under the SDK's other name: the later one wins.
    doc = xml(
        proxies=proxy(0, setting("reg_timeout", "60"), setting("reregister_in_seconds", "90"))
    )
    loaded = loads_xml(doc)
    assert loaded.config.connections[0].expires == 90
    assert [w.location for w in loaded.warnings] == ["Genesys/proxies/proxy0/reregister_in_seconds"]


def test_tls_files(tmp_path: Path) -> None:
    for name in ("ca.pem", "me.pem", "me.key"):
        (tmp_path / name).write_text("not checked here\n")
    doc = xml(
        setting("tls_ca_file", "ca.pem")
        + setting("tls_cert_file", " me.pem ")
        + setting("tls_key_file", "me.key")
    )
    (tmp_path / "SipEndpoint.config").write_text(doc)
    ep = load_config(tmp_path / "SipEndpoint.config").config
    assert (ep.tls_ca_file, ep.tls_cert_file, ep.tls_key_file) == tuple(
        str(tmp_path / name) for name in ("ca.pem", "me.pem", "me.key")
    )
    with pytest.raises(ConfigError) as exc:
        EndpointConfig(tls_key_file="me.key")
    assert "together with tls_cert_file" in the_error(exc, "tls_key_file").allowed
    with pytest.raises(ConfigError) as exc:
        loads_toml('[endpoint]\ntls_cert_file = "nowhere.pem"\n', base_dir=tmp_path)
    assert "an existing file" in the_error(exc, "endpoint.tls_cert_file").allowed


# --- TOML ------------------------------------------------------------------------------------


def test_toml_file_loads() -> None:
    loaded = load_config(DATA / "endpoint.toml")
    ep = loaded.config
    assert loaded.warnings == ()
    assert ep.sip_transaction_timeout == 4000 and ep.user_agent == "ContactCentre/2.1 trio-sip"
    assert [str(a) for a in ep.listen] == ["UDP:0.0.0.0:5060", "TCP:[::]:5060"]
    assert ep.dns_server_address == ("10.0.0.53", 53)
    assert ep.tls_ca_file == str(DATA / "ca.pem")
    east, west = ep.connections
    assert (east.auth_user, east.realm, east.outbound_proxies) == (
        "agent5001",
        "example.com",
        ("sbc-east.example.com:5060",),
    )
    assert (west.server_scheme, west.transport, west.enabled) == ("sips", "TLS", False)
    assert [c.id for c in ep.enabled_connections()] == ["east"]


CONN = '[[connections]]\nid = "east"\nuser = "5001"\nserver = "sip.example.com"\n'


@pytest.mark.parametrize(
    ("doc", "where", "value", "allowed"),
    [
        ("[endpoint]\nt4 = 0\n", "endpoint.t4", 0, "1..60000"),
        (CONN + 'reg_interval = "60"\n', "connections[0].reg_interval", "60", "integer 0..86400"),
        (CONN + 'enabled = "yes"\n', "connections[0].enabled", "yes", "true or false"),
        (CONN + 'transport = "SCTP"\n', "connections[0].transport", "SCTP", "UDP, TCP, TLS"),
        (CONN.replace("sip.example.com", "sip.example.com:0"), "connections[0].server",
         "sip.example.com:0", "port 1..65535"),
        (CONN + CONN, "connections[1].id", "east", "already used by connections[0].id"),
        ('[[connections]]\nid = "x"\nserver = "pbx"\n', "connections[0].user", None, "DN"),
        ('[endpoint]\nlisten = [{ transport = "UDP", host = "::1", port = -1 }]\n',
         "endpoint.listen[0].port", -1, "0..65535"),
        ('[endpoint]\nlisten = "UDP:0.0.0.0"\n', "endpoint.listen", "UDP:0.0.0.0", "a list"),
        ("endpoint = 5\n", "endpoint", 5, "a table"),
    ],
)  # fmt: skip
def test_bad_toml_value_names_its_path(doc: str, where: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loads_toml(doc)
    err = the_error(exc, where)
    assert err.value == value and allowed in err.allowed


def test_toml_out_of_range_timeout() -> None:
    with pytest.raises(ConfigError) as exc:
        loads_toml("[endpoint]\nsip_transaction_timeout = 40000\n")
    err = the_error(exc, "endpoint.sip_transaction_timeout")
    assert err.value == 40000 and err.allowed == "an integer 1..32000 (ms)"


def test_toml_unknown_keys_are_warnings_or_strict_errors() -> None:
    doc = "[endpoint]\ncolour = 1\n[extras]\n" + CONN + "colour = 2\n"
    loaded = loads_toml(doc)
    assert [w.location for w in loaded.warnings] == [
        "extras",
        "endpoint.colour",
        "connections[0].colour",
    ]
    with pytest.raises(ConfigErrors) as exc:
        loads_toml(doc, strict=True)
    assert "sip_transaction_timeout" in the_error(exc, "endpoint.colour").allowed


def test_malformed_toml() -> None:
    with pytest.raises(ConfigError) as exc:
        loads_toml("[endpoint\n", source="site.toml")
    assert the_error(exc, "site.toml").allowed == "valid TOML"


def test_load_config_rejects_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "endpoint.yaml"
    path.write_text("endpoint: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert ".toml" in the_error(exc, str(path)).allowed
