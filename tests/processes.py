"""The command line in real processes, as the tests start it.

A test that runs ``python -m torchgd ARGS`` gets a real process of its own: its own working
directory, environment, stdout and stderr pipes, exit code and signals. Most of them get it
forked from a server that has already imported torch (``forkserver``, preloaded), because the
imports alone cost about 3 s of a 2-core machine per command (torch, and ``torch._dynamo``, which
torch.optim's ``step()`` imports) and the suite starts about a hundred commands.

What such a process does not go through is the interpreter's start-up: importing torch after the
command line is known. Start-up is what an exec'd process checks (``fresh=True``, a
``preexec_fn`` or other ``Popen`` option, or an environment that adds or changes a variable
outside ``FORKABLE``, one an import might read); tests of the console script, of what importing
torchgd loads, of import-time settings and of resource limits use it, and
``test_a_forked_command_prints_what_an_execd_one_does`` holds the two to the same output.
"""

import atexit
import io
import json
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from multiprocessing import reduction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPE, STDOUT = subprocess.PIPE, subprocess.STDOUT
PRELOAD = ["torch", "torch._dynamo", "torch.utils.tensorboard", "torchgd.cli", "torchgd.train"]
# what a process's environment may change (add, alter or drop) and still be forked: variables
# read when used, not when a module is imported (the forked process sets them before it runs,
# and forgets the temporary directory the server may have looked up); any other change, an
# inductor setting say, gets an exec'd process
FORKABLE = {"COLUMNS", "PATH", "PYTHONPATH", "TMPDIR"}
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)
_STARTED = []  # every Forked: one still running when the tests end is killed (below)


@atexit.register
def _kill_leftovers():
    """A command a failed test left running is killed, as an exec'd one is left to the system:
    multiprocessing would otherwise wait for it, and the test run would never end."""
    for proc in _STARTED:
        proc.kill()


def start(args, cwd=None, env=None, **kw):
    """``python -m torchgd ARGS`` started: a ``subprocess.Popen``, or one of its kind."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return start_python(["-m", "torchgd", *args], cwd=cwd, env=full_env, **kw)


def run(args, cwd=None, timeout=120, env=None, **kw):
    """``start``, then wait for it: a ``subprocess.CompletedProcess``."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return run_python(["-m", "torchgd", *args], cwd=cwd, env=full_env, timeout=timeout, **kw)


def start_python(
    argv, cwd=None, env=None, stdout=PIPE, stderr=PIPE, text=True, fresh=False, **popen
):
    """``python ARGV`` (``-m MODULE ...`` or ``SCRIPT ...``) in the environment ``env``."""
    argv = [sys.executable, *map(str, argv)]
    env = dict(os.environ if env is None else env)
    changed = {k for k in {*env, *os.environ} if env.get(k) != os.environ.get(k)}
    if fresh or popen or changed - FORKABLE:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=text, **popen
        )
    return Forked(argv, str(cwd or os.getcwd()), env, stdout, stderr, text)


def run_python(argv, cwd=None, env=None, timeout=120, **kw):
    """``start_python``, then wait for it: a ``subprocess.CompletedProcess``."""
    proc = start_python(argv, cwd=cwd, env=env, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class _Fd:
    """A file descriptor that travels to the forked process (sent over the server's socket)."""

    def __init__(self, fd):
        self.fd = fd

    def __reduce__(self):
        return _Fd._detach, (reduction.DupFd(self.fd),)

    @staticmethod
    def _detach(dup):
        return dup.detach()


class Forked:
    """The parts of ``subprocess.Popen`` the tests use, for a process forked by the server."""

    def __init__(self, argv, cwd, env, stdout, stderr, text=True):
        self.args, self.returncode, self.stdout, self.stderr = argv, None, None, None
        ends, theirs = [], []
        for name, where in (("stdout", stdout), ("stderr", stderr)):
            if where == PIPE:
                r, w = os.pipe()
                setattr(self, name, open(r, "r" if text else "rb"))
                ends.append(w)
                theirs.append(w)
            elif where == STDOUT:
                theirs.append(theirs[0])
            elif where == subprocess.DEVNULL:
                theirs.append(os.open(os.devnull, os.O_WRONLY))
                ends.append(theirs[-1])
            else:
                theirs.append(where if isinstance(where, int) else where.fileno())
        mask = os.umask(0o022)  # the caller's, as an exec'd process inherits it
        os.umask(mask)
        start = (argv, cwd, env, mask, _interpreter_path())
        self._process = _context.Process(
            target=_main, args=(*start, _Fd(theirs[0]), _Fd(theirs[1]))
        )
        self._process.start()
        for fd in ends:
            os.close(fd)
        self.pid = self._process.pid
        _STARTED.append(self)

    def poll(self):
        if self.returncode is None and self._process.exitcode is not None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout=None):
        """Both pipes read to their end (each by a thread, so neither fills), then the exit."""
        texts = {}

        def drain(name, stream):
            texts[name] = stream.read()
            stream.close()

        readers = [
            threading.Thread(target=drain, args=(n, s), daemon=True)
            for n, s in (("out", self.stdout), ("err", self.stderr))
            if s is not None
        ]
        for thread in readers:
            thread.start()
        self.wait(timeout)
        for thread in readers:
            thread.join(timeout)
        return texts.get("out"), texts.get("err")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def _main(argv, cwd, env, mask, interpreter_path, stdout, stderr):
    """In the forked process: what ``python ARGV`` does once torch is imported."""
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in {stdout, stderr}:
        os.close(fd)
    # the streams as the interpreter makes them: its encoding and error handler (the server's,
    # started with this environment), buffered unless PYTHONUNBUFFERED, stdout by lines on a tty
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    for fd, name, lines in ((1, "stdout", os.isatty(1)), (2, "stderr", True)):
        like = getattr(sys, f"__{name}__")
        stream = io.TextIOWrapper(
            open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False),
            encoding=like.encoding, errors=like.errors, line_buffering=lines,
            write_through=unbuffered,
        )  # fmt: skip
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    os.chdir(cwd)
    os.umask(mask)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # looked up again, in this environment
    module = argv[2] if argv[1] == "-m" else None
    sys.argv = argv[2:] if module else argv[1:]
    first = cwd if module else os.path.dirname(os.path.abspath(argv[1]))
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [first, *extra, *interpreter_path]
    code = 1
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[1], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:  # as the interpreter ends on an uncaught Ctrl-C: by the signal
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # as the interpreter ends on any other: its traceback, exit 1
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    os._exit(code)


def _exit_code(code):
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


_PATH = []


def _interpreter_path():
    """``sys.path`` of a fresh interpreter, less its first entry (the script's directory)."""
    if not _PATH:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run(
            [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        _PATH.extend(json.loads(out))
    return _PATH
