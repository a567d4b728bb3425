"""A disposable single-node Ceph RADOS Gateway on 127.0.0.1, for tests.

moto is a mock; RGW is a production S3 implementation whose quirks (empty ETag from
CompleteMultipartUpload, unquoted CopyObject ETags, millisecond listings against whole-second
HEADs) are exactly what a sync tool must survive. This module boots one mon, one OSD on
memstore (data in RAM) and one radosgw under a directory of its own, on free loopback ports,
and tears it all down again. The recipe and its pitfalls are in shared/notes/ceph-rgw.md.

Usable as a module (``start(root)`` / ``stop(root)``) and as a script::

    python tests/servers/ceph_rgw.py start DIR   # prints the endpoint and keys as JSON
    python tests/servers/ceph_rgw.py stop DIR

Every daemon runs in a session of its own (setsid), so a Ctrl-C aimed at the test run does not
kill the cluster mid-teardown; in exchange they must be stopped by PID, which ``stop`` does
from the state file written into ``root``, so a different process can stop what one started.
Only the standard library is used, so the script runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ACCESS_KEY = "FSYNCTESTACCESSKEY01"
SECRET_KEY = "fsyncTestSecretKey0123456789abcdefghijKL"
USER_ID = "fsync-test"

INSTALL_HINT = (
    "Ceph RGW not installed: run `bash tests/servers/install-ceph.sh` "
    "(Debian packages radosgw ceph-mon ceph-osd ceph-common)"
)
REQUIRED_BINARIES = (
    "radosgw",
    "radosgw-admin",
    "ceph-mon",
    "ceph-osd",
    "ceph",
    "ceph-authtool",
    "monmaptool",
)

STATE_FILE = "cluster.json"
RGW_NAME = "client.rgw.local"

# Popen handles of the daemons this interpreter started, by PID: stop() waits on them so they
# are reaped (no zombies, no "subprocess still running" ResourceWarning under pytest).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class RgwCluster:
    """A running cluster: where it lives, how to reach its S3 endpoint, and its daemons."""

    root: Path
    endpoint_url: str
    access_key: str
    secret_key: str
    pids: Mapping[str, int]  # daemon name ("mon.a", "osd.0", "client.rgw.local") -> PID
    startup_seconds: float

    def to_json(self) -> dict[str, object]:
        """The state file's content: everything ``stop`` and other processes need."""
        return {
            "root": str(self.root),
            "endpoint_url": self.endpoint_url,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "pids": dict(self.pids),
            "startup_seconds": self.startup_seconds,
        }


class CephStartError(RuntimeError):
    """The cluster did not come up; the message carries the daemons' log tails."""


def missing_binaries() -> list[str]:
    """The Ceph programs that are not on PATH (empty when the packages are installed)."""
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]


def is_installed() -> bool:
    """True when every program the bootstrap needs is on PATH."""
    return not missing_binaries()


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago.

    All sockets are held open until every port is chosen, so the kernel cannot hand out the
    same port twice; the small race before the daemon binds is accepted for a test fixture.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ceph_conf(root: Path, fsid: str, mon_v2: int, mon_v1: int, rgw_port: int) -> str:
    """ceph.conf for one mon, one memstore OSD and one radosgw, all on 127.0.0.1.

    Three settings are not obvious (the first two are in the notes): the paxos intervals
    cut start-up from ~13 s to ~2 s, because radosgw creates its pools one after another;
    radosgw hangs on ``get_initial_auth_request returned -13`` with auth off unless its mon
    client mode allows "crc"; and beast's ``tcp_nodelay=1``. Without it every GET of a small
    object took 44 ms instead of 3.5 ms (boto3, one at a time): beast writes an answer's head
    and body apart, and on loopback, whose segments hold 64 KiB, the body is a small segment
    that Nagle holds until the client's delayed ACK of the head, 40 ms later. Over a network
    the body mostly goes in full segments that are sent at once, so the stall was this
    setup's, and it made every pull from Ceph measure the number of requests in flight.
    """
    return f"""\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
run dir = {root}/run
log file = {root}/log/$name.log
keyring = {root}/keyring

[mon]
mon data = {root}/mon/$cluster-$id
paxos propose interval = 0.05
paxos min wait = 0.01
# The mon shuts itself down below 5 % free space on its disk (`mon data avail crit`), which
# a machine's /tmp full of test trees reaches: every Ceph test then errored with a bare
# "osd new: timed out". Its store here is a few MiB.
mon data avail crit = 0
mon data avail warn = 0

[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {4 * 1024**3}

[{RGW_NAME}]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {root}/rgw
ms mon client mode = crc secure
"""


def _log_tail(root: Path, lines: int = 25) -> str:
    """The last lines of every log under ``root/log``, for an error message a human can act on."""
    parts: list[str] = []
    log_dir = root / "log"
    if log_dir.is_dir():
        for path in sorted(log_dir.iterdir()):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                text = [f"(unreadable: {exc})"]
            if text:
                parts.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
    return "\n".join(parts) if parts else "(no logs)"


