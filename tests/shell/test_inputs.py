"""Invalid input from the application is a ConfigError (a ValueError) naming the parameter,
the value and what is allowed, raised before anything is sent and kept apart from
RemoteProtocolError (what came off the wire); the address forms are the same everywhere
(docs/errors.md, "Invalid input")."""

from __future__ import annotations

import pytest
import trio

from trio_sip import (
    ConfigError,
    ConnectionConfig,
    EndpointConfig,
    KeepAlives,
    RemoteProtocolError,
    Request,
    open_endpoint,
    open_transport_layer,
    open_user_agent,
    parse_message,
)
from trio_sip._inputs import address_arg

LOOP = "127.0.0.1"


def _config_error(exc: BaseException, setting: str) -> ConfigError:
    assert isinstance(exc, ConfigError) and isinstance(exc, ValueError), repr(exc)
    assert not isinstance(exc, RemoteProtocolError)
    assert exc.setting == setting
    return exc


async def test_bad_call_arguments_name_the_argument_and_send_nothing() -> None:
    async with open_user_agent(aor="sip:alice@example.com") as ua:
        cases = [
            ({"destination": "sip:carol@"}, "destination", "a SIP URI with a host"),
            ({"destination": "carol"}, "destination", "a SIP URI with a host"),
            (
                {"destination": "sip:bob@127.0.0.1:9", "outbound_proxy": "tel:+123"},
                "outbound_proxy",
                "host, host:port, [IPv6]:port or a sip:/sips: URI",
            ),
            ({"destination": "tel:+123"}, "outbound_proxy", "a SIP proxy for the tel: URI"),
            (
                {"destination": "sip:bob@127.0.0.1:9", "aor": "<<"},
                "aor",
                "a SIP URI or a name-addr",
            ),
        ]
        for kwargs, setting, allowed in cases:
            with pytest.raises(ConfigError) as caught:
                async with ua.call(**kwargs):  # type: ignore[arg-type]
                    pass
            error = _config_error(caught.value, setting)
            assert allowed in error.allowed
        assert ua.calls == [] and ua.stack.statistics().client_transactions == 0
        with pytest.raises(ConfigError) as caught:
            await ua.register("sip:x@")
        _config_error(caught.value, "destination")
        with pytest.raises(ConfigError) as caught:
            await ua.options("sip:")
        _config_error(caught.value, "destination")
        assert list(ua.registrations) == []  # nothing started, the agent still runs
    with pytest.raises(ConfigError) as caught:
        async with open_user_agent(aor=""):
            pass
    _config_error(caught.value, "aor")


async def test_outbound_proxy_as_host_port_routes_through_it() -> None:
    """``outbound_proxy="127.0.0.2:5060"`` works as ``--server`` and ``ConnectionConfig``
    take it: the INVITE goes to that address with a loose Route to it."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as proxy:
        await proxy.bind(("127.0.0.2", 0))
        port = proxy.getsockname()[1]
        async with open_user_agent(aor="sip:alice@example.com") as ua:
            proxy_address = f"127.0.0.2:{port}"
            async with ua.call("sip:bob@example.com", outbound_proxy=proxy_address):
                with trio.fail_after(30):
                    data = await proxy.recv(65535)
    invite = parse_message(data)
    assert isinstance(invite, Request) and invite.method == "INVITE"
    assert str(invite.uri) == "sip:bob@example.com"
    assert invite.headers["Route"] == f"<sip:127.0.0.2:{port};lr>"


@pytest.mark.parametrize(
    "form",
    ["proxy.example.com", "proxy.example.com:5070", "192.0.2.10:5060", "[2001:db8::1]:5061",
     "sip:proxy.example.com;transport=tcp", "sips:proxy.example.com", "sip:user@192.0.2.1"],
)  # fmt: skip
def test_the_address_forms_are_the_same_as_a_connections_server(form: str) -> None:
    uri = address_arg("outbound_proxy", form)
    assert uri.host.strip("[]") in form
    ConnectionConfig(
        id="c", user="alice", server=form, transport="TLS" if "sips" in form else "UDP"
    )


@pytest.mark.parametrize("form", ["", "tel:+123", "sip:", "host:99999", "http://x", "a b"])
def test_the_address_forms_refused_everywhere(form: str) -> None:
    with pytest.raises(ConfigError) as caught:
        address_arg("outbound_proxy", form)
    _config_error(caught.value, "outbound_proxy")
    with pytest.raises(ConfigError):
        ConnectionConfig(id="c", user="alice", server=form)


async def test_an_empty_keep_alive_host_is_a_config_error() -> None:
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        keepalives = KeepAlives(layer, nursery)
        for host in ("", "  "):
            with pytest.raises(ConfigError) as caught:
                await keepalives.send_sip_keepalive(host, 5060, True, 1.0)
            _config_error(caught.value, "host")
        nursery.cancel_scope.cancel()


async def test_listeners_as_strings_and_bad_listeners() -> None:
    async with open_user_agent(["UDP:127.0.0.1:0", ("TCP", LOOP, 0)], aor="sip:a@b.c") as ua:
        assert [t for t, _ in ua.stack.listening] == ["UDP", "TCP"]
    with pytest.raises(ConfigError) as caught:
        async with open_user_agent([], aor="sip:a@b.c"):
            pass
    assert "at least one" in _config_error(caught.value, "listen").allowed
    for bad in ["SCTP:127.0.0.1:5060", "UDP:localhost:5060", "127.0.0.1"]:
        with pytest.raises(ConfigError) as caught:
            async with open_user_agent([bad], aor="sip:a@b.c"):
                pass
        error = _config_error(caught.value, "listen")
        assert "TRANSPORT:ip" in error.allowed


async def test_a_bad_dial_destination_is_a_config_error() -> None:
    config = EndpointConfig(
        connections=[ConnectionConfig(id="c", user="alice", server=f"{LOOP}:9", expires=0)]
    )
    async with open_endpoint(config) as endpoint:
        with pytest.raises(ConfigError) as caught:
            async with endpoint.dial("c", "sip:carol@"):
                pass
        _config_error(caught.value, "destination")
        assert endpoint.calls == []
