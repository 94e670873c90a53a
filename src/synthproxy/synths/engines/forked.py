"""The ``vst`` engine's fast path: one pristine plugin instance in a zygote process, one fork per render.

Why: a VST plugin keeps state between renders (voices, reverb buffers, parameter smoothers, oscillator
frequency ramps, LFO phases) and amSynth's noise and sample & hold generators draw from one
*process-wide* linear congruential generator (a function-local ``static`` in ``Oscillator.cpp``), so
neither re-using an instance nor creating a fresh instance in a long-lived process gives the audio of
a fresh instance in a fresh process for every preset. Creating an instance is also slower than the
render itself (~150 ms against ~27 ms for a 5-s amSynth render).

How: a *zygote* process (a fresh interpreter, started with fork+exec, so it inherits no threads or
locks from the caller) loads the plugin once and never renders. For every preset it ``fork()``s; the
child starts from a copy-on-write image of the untouched instance (the plugin's RNG included), sets
the parameters, renders, writes float32 mono audio into a shared-memory buffer and ``_exit()``s. The
audio is bit-identical to what a freshly created instance in a fresh process renders (tested in
``tests/test_engines.py``), at ~5x the throughput of creating an instance per render.

Process model and failure handling:

* caller <-> zygote: two pipes (commands, replies) plus one ``memfd`` buffer (header + audio). The
  zygote runs in its own session, so a terminal Ctrl-C reaches only the caller, which then kills the
  zygote; the zygote exits on EOF of its command pipe, so it never outlives the caller (even SIGKILL).
* zygote <-> render child: the zygote reports the child pid, reaps it with ``waitpid`` (no zombies)
  and reports the raw wait status. A child arms ``SIGALRM`` (default action: terminate) with the
  render timeout and asks the kernel to SIGKILL it if the zygote dies (``PR_SET_PDEATHSIG``).
* a Python error in the child comes back as :class:`VSTRenderError` with its traceback, a crash (e.g.
  SIGSEGV) as :class:`VSTRenderError` naming the signal and the zygote's stderr tail, a hang as
  :class:`RenderTimeout`; a dead or hung zygote as :class:`ZygoteError` (the next render starts a
  new one). No failure mode blocks forever: every wait has a timeout.
* the zygote refuses to serve (``ZygoteError``) when loading the plugin started extra threads: a fork
  only copies the forking thread, so a lock held by another thread would deadlock the child.
* an engine used from a process forked after its creation (e.g. a ``multiprocessing`` fork worker)
  starts its own zygote instead of talking to its parent's.

Linux only (``fork``, ``memfd_create``, ``prctl``); on macOS fork is unsafe once Apple frameworks are
loaded and Windows has no fork: use the fresh-instance engine there.
"""

from __future__ import annotations

import contextlib
import gc
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import numpy as np

try:  # the zygote runs this file as a script: the package is importable, but keep the script self-sufficient
    from synthproxy.errors import RenderError
except ImportError:  # pragma: no cover
    RenderError = RuntimeError  # type: ignore[misc,assignment]

__all__ = ["ForkingVSTEngine", "RenderTimeout", "VSTRenderError", "ZygoteError", "fork_supported"]

_HEADER = 4096  # shared buffer: [int64 n_samples | int64 msg_len | msg bytes ...] then float32 audio
_MSG_MAX = _HEADER - 16
_EXIT_PY_ERROR = 70  # child exit code for a Python exception (message in the header)
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()  # don't put this file's folder on sys.path
_SINGLE_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                      "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


class VSTRenderError(RenderError):
    """A render failed in its child process (exception, crash)."""


class RenderTimeout(VSTRenderError):
    """A render took longer than the engine's ``timeout``; its child was killed."""


class ZygoteError(VSTRenderError):
    """The zygote process could not start, died, or stopped answering."""