def _child_env() -> dict[str, str]:
    """This environment without CEPH_* variables: a developer's CEPH_ARGS or CEPH_CONF must
    not point the throwaway cluster's tools at another cluster."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CEPH_")}


def _run(root: Path, argv: Sequence[str], timeout: float) -> str:
    """Run a one-shot Ceph tool to completion; a failure raises with its output and the logs."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=_child_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise CephStartError(
            f"{argv[0]} timed out after {timeout:.0f} s: {' '.join(argv)}\n{_log_tail(root)}"
        ) from exc
    if done.returncode != 0:
        raise CephStartError(
            f"{argv[0]} exited {done.returncode}: {' '.join(argv)}\n"
            f"stdout: {done.stdout.strip()}\nstderr: {done.stderr.strip()}\n{_log_tail(root)}"
        )
    return done.stdout


def _spawn(root: Path, name: str, argv: Sequence[str]) -> int:
    """Start a daemon in a new session (setsid) with its output in ``root/log``; return its PID."""
    out = (root / "log" / f"{name}.out").open("ab")
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_child_env(),
        )
    finally:
        out.close()
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _http_status(url: str) -> int | None:
    """The status of ``GET url``, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _check_alive(root: Path, pids: Mapping[str, int]) -> None:
    """Fail at once, with the logs, when a daemon died during start-up (no waiting it out)."""
    for name, pid in pids.items():
        if not _pid_running(pid):
            raise CephStartError(f"{name} (pid {pid}) exited during start-up\n{_log_tail(root)}")


def _wait_for_rgw(root: Path, url: str, pids: Mapping[str, int], deadline: float) -> None:
    """Poll ``GET /`` until it answers 200, failing early if a daemon dies."""
    status: int | None = None
    while time.monotonic() < deadline:
        _check_alive(root, pids)
        status = _http_status(url)
        if status == 200:
            return
        time.sleep(0.05)
    raise CephStartError(
        f"radosgw at {url} did not answer 200 in time (last status: {status})\n{_log_tail(root)}"
    )


def _left(deadline: float) -> float:
    """Seconds until ``deadline``, at least one so a late step still gets a fair try."""
    return max(deadline - time.monotonic(), 1.0)


def _save(cluster: RgwCluster) -> None:
    """Write the state file; called as soon as each daemon exists, so ``stop`` always works."""
    (cluster.root / STATE_FILE).write_text(json.dumps(cluster.to_json(), indent=2))


def _launch(cluster: RgwCluster, name: str, argv: Sequence[str]) -> RgwCluster:
    """Spawn one daemon and record its PID in the state file."""
    pid = _spawn(cluster.root, name, argv)
    launched = replace(cluster, pids={**cluster.pids, name: pid})
    _save(launched)
    return launched


def _make_mon(root: Path, cfg: Sequence[str], fsid: str, mon_addr: str, deadline: float) -> None:
    """Create the monitor's store (monmap + mkfs); the daemon itself is launched separately."""
    # ceph-mon --mkfs insists on a keyring even with auth off: a throwaway one will do.
    keyring = str(root / "keyring")
    authtool = ["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon."]
    _run(root, [*authtool, "--cap", "mon", "allow *"], _left(deadline))
    monmap = str(root / "monmap")
    monmaptool = ["monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_addr, monmap]
    _run(root, monmaptool, _left(deadline))
    mkfs = ["ceph-mon", *cfg, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring]
    _run(root, mkfs, _left(deadline))


def _make_osd(root: Path, cfg: Sequence[str], deadline: float) -> str:
    """Register an OSD with the (running) mon and create its memstore; return its id."""
    osd_uuid = str(uuid.uuid4())
    # `ceph osd new` waits for the mon to answer, so it doubles as the mon's readiness check.
    connect = ["--connect-timeout", str(int(_left(deadline)))]
    osd_id = _run(root, ["ceph", *cfg, *connect, "osd", "new", osd_uuid], _left(deadline))
    osd_id = osd_id.strip()
    mkfs = ["ceph-osd", *cfg, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid]
    _run(root, mkfs, _left(deadline))
    return osd_id


def start(
    root: Path,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    timeout: float = 90.0,
) -> RgwCluster:
    """Boot mon + memstore OSD + radosgw under ``root`` and create an S3 user with fixed keys.

    ``root`` must be absent or empty; it receives ceph.conf, the daemons' data and logs, and
    the state file that ``stop`` reads. On any failure every started daemon is stopped again
    and CephStartError carries the log tails (the directory is kept for inspection).
    """
    missing = missing_binaries()
    if missing:
        raise FileNotFoundError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: give start() a fresh directory")
    began = time.monotonic()
    deadline = began + timeout
    for sub in ("log", "run", "mon/ceph-a", "osd/ceph-0", "rgw"):
        (root / sub).mkdir(parents=True)

    mon_v2, mon_v1, rgw_port = free_ports(3)
    fsid = str(uuid.uuid4())
    conf = root / "ceph.conf"
    conf.write_text(_ceph_conf(root, fsid, mon_v2, mon_v1, rgw_port))
    cfg = ["-c", str(conf)]
    endpoint = f"http://127.0.0.1:{rgw_port}"
    cluster = RgwCluster(root, endpoint, access_key, secret_key, {}, 0.0)
    try:
        _make_mon(root, cfg, fsid, f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]", deadline)
        cluster = _launch(cluster, "mon.a", ["ceph-mon", *cfg, "-f", "-i", "a"])
        osd_id = _make_osd(root, cfg, deadline)
        cluster = _launch(cluster, f"osd.{osd_id}", ["ceph-osd", *cfg, "-f", "-i", osd_id])
        # radosgw waits for the OSD by itself while it creates its pools: no need to poll
        # `ceph osd dump` (each call costs a Python start-up) before launching it.
        cluster = _launch(cluster, RGW_NAME, ["radosgw", *cfg, "-f", "-n", RGW_NAME])
        _wait_for_rgw(root, endpoint + "/", cluster.pids, deadline)
        user = ["user", "create", f"--uid={USER_ID}", "--display-name=fsync tests"]
        keys = [f"--access-key={access_key}", f"--secret-key={secret_key}"]
        _run(root, ["radosgw-admin", *cfg, *user, *keys], _left(deadline))
    except BaseException:
        _stop_pids(cluster.pids, timeout=10.0)
        raise
    cluster = replace(cluster, startup_seconds=time.monotonic() - began)
    _save(cluster)
    return cluster


def load(root: Path) -> RgwCluster:
    """The cluster recorded in ``root``'s state file (raises FileNotFoundError if none)."""
    data = json.loads((root / STATE_FILE).read_text())
    return RgwCluster(
        root=Path(data["root"]),
        endpoint_url=data["endpoint_url"],
        access_key=data["access_key"],
        secret_key=data["secret_key"],
        pids={str(k): int(v) for k, v in data["pids"].items()},
        startup_seconds=float(data["startup_seconds"]),
    )


def _pid_running(pid: int) -> bool:
    """True while ``pid`` is a live process; a zombie counts as gone (it holds no ports)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_ceph_daemon(pid: int) -> bool:
    """Guard against PID reuse: only signal a PID whose command line is one of our daemons."""
    if pid in _CHILDREN:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and Path(cmdline[0].decode(errors="replace")).name in {
        "ceph-mon",
        "ceph-osd",
        "radosgw",
    }


def _stop_order(name: str) -> int:
    """radosgw first, then OSDs, mon last: an OSD stopping without a mon to tell waits 5 s."""
    if name.startswith("mon."):
        return 2
    if name.startswith("osd."):
        return 1
    return 0


def _stop_pids(pids: Mapping[str, int], timeout: float) -> None:
    """Stop each daemon in turn: SIGTERM, wait up to ``timeout``, then SIGKILL."""
    for _, pid in sorted(pids.items(), key=lambda item: (_stop_order(item[0]), item[0])):
        if not (_pid_running(pid) and _is_ceph_daemon(pid)):
            _CHILDREN.pop(pid, None)
            continue
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_running(pid):
            _signal(pid, signal.SIGKILL)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=timeout)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop(root: Path, *, timeout: float = 15.0, wipe: bool = True) -> None:
    """Stop the daemons recorded in ``root`` by PID and (by default) delete ``root``.

    The directory is deleted only when it holds this module's state file, so a mistyped path
    never wipes anything else. Stopping an already stopped cluster is a no-op.
    """
    state_file = root / STATE_FILE
    if not state_file.is_file():
        return
    _stop_pids(load(root).pids, timeout=timeout)
    if wipe:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``start DIR`` prints the cluster as JSON; ``stop DIR`` stops it and wipes DIR."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start", help="boot a cluster under DIR (absent or empty)")
    start_cmd.add_argument("dir", type=Path)
    start_cmd.add_argument("--timeout", type=float, default=90.0)
    stop_cmd = sub.add_parser("stop", help="stop the cluster under DIR and delete DIR")
    stop_cmd.add_argument("dir", type=Path)
    stop_cmd.add_argument("--keep", action="store_true", help="keep DIR (logs) after stopping")
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            cluster = start(args.dir, timeout=args.timeout)
        except (CephStartError, FileNotFoundError, FileExistsError) as exc:
            print(exc, file=sys.stderr)
            return 1
        print(json.dumps(cluster.to_json(), indent=2))
        return 0
    stop(args.dir, wipe=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
