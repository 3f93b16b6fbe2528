"""Warm execution of jobflow-remote jobs: a fork server that imported frostline once.

Every jobflow-remote job is a fresh Python process (``jf -fe execution run DIR``) that imports
torch, MACE, atomate2 and pymatgen before doing anything: 5–20 s of CPU per job, longer than
most of a campaign's bookkeeping and EMT/xTB label jobs themselves. A worker whose
``execution_cmd`` is ``python -m frostline.submit.warm run {}`` instead sends the job folder,
its environment and its stdin/stdout/stderr to a server that has those modules imported and
forks one child per job (the child runs jobflow-remote's own ``run_remote_job``). The first job
starts the server (detached, in its own session); it exits after ``--idle`` seconds without
jobs. The client stays alive until its job ends and exits with its status, so the runner and
the queue see an ordinary process. If no server can be reached the job runs cold, in-process.
Either way a job runs once per upload of its folder: a second process started for the same job
(a runner killed right after it started the job, then restarted) waits for the first and does
not run the job again (``_run_job``).

Use it on a node that runs many short jobs (a local or batch worker for ``control`` and cheap
``label`` jobs); a Slurm job per DFT calculation gains nothing from it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from frostline.settings import env_var, settings

ENV_SOCKET = env_var("warm_socket")
"""Socket path of the server (default: one per user and Python environment in the temp dir)."""
PRELOAD = (
    "jobflow_remote.jobs.run",
    "frostline.flows.active_learning",
    "frostline.label.jobs",
    "atomate2.forcefields.jobs",
)
"""Modules the server imports once (those every frostline job needs)."""
EXECUTION_CMD = f"{sys.executable} -m frostline.submit.warm run {{}}"
"""A worker ``execution_cmd`` using this module with the current Python."""


def default_socket() -> str:
    """``$FROSTLINE_WARM_SOCKET`` or a per-user, per-environment path in the temp dir."""
    if socket_path := settings().warm_socket:
        return socket_path
    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]
    return f"/tmp/frostline-warm-{os.getuid()}-{tag}.sock"


RUN_LOCK = ".frostline-run.lock"
"""In a run folder: the file a job's process holds an exclusive ``flock`` on while it runs."""
RAN_ON = ".frostline-ran-on"
"""In a run folder: sha256 of the ``jfremote_in.json`` the job last ran to its end on."""


def _input_digest(run_dir: str) -> str | None:
    from jobflow_remote.jobs.data import IN_FILENAME

    try:
        return hashlib.sha256(Path(run_dir, IN_FILENAME).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _run_job(run_dir: str) -> int:
    """Run the job in ``run_dir`` once per upload: one process at a time, never again after it
    ran to its end on the same ``jfremote_in.json``.

    jobflow-remote may start a job twice in the same folder: a runner killed after it started
    the job but before it recorded the submission leaves the job UPLOADED, and the next runner
    submits it again (the first process is still running, or done). A second run would
    compute the job again (an oracle call) and rewrite the output files the first one wrote,
    possibly while the runner reads them. Here the second process waits for the first
    (``RUN_LOCK``) and, finding ``RAN_ON`` equal to the input's digest, exits at once: the
    runner completes the job from the first run's files. A run killed midway writes no
    ``RAN_ON``, so the job runs again; a re-upload (new input) or ``jf job rerun`` (which
    empties the folder) runs it anew.
    """
    import fcntl

    from jobflow_remote.jobs.run import run_remote_job

    with open(Path(run_dir, RUN_LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
        digest = _input_digest(run_dir)
        ran_on = Path(run_dir, RAN_ON)
        if digest is not None and ran_on.is_file() and ran_on.read_text() == digest:
            print(
                f"frostline warm: the job in {run_dir} already ran on this input; "
                "its outputs stand, not running it again",
                file=sys.stderr,
            )
            return 0
        run_remote_job(run_dir)
        if digest is not None:
            from frostline.registry.models import atomic_write

            atomic_write(ran_on, digest.encode())
    return 0


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: take the client's stdio and environment, run the job, report."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the job may wait for subprocesses
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in zip((1, 2), fds, strict=False):
            os.dup2(fd, target)
        os.environ.clear()
        os.environ.update(request["env"])
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
        os.chdir(request["cwd"])
        code = _run_job(request["dir"])
    except BaseException:  # the job's own errors are in its output file; this is a crash
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"code": code}).encode())
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(path: str, idle: float = 600.0) -> None:
    """Import ``PRELOAD``, then fork a child per request until ``idle`` seconds without one."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # clean up the socket
    tmp = f"{path}.{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(tmp)
    server.listen(64)
    os.replace(tmp, path)  # atomically visible only once listening
    inode = os.stat(path).st_ino
    Path(f"{path}.pid").write_text(str(os.getpid()))
    server.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
            conn.settimeout(None)
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
            while not msg.endswith(b"\n"):
                more = conn.recv(1 << 20)
                if not more:
                    break
                msg += more
            pid = os.fork()
            if pid == 0:
                server.close()
                _child(conn, json.loads(msg), fds)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        server.close()
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:  # not a newer server's socket
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.unlink(f"{path}.pid")


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _start_server(path: str, idle: float, wait: float) -> socket.socket | None:
    log = open(f"{path}.log", "a")  # noqa: SIM115  handed to the detached server
    subprocess.Popen(
        [sys.executable, "-m", "frostline.submit.warm", "serve", path, "--idle", str(idle)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        time.sleep(0.2)
    return None


def run(run_dir: str, path: str | None = None, idle: float = 600.0, wait: float = 120.0) -> int:
    """Run the job in ``run_dir`` through the server (started if needed), else cold."""
    path = path or default_socket()
    sock = _connect(path)
    if sock is None:
        lock = open(f"{path}.lock", "a")  # noqa: SIM115  one client starts the server
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
            sock = _connect(path) or _start_server(path, idle, wait)
        finally:
            lock.close()
    if sock is None:
        print(f"frostline warm: no server at {path}; running cold", file=sys.stderr)
        return _run_job(run_dir)
    request = {"dir": os.path.abspath(run_dir), "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [1, 2])
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    if not reply:
        print("frostline warm: the job's process died", file=sys.stderr)
        return 1
    return int(json.loads(reply)["code"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frostline.submit.warm")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run a jobflow-remote job folder")
    p_run.add_argument("run_dir")
    p_run.add_argument("--socket", default=None)
    p_run.add_argument("--idle", type=float, default=600.0)
    p_serve = sub.add_parser("serve", help="the fork server")
    p_serve.add_argument("socket")
    p_serve.add_argument("--idle", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.socket, args.idle)
        return 0
    return run(args.run_dir, args.socket, args.idle)


if __name__ == "__main__":
    sys.exit(main())
