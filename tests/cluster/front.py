"""Kamailio as the stateless-ish front of the cluster: the ``dispatcher`` module over N nodes.

Started and stopped by PID like tests/interop/kamailio.py (``-DD -E``, its own workdir and
control socket), UDP on one loopback address. The configuration:

* set 1 of ``dispatcher.list`` holds the nodes; ``ds_ping_interval`` (1 s) sends each an
  OPTIONS (``ds_probing_mode=1``: always), and one that does not answer within ``fr_timer``
  (2 s: generous, a busy machine must not make a live node look dead) is marked down
  (``ds_probing_threshold=1``), up again after one 2xx;
  ``event_route[dispatcher:dst-down]`` / ``[dst-up]`` log the change with a timestamp;
* REGISTER: round-robin (algorithm 4); other initial requests, INVITE above all: a hash over
  the Call-ID (algorithm 0), so a dialog's requests reach one node; INVITEs are
  record-routed, so in-dialog requests come back through the front and follow the route set
  (``loose_route``) to the node that keeps the dialog;
* a request a node does not answer within ``fr_timer`` goes to the next node
  (``ds_next_dst``): requests sent to a dead node before the probe noticed are not lost,
  only delayed;
* every request dispatched is logged as ``DISPATCH <unix time> <method> <Call-ID> <node>``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from tests.interop.kamailio import options_ok
from tests.interop.peers import PeerProcess, assert_loopback, ensure_debian_packages, find_binary

_CONFIG = """#!KAMAILIO
debug=1
log_stderror=yes
log_prefix=""
children={children}
auto_aliases=no
listen=udp:{host}:{port}
alias="{domain}"
dns=no
rev_dns=no
use_dns_cache=off
udp4_raw=0

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
loadmodule "ctl.so"
loadmodule "dispatcher.so"
modparam("ctl", "binrpc", "unix:{socket}")
modparam("tm", "fr_timer", {fr_timer_ms})
modparam("tm", "fr_inv_timer", 4000)
modparam("rr", "append_fromtag", 1)
modparam("dispatcher", "list_file", "{list_file}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_interval", {ping_interval})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_from", "sip:front@{host}")
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
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
        $var(alg) = 4;
    }} else {{
        $var(alg) = 0;
        if (is_method("INVITE")) {{
            record_route();
        }}
    }}
    if (!ds_select_dst("1", "$var(alg)")) {{
        sl_send_reply("503", "No Node Available");
        exit;
    }}
    route(RELAY);
}}

route[RELAY] {{
    xlog("L_ALERT", "DISPATCH $TV(Sn) $rm $ci $du\\n");
    t_on_failure("NEXT_NODE");
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}

failure_route[NEXT_NODE] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_branch_timeout() && !t_branch_replied()) {{
        xlog("L_ALERT", "TIMEOUT $TV(Sn) $rm $ci $du\\n");
        if (ds_next_dst()) {{
            route(RELAY);
        }}
    }}
}}

event_route[dispatcher:dst-down] {{
    xlog("L_ALERT", "DOWN $TV(Sn) $rm $ru $du\\n");
}}

event_route[dispatcher:dst-up] {{
    xlog("L_ALERT", "UP $TV(Sn) $rm $ru $du\\n");
}}
"""


@attrs.frozen
class Event:
    """A line the front logged: DISPATCH, TIMEOUT, DOWN or UP, at ``at`` (unix time)."""

    kind: str
    at: float
    method: str
    what: str  # the Call-ID (DISPATCH, TIMEOUT) or the node's URI (DOWN, UP)
    node: str = ""  # where it was dispatched (DISPATCH, TIMEOUT)


_EVENT = re.compile(r"\b(DISPATCH|TIMEOUT|DOWN|UP) (\d+\.\d+) (\S+) (\S+)(?: (\S+))?\s*$")


@attrs.define
class Front:
    host: str
    port: int
    workdir: Path
    socket_path: Path
    process: PeerProcess
    nodes: list[str]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def events(self) -> list[Event]:
        out = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            m = _EVENT.search(line.strip())
            if m:
                kind, at, method, what, node = m.groups()
                out.append(Event(kind, float(at), method, what, node or ""))
        return out

    def destinations(self) -> dict[str, str]:
        """{node URI: dispatcher flags} (``AP``: active and probed; ``IP``: inactive)."""
        kamcmd = find_binary("kamcmd") or "kamcmd"
        done = subprocess.run(
            [kamcmd, "-s", f"unix:{self.socket_path}", "dispatcher.list"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        uris = re.findall(r"URI:\s*(\S+)", done.stdout)
        flags = re.findall(r"FLAGS:\s*(\S+)", done.stdout)
        return dict(zip(uris, flags, strict=False))

    def wait_all_active(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flags = self.destinations()
            if len(flags) == len(self.nodes) and all(f.startswith("A") for f in flags.values()):
                return
            time.sleep(0.2)
        raise AssertionError(f"front: not every node active: {self.destinations()}")


@contextlib.contextmanager
def running_front(
    workdir: Path,
    nodes: Sequence[tuple[str, int]],
    *,
    host: str = "127.0.0.30",
    port: int = 5060,
    domain: str = "example.com",
    ping_interval: int = 1,
    fr_timer: float = 2.0,
    children: int = 4,
) -> Iterator[Front]:
    """Start Kamailio with dispatcher over ``nodes``; yield it; stop it by its PID."""
    binary = ensure_debian_packages("kamailio")["kamailio"]
    ensure_debian_packages("kamailio", binaries={"kamailio": "kamcmd"})
    assert_loopback(host)
    workdir.mkdir(parents=True, exist_ok=True)
    uris = [f"sip:{assert_loopback(h)}:{p}" for h, p in nodes]
    list_file = workdir / "dispatcher.list"
    list_file.write_text("".join(f"1 {uri}\n" for uri in uris))
    mpath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
    for candidate in Path("/usr/lib").glob("*/kamailio/modules/dispatcher.so"):
        mpath = f"{candidate.parent}/"
    socket_path = workdir / "front_ctl.sock"
    cfg = workdir / "front.cfg"
    cfg.write_text(
        _CONFIG.format(
            host=host,
            port=port,
            domain=domain,
            mpath=mpath,
            socket=socket_path,
            list_file=list_file,
            ping_interval=ping_interval,
            children=children,
            fr_timer_ms=int(fr_timer * 1000),
        )
    )
    argv = [binary, "-f", str(cfg), "-DD", "-E", "-m", "256", "-M", "16", "-Y", str(workdir)]
    argv += ["-w", str(workdir)]
    process = PeerProcess("front", argv, workdir=workdir).start()
    try:
        process.wait_ready(lambda: options_ok(host, port), timeout=20)
        yield Front(host, port, workdir, socket_path, process, uris)
    finally:
        process.stop()
