"""A Kamailio registrar + proxy for interop tests, on loopback, started and stopped by PID.

:func:`running_kamailio` writes a ``kamailio.cfg`` into a temporary directory and runs Kamailio
5.6 in the foreground (``-DD -E``: the creator process stays ours, logs go to stderr, which
``PeerProcess`` keeps in a log file), with ``children=2`` and a small shared memory. The config:

* listens on UDP and TCP at one loopback address and port, and with ``tls=(certificate,
  key)`` on TLS at ``tls_port`` too (module ``tls`` from Debian's ``kamailio-tls-modules``;
  it does not check client certificates, nor the certificates of our listeners when it
  connects to them);
* ``usrloc`` with ``db_mode=0`` (bindings in memory only), ``registrar`` with a low
  ``min_expires`` so that tests can register for 10-20 s;
* REGISTER is authenticated with ``pv_auth_check`` against a static user table written into
  the route as ``if ($tU == "user") $var(pw) = "password";`` lines (realm ``example.com``);
* ``tm``, ``sl``, ``rr`` with ``record_route()`` on dialog-creating requests; in-dialog requests
  follow ``loose_route()``; INVITE (and other initial requests) go to the registered contact
  found by ``lookup("location")`` (404 when the user is not registered); CANCEL and ACK follow
  their transaction; OPTIONS to the server itself gets 200 (the readiness check).

:meth:`Kamailio.bindings` reads the location table with ``kamcmd -s unix:SOCKET ul.dump``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from .peers import PeerProcess, assert_loopback, ensure_debian_packages, find_binary, free_port

REALM = "example.com"

_CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
{tls_listen}alias="{realm}"
{aliases}dns=no
rev_dns=no
use_dns_cache=off
tcp_accept_no_cl=yes

mpath="{mpath}"
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "ctl.so"
{tls_module}
{nat_modules}
modparam("ctl", "binrpc", "unix:{socket}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 5)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "default_expires", 60)
modparam("rr", "append_fromtag", 1)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    xlog("L_INFO", "request $rm $ru from $si:$sp\\n");
{nat_detect}
    if (has_totag()) {{
        if (loose_route()) {{
{nat_on_reply}
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        route(REGISTRAR);
        exit;
    }}
    if (!is_method("ACK")) {{
        record_route();
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
{nat_on_reply}
    t_relay();
}}
{nat_reply_route}
route[REGISTRAR] {{
    $var(pw) = "";
{users}
    if ($var(pw) == "") {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (!pv_auth_check("$fd", "$var(pw)", "0", "1")) {{
        auth_challenge("$fd", "0");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
}}
"""


#: NAT traversal as Kamailio's own kamailio.cfg does it (WITH_NAT, nathelper module docs):
#: ``nat_uac_test("19")`` (Contact in RFC 1918 space, Via host or port other than the source)
#: marks a NATed client; its REGISTER gets ``fix_nated_register()`` (the registrar stores the
#: *source* address as the contact's ``received``, and ``lookup`` sends there), its other
#: requests ``fix_nated_contact()``; a reply from a contact registered from behind a NAT (branch
#: flag 6, restored by ``lookup`` through usrloc's ``nat_bflag``) gets ``fix_nated_contact()``.
_NAT = {
    "nat_modules": """loadmodule "nathelper.so"
modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
modparam("usrloc", "nat_bflag", 6)
""",
    "nat_detect": """    force_rport();
    if (nat_uac_test("19")) {
        if (is_method("REGISTER")) {
            fix_nated_register();
        } else {
            fix_nated_contact();
        }
        setbflag(6);
    }""",
    "nat_on_reply": '            t_on_reply("NAT_REPLY");',
    "nat_reply_route": """
onreply_route[NAT_REPLY] {
    xlog("L_INFO", "reply $rs $rm from $si:$sp\\n");
    if (isbflagset(6)) {
        fix_nated_contact();
    }
}
""",
}


@attrs.frozen
class Binding:
    """One contact of the location table (from ``ul.dump``)."""

    aor: str
    address: str
    expires: int
    cseq: int
    callid: str


_TLS_CONFIG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = {certificate}
private_key = {key}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


