"""``torchgd tb``: TensorBoard on a log directory, bound to 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import sys

from .app import error


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tb",
        help="start TensorBoard on runs/ at 127.0.0.1",
        description="Start TensorBoard on LOGDIR, bound to 127.0.0.1, and print "
        "its address. Ctrl-C stops it.",
    )
    p.add_argument("logdir", nargs="?", default="runs", help="the log directory (default runs)")
    p.add_argument("--port", type=int, default=6006, help="port (default 6006; 0 = any free)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    import signal
    import subprocess
    import tempfile

    if not os.path.isdir(args.logdir):
        raise error(f"log directory '{args.logdir}' does not exist; run torchgd lecture first")
    if not 0 <= args.port < 65536:
        raise error(f"--port must be in 0..65535, got {args.port}")
    if args.port:
        _check_port(args.port)
    port = args.port or _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    # Ctrl-C and SIGTERM stop the server, even where SIGINT came in ignored (a shell's
    # background job): our handlers, not the inherited ones
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        # smoothing 0: every step as it was logged (TensorBoard's default, 0.6, turns a 1-ulp
        # spike into fractions of an ulp); the slider in Settings still changes it
        address = f"http://127.0.0.1:{port}/?smoothing=0"
        print(f"TensorBoard on {args.logdir}: {address} (Ctrl-C to stop)", flush=True)
        if not _serve(proc):
            return 0
        if proc.returncode:
            err.seek(0)
            last = err.read().strip().splitlines()
            raise error(
                f"TensorBoard stopped (exit {proc.returncode}): "
                f"{last[-1] if last else 'no message'}"
            )
    return 0


def _serve(proc) -> bool:
    """Wait for the server to end by itself (True) or stop it on Ctrl-C (False)."""
    import subprocess
    import time

    try:
        while proc.poll() is None:  # short sleeps, not a blocking read: Ctrl-C acts at once
            time.sleep(0.2)
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return False
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port(port: int) -> None:
    """Refuse a busy port before printing an address that would never answer."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise error(f"port {port} is in use; choose another --port (0: any free one)") from None
