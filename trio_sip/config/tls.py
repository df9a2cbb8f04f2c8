"""TLS settings of an :class:`~trio_sip.config.EndpointConfig` as SSL contexts.

``tls_ca_file`` (the CAs that sign the servers we connect to; unset: the system's),
``tls_verify`` (false: no certificate or host name check, for tests only), and
``tls_cert_file`` / ``tls_key_file`` (our certificate: needed to listen on TLS, and presented
to servers that ask for a client certificate). :func:`transport_config` turns them into the
:class:`~trio_sip.transports.TransportConfig` that ``open_stack``, ``open_user_agent`` and
``open_endpoint`` take. A file that cannot be read or is not PEM raises
:class:`~trio_sip.proto.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import attrs

from ..proto.errors import ConfigError
from .model import EndpointConfig

if TYPE_CHECKING:
    from ..transports import TransportConfig

__all__ = ["client_ssl_context", "server_ssl_context", "transport_config"]


def _load(setting: str, value: str, load: Any) -> None:
    try:
        load()
    except ssl.SSLError as exc:  # before OSError: it is one
        reason = exc.reason or str(exc)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        return
    raise ConfigError(setting, value, f"a readable PEM file ({reason})")


def _chain(context: ssl.SSLContext, config: EndpointConfig) -> None:
    cert, key = config.tls_cert_file, config.tls_key_file
    if cert is not None:
        setting = "tls_key_file" if key is not None else "tls_cert_file"
        _load(setting, key or cert, lambda: context.load_cert_chain(cert, key))


def client_ssl_context(config: EndpointConfig) -> ssl.SSLContext:
    """Verifying (unless ``tls_verify`` is false) against ``tls_ca_file`` or the system CAs;
    our certificate, when configured, for servers that ask for one."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if config.tls_ca_file is not None:
        ca = config.tls_ca_file
        _load("tls_ca_file", ca, lambda: context.load_verify_locations(cafile=ca))
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _chain(context, config)
    return context


def server_ssl_context(config: EndpointConfig) -> ssl.SSLContext | None:
    """Our certificate for TLS listeners, or None when ``tls_cert_file`` is unset."""
    if config.tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _chain(context, config)
    return context


def transport_config(
    config: EndpointConfig, base: TransportConfig | None = None
) -> TransportConfig:
    """``base`` (default: a default TransportConfig) with the client and server SSL contexts
    of ``config``."""
    from ..transports import TransportConfig

    return attrs.evolve(
        base if base is not None else TransportConfig(),
        client_ssl_context=client_ssl_context(config),
        server_ssl_context=server_ssl_context(config),
    )