@attrs.define
class Kamailio:
    host: str
    port: int
    workdir: Path
    socket_path: Path
    process: PeerProcess
    tls_port: int | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def ul_dump(self) -> str:
        kamcmd = find_binary("kamcmd") or "kamcmd"
        done = subprocess.run(
            [kamcmd, "-s", f"unix:{self.socket_path}", "ul.dump"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kamcmd ul.dump failed: {done.stderr or done.stdout}")
        return done.stdout

    def bindings(self) -> list[Binding]:
        """The registered contacts, one per AoR contact."""
        out: list[Binding] = []
        for block in re.split(r"\n\s*AoR:\s*", "\n" + self.ul_dump())[1:]:
            aor = block.split()[0]
            for contact in re.split(r"\n\s*Contact:\s*\{", block)[1:]:
                fields = dict(re.findall(r"^\s*([\w-]+):\s*(.*?)\s*$", contact, re.M))
                out.append(
                    Binding(
                        aor,
                        fields.get("Address", ""),
                        int(fields.get("Expires", "0") or 0),
                        int(fields.get("CSeq", "0") or 0),
                        fields.get("Call-ID", ""),
                    )
                )
        return out


def options_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send an OPTIONS over UDP; True if a 200 comes back."""
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local = sock.getsockname()
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
            f"From: <sip:probe@{host}>;tag=probe\r\nTo: <sip:{host}:{port}>\r\n"
            f"Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(timeout)
        sock.sendto(request.encode(), (host, port))
        data = sock.recv(65535)
    return data.startswith(b"SIP/2.0 200")


@contextlib.contextmanager
def running_kamailio(
    workdir: Path,
    users: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    tls_port: int | None = None,
    nat: bool = False,
    aliases: Sequence[tuple[str, int]] = (),
) -> Iterator[Kamailio]:
    """Start Kamailio with ``users`` ({name: password}); yield it; stop it by its PID.

    ``tls``: (certificate, private key) PEM files to listen on TLS at ``tls_port`` too.
    ``nat``: with nathelper's NAT traversal (see ``_NAT``).
    ``aliases``: more (address, port) names for this Kamailio (its ``myself``). Two instances
    given each other's address act as one cluster sharing an identity: a response whose top
    Via names the other, or a request whose Route names it, is handled as their own (what a
    proxy cluster does for the requests and 2xx seed 002 cycles through it)."""
    binary = ensure_debian_packages("kamailio")["kamailio"]
    ensure_debian_packages("kamailio", binaries={"kamailio": "kamcmd"})
    assert_loopback(host)
    port = port or free_port(host)
    workdir.mkdir(parents=True, exist_ok=True)
    tls_listen = tls_module = ""
    if tls is not None:
        ensure_debian_packages("kamailio-tls-modules")
        tls_port = tls_port or free_port(host, udp=False)
        tls_cfg = workdir / "tls.cfg"
        tls_cfg.write_text(_TLS_CONFIG.format(certificate=tls[0], key=tls[1]))
        tls_listen = f"listen=tls:{host}:{tls_port}\nenable_tls=yes\n"
        tls_module = f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")\n'
    else:
        tls_port = None
    socket_path = workdir / "kamailio_ctl.sock"
    lines = [f'    if ($tU == "{user}") {{ $var(pw) = "{pw}"; }}' for user, pw in users.items()]
    mpath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
    for candidate in Path("/usr/lib").glob("*/kamailio/modules/tm.so"):
        mpath = f"{candidate.parent}/"
    config = _CONFIG.format(
        host=host,
        port=port,
        realm=REALM,
        mpath=mpath,
        socket=socket_path,
        users="\n".join(lines),
        tls_listen=tls_listen,
        tls_module=tls_module,
        **(_NAT if nat else dict.fromkeys(_NAT, "")),
        aliases="".join(f"alias={assert_loopback(h)}:{p}\n" for h, p in aliases),
    )
    cfg = workdir / "kamailio.cfg"
    cfg.write_text(config)
    argv = [binary, "-f", str(cfg), "-DD", "-E", "-m", "64", "-M", "8", "-Y", str(workdir)]
    argv += ["-w", str(workdir)]
    process = PeerProcess("kamailio", argv, workdir=workdir).start()
    try:
        process.wait_ready(lambda: options_ok(host, port), timeout=20)
        yield Kamailio(host, port, workdir, socket_path, process, tls_port)
    finally:
        process.stop()