# ---------------------------------------------------------------------------------------------
# caller side
# ---------------------------------------------------------------------------------------------
def _read_exact(fd: int, n: int, deadline: float | None, what: str) -> bytes:
    """Read exactly ``n`` bytes from a pipe, waiting at most until ``deadline`` (monotonic)."""
    buf = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(what)
            if not poller.poll(left * 1000):
                raise TimeoutError(what)
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError(what)
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Zygote:
    """Resources of one zygote process; ``close`` is idempotent and safe from a finalizer."""

    def __init__(self, config: dict, n_samples: int, start_timeout: float) -> None:
        self.owner = os.getpid()
        self.proc = None
        self.closed = False
        self.shm_size = _HEADER + 4 * n_samples
        self.shm_fd = os.memfd_create("fast_vst", os.MFD_CLOEXEC)
        os.ftruncate(self.shm_fd, self.shm_size)
        self.shm = mmap.mmap(self.shm_fd, self.shm_size)
        self.stderr = tempfile.TemporaryFile(prefix="fast_vst_zygote_")  # noqa: SIM115 (closed in close())
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        # numpy's BLAS would start a worker pool at import (one thread per core): keep the zygote
        # single-threaded, a precondition of fork() safety (checked in the zygote)
        env = dict(os.environ)
        env.update({k: "1" for k in _SINGLE_THREAD_ENV})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, *_SAFE_PATH, os.path.abspath(__file__), "--zygote", str(cmd_r), str(res_w),
                 str(self.shm_fd)],
                pass_fds=(cmd_r, res_w, self.shm_fd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self.stderr, start_new_session=True, close_fds=True, env=env,
            )
        except BaseException:
            self.close()
            raise
        finally:
            os.close(cmd_r)
            os.close(res_w)
        try:
            blob = json.dumps(config).encode()
            _write_all(self.cmd_w, struct.pack("<I", len(blob)) + blob)
            deadline = time.monotonic() + start_timeout
            (size,) = struct.unpack("<I", _read_exact(self.res_r, 4, deadline, "zygote start"))
            reply = json.loads(_read_exact(self.res_r, size, deadline, "zygote start"))
        except (TimeoutError, EOFError, BrokenPipeError) as exc:
            tail = self.stderr_tail()
            self.close()
            raise ZygoteError(f"the zygote process did not start ({type(exc).__name__}); its stderr: {tail}") from None
        if not reply.get("ok"):
            self.close()
            raise ZygoteError(reply.get("error", "zygote start failed"))
        self.info = reply

    def stderr_tail(self, n: int = 2000) -> str:
        try:
            self.stderr.flush()
            size = os.fstat(self.stderr.fileno()).st_size
            self.stderr.seek(max(0, size - n))
            return self.stderr.read().decode(errors="replace").strip() or "(empty)"
        except (OSError, ValueError):
            return "(unavailable)"

    def alive(self) -> bool:
        return not self.closed and self.proc is not None and self.proc.poll() is None

    def close(self, grace: float = 5.0) -> None:
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self.owner:  # a forked copy: the resources belong to the parent process
            return
        if self.proc is not None:
            with contextlib.suppress(OSError):
                _write_all(self.cmd_w, b"Q")
        for fd in (self.cmd_w, self.res_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.proc is not None:
            try:  # EOF/"Q" make it exit once its current child (if any) is reaped
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                # hung: kill its whole process group (it leads it, and is not reaped yet, so the id is
                # still ours), i.e. the zygote and any render child; children also die by PDEATHSIG
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.shm.close()
        os.close(self.shm_fd)
        self.stderr.close()


def fork_supported() -> bool:
    """True where this engine works: Linux (``fork``, ``memfd_create``, ``prctl``)."""
    return sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(os, "fork")


class ForkingVSTEngine:
    """Drop-in for ``VSTEngine``: same constructor and ``render``; every render forks a pristine instance.

    ``spec`` needs ``params`` (objects with ``name``), optionally ``name``, ``source_path``, ``plugin``,
    ``to_plugin``; ``settings`` needs ``sample_rate``, ``block_size``, ``note``, ``velocity``,
    ``note_duration``, ``duration`` and ``n_samples``. ``timeout`` bounds one render (seconds),
    ``start_timeout`` the plugin load in a new zygote.
    """

    def __init__(self, spec, settings, plugin_path: str | None = None, *, timeout: float = 60.0,
                 start_timeout: float = 120.0) -> None:
        self.spec = spec
        self.settings = settings
        path = plugin_path or getattr(spec, "plugin", None)
        if not path or not Path(path).expanduser().exists():
            raise FileNotFoundError(f"plugin for synth '{getattr(spec, 'name', '?')}' not found: {path!r}")
        self.plugin_path = str(Path(path).expanduser())
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self._names = [p.name for p in spec.params]
        self._n = len(self._names)
        self._lock = threading.Lock()
        self._zygote: _Zygote | None = None
        self._finalizer = None
        self._start()

    # ---- lifecycle -------------------------------------------------------------------------
    def _config(self) -> dict:
        s = self.settings
        return {
            "plugin": self.plugin_path, "names": self._names, "sample_rate": s.sample_rate,
            "block_size": s.block_size, "note": s.note, "velocity": s.velocity,
            "note_duration": s.note_duration, "duration": s.duration, "n_samples": s.n_samples,
            "timeout": self.timeout, "source": str(getattr(self.spec, "source_path", "")),
        }

    def _start(self) -> None:
        z = _Zygote(self._config(), self.settings.n_samples, self.start_timeout)
        self._zygote = z
        self._finalizer = weakref.finalize(self, z.close)
        self.plugin_index = np.array(z.info["indices"])

    def _discard(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs z.close() once
        self._zygote = None
        self._finalizer = None

    @property
    def zygote_pid(self) -> int | None:
        """Pid of the current zygote process (None before the first start / after ``close``)."""
        z = self._zygote
        return z.proc.pid if z is not None and z.proc is not None else None

    def close(self) -> None:
        """Stop the zygote and reap every child process (idempotent)."""
        with self._lock:
            self._discard()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- rendering ---------------------------------------------------------------------------
    def _zygote_for_this_process(self) -> _Zygote:
        z = self._zygote
        if z is not None and z.owner != os.getpid():  # we are a fork of the creating process
            z.closed = True  # never touch the parent's zygote
            self._zygote = None
            if self._finalizer is not None:
                self._finalizer.detach()
            z = None
        if z is None or not z.alive():
            if z is not None:
                self._discard()
            self._start()
            z = self._zygote
        return z

    def _request(self, cmd: bytes, payload: bytes) -> tuple[int, _Zygote]:
        """Send one command, wait for the child's wait status; any failure discards the zygote."""
        z = self._zygote_for_this_process()
        watchdog = time.monotonic() + self.timeout + 30.0
        try:
            _write_all(z.cmd_w, cmd + payload)
            tag, _child_pid = struct.unpack("<cq", _read_exact(z.res_r, 9, watchdog, "fork"))
            tag2, status = struct.unpack("<cq", _read_exact(z.res_r, 9, watchdog, "render"))
            if tag != b"P" or tag2 != b"D":
                raise EOFError("protocol")
            return status, z
        except (TimeoutError, EOFError, BrokenPipeError) as exc:
            tail = z.stderr_tail()
            self._discard()
            kind = "stopped answering" if isinstance(exc, TimeoutError) else "died"
            raise ZygoteError(f"the zygote process {kind} during a render of {self.plugin_path}; "
                              f"its stderr: {tail}") from None
        except BaseException:  # KeyboardInterrupt etc.: the reply is still pending, drop this zygote
            self._discard()
            raise

    def _check_status(self, status: int, z: _Zygote, what: str) -> None:
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGALRM:
                raise RenderTimeout(f"{what} exceeded the timeout of {self.timeout:g} s; its child was killed")
            raise VSTRenderError(f"{what}: the render child was killed by {signal.Signals(sig).name} "
                                 f"(plugin crash?); zygote stderr: {z.stderr_tail()}")
        code = os.WEXITSTATUS(status)
        (msg_len,) = struct.unpack_from("<q", z.shm, 8)
        msg = bytes(z.shm[16:16 + max(0, min(msg_len, _MSG_MAX))]).decode(errors="replace")
        raise VSTRenderError(f"{what} failed in its child (exit code {code}): {msg or z.stderr_tail()}")

    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        """Render one full plugin vector (one normalised value per spec parameter) to mono float32."""
        v = np.asarray(plugin_vector, dtype=np.float64).reshape(-1)
        if v.shape[0] != self._n:
            raise ValueError(f"plugin vector has {v.shape[0]} values, the spec has {self._n} parameters")
        with self._lock:
            status, z = self._request(b"R", struct.pack(f"<{self._n}d", *v.tolist()))
            self._check_status(status, z, "render")
            (n,) = struct.unpack_from("<q", z.shm, 0)
            if not 0 <= n <= self.settings.n_samples:
                raise VSTRenderError(f"render child reported {n} samples")
            return np.frombuffer(z.shm, dtype=np.float32, count=n, offset=_HEADER).copy()

    def render_preset(self, preset: np.ndarray) -> np.ndarray:
        """Render a preset vector (used parameters only, categoricals as indices) via ``spec.to_plugin``."""
        return self.render(self.spec.to_plugin(np.asarray(preset)[None, :])[0])

    def parameter_text(self, name: str, value: float) -> str:
        """The plugin's display text for a parameter value (computed in a throw-away child)."""
        i = self._names.index(name)
        with self._lock:
            status, z = self._request(b"T", struct.pack("<qd", i, float(value)))
            self._check_status(status, z, "parameter_text")
            (msg_len,) = struct.unpack_from("<q", z.shm, 8)
            return bytes(z.shm[16:16 + msg_len]).decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# zygote side (this file run as a script by _Zygote)
# ---------------------------------------------------------------------------------------------
def _send_frame(fd: int, obj: dict) -> None:
    blob = json.dumps(obj).encode()
    _write_all(fd, struct.pack("<I", len(blob)) + blob)


def _set_pdeathsig() -> None:
    """Linux: have the kernel SIGKILL this process when its parent (the zygote) dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(cfg, engine, proc, shm, cmd: bytes, payload: tuple) -> None:
    """Runs in the forked child: one render (or one display text) from the pristine instance."""
    code = _EXIT_PY_ERROR
    try:
        gc.disable()  # a collection would write to (and so copy) inherited pages for nothing
        _set_pdeathsig()
        if os.getppid() == 1:  # the zygote died between fork and prctl
            os._exit(_EXIT_PY_ERROR)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # default action: terminate, even inside C++
        signal.setitimer(signal.ITIMER_REAL, cfg["timeout"])
        if cmd == b"T":
            i, value = payload
            proc.set_parameter(int(cfg["indices"][i]), float(value))
            text = proc.get_parameter_text(int(cfg["indices"][i])).encode()[:_MSG_MAX]
            shm[16:16 + len(text)] = text
            struct.pack_into("<q", shm, 8, len(text))
        else:
            # exactly the sequence of VSTEngine.render on a fresh processor
            for idx, value in zip(cfg["indices"], payload, strict=True):
                proc.set_parameter(int(idx), float(value))
            engine.load_graph([(proc, [])])
            proc.add_midi_note(cfg["note"], cfg["velocity"], 0.0, cfg["note_duration"])
            engine.render(cfg["duration"])
            audio = engine.get_audio()
            n = min(audio.shape[-1], cfg["n_samples"])
            view = np.frombuffer(shm, dtype=np.float32, count=n, offset=_HEADER)
            if audio.ndim == 2 and audio.dtype == np.float32:
                # the same float32 sum-then-divide as VSTEngine's audio.mean(axis=0), written in place
                np.mean(audio[:, :n], axis=0, out=view)
            else:
                mono = audio.mean(axis=0) if audio.ndim == 2 else audio
                view[:] = np.ascontiguousarray(mono[:n], dtype=np.float32)
            struct.pack_into("<q", shm, 0, n)
        code = 0
    except BaseException:
        import traceback

        msg = traceback.format_exc().encode(errors="replace")[-_MSG_MAX:]
        shm[16:16 + len(msg)] = msg
        struct.pack_into("<q", shm, 8, len(msg))
    finally:
        os._exit(code)


def _zygote_main(cmd_fd: int, res_fd: int, shm_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller owns Ctrl-C and stops us via the pipe
    (size,) = struct.unpack("<I", _read_exact(cmd_fd, 4, None, "config"))
    cfg = json.loads(_read_exact(cmd_fd, size, None, "config"))
    try:
        import dawdreamer

        engine = dawdreamer.RenderEngine(cfg["sample_rate"], cfg["block_size"])
        proc = engine.make_plugin_processor("synth", cfg["plugin"])
        reported = {d["name"]: d["index"] for d in proc.get_parameters_description()}
        missing = [n for n in cfg["names"] if n not in reported]
        if missing:
            _send_frame(res_fd, {"ok": False, "error": (
                f"{cfg['source']}: spec names parameter(s) that the plugin {cfg['plugin']} lacks: {missing}. "
                f"The plugin reports: {sorted(reported)}")})
            return
        cfg["indices"] = [int(reported[n]) for n in cfg["names"]]
        tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [str(os.getpid())]
        if len(tasks) != 1:
            names = []
            for t in tasks:
                with contextlib.suppress(OSError):
                    names.append(Path(f"/proc/self/task/{t}/comm").read_text().strip())
            _send_frame(res_fd, {"ok": False, "error": (
                f"the zygote has {len(tasks)} threads after loading {cfg['plugin']} ({names}): forking it per "
                "render could deadlock (a fork copies only the calling thread); use the fresh-instance engine")})
            return
    except Exception as exc:
        _send_frame(res_fd, {"ok": False, "error": f"could not load plugin {cfg['plugin']}: {exc}"})
        return
    shm = mmap.mmap(shm_fd, 0)
    n = len(cfg["names"])
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) the inherited heap in children
    _send_frame(res_fd, {"ok": True, "indices": cfg["indices"], "pid": os.getpid()})
    while True:
        try:
            cmd = _read_exact(cmd_fd, 1, None, "command")
        except EOFError:  # the caller is gone
            return
        if cmd == b"R":
            payload = struct.unpack(f"<{n}d", _read_exact(cmd_fd, 8 * n, None, "vector"))
        elif cmd == b"T":
            payload = struct.unpack("<qd", _read_exact(cmd_fd, 16, None, "text"))
        else:  # b"Q" or garbage
            return
        struct.pack_into("<qq", shm, 0, -1, 0)
        pid = os.fork()
        if pid == 0:
            _child(cfg, engine, proc, shm, cmd, payload)
        with contextlib.suppress(BrokenPipeError):
            _write_all(res_fd, struct.pack("<cq", b"P", pid))
        _, status = os.waitpid(pid, 0)
        try:
            _write_all(res_fd, struct.pack("<cq", b"D", status))
        except BrokenPipeError:  # the caller is gone
            return


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--zygote":
    _zygote_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    os._exit(0)
