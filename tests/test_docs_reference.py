"""The API reference has an entry for every public name, and every public object says what it
is: a docstring on each class and function in the ``__all__`` of ``trio_sip``,
``trio_sip.errors``, ``trio_sip.testing`` and ``trio_sip.proto``.

The site (``nox -s docs``) documents each object once, at its home
(docs/_ext/sitekit/public.py); tests/docs/test_site_browser.py checks the built pages have
an anchor for each. This runs without Sphinx.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

from sitekit.public import PUBLIC_MODULES, homes, public_names  # noqa: E402


def test_every_public_name_has_one_home_in_a_public_module() -> None:
    names = public_names()
    assert set(names) == set(PUBLIC_MODULES)
    for modname, entries in names.items():
        assert entries, modname
        for name, obj in entries:
            home = homes()[id(obj)]
            assert home.rsplit(".", 1)[0] in PUBLIC_MODULES, (modname, name, home)
            assert home.rsplit(".", 1)[1] == name or inspect.isclass(obj), (name, home)


def test_exceptions_in_trio_sip_errors_are_documented_there() -> None:
    for name, obj in public_names()["trio_sip.errors"]:
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert homes()[id(obj)] == f"trio_sip.errors.{name}"


def test_every_public_class_and_function_has_a_docstring() -> None:
    missing = sorted(
        homes()[id(obj)]
        for entries in public_names().values()
        for _, obj in entries
        if (inspect.isclass(obj) or inspect.isfunction(obj))
        and not (obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__)
    )
    assert not missing, "public names without a docstring: " + ", ".join(missing)


def test_the_errors_reference_knows_who_raises_what() -> None:
    from sitekit.public import raised_by

    found = raised_by()
    assert set(found) >= {"ConfigError", "ParseError", "TransactionTimeoutError", "DnsError"}
    assert "trio_sip.load_config" in found["ConfigError"]
    assert "trio_sip.parse_message" in found["ParseError"]
    assert "trio_sip.Stack.request" in found["TransactionTimeoutError"]
    assert "trio_sip.KeepAlives.send_sip_keepalive" in found["DnsError"]
