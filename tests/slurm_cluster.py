"""A throw-away single-node SLURM cluster (munged + slurmctld + slurmd on this machine) for tests and by hand.

Installs nothing: the Debian packages `slurmctld slurmd slurm-client munge` must be there (scripts/setup.sh).
Needs root. Writes slurm.conf for this machine (`hostname -s`, `nproc`, MemTotal - 1 GiB) into a fresh base
directory and to /etc/slurm/slurm.conf (the clients inside jobs read only that path: the jobstep plugin clears
`SLURM_CONF`); an existing /etc/slurm/slurm.conf is backed up and put back on stop.

    with SlurmCluster() as cluster:          # or the `slurm_cluster` fixture in tests/test_slurm.py
        subprocess.run([...], env=cluster.env())

By hand (as root, from the repo root):

    .venv/bin/python -m tests.slurm_cluster run -- .venv/bin/snakemake --profile profiles/slurm ...
    .venv/bin/python -m tests.slurm_cluster start     # leaves the daemons running; prints the base directory
    .venv/bin/python -m tests.slurm_cluster status
    .venv/bin/python -m tests.slurm_cluster stop      # stops what `start` (or a killed test run) left behind

Every process this module starts carries SYNTHPROXY_SLURM_CLUSTER=<base dir> in its environment (and the daemons
name the base directory on their command line), so leftovers of an earlier, killed run are found and stopped
exactly, by pid, never by a process name that could match someone else's SLURM. Daemons stop in the order
jobs, slurmd, slurmctld, munged, in a `finally`, on SIGTERM/SIGHUP/Ctrl-C and at interpreter exit.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("slurm_cluster")

MARKER_ENV = "SYNTHPROXY_SLURM_CLUSTER"
MARKER_LINE = "# written by synthproxy tests/slurm_cluster.py; base="
SLURM_CONF = Path("/etc/slurm/slurm.conf")
SLURM_CONF_BACKUP = Path("/etc/slurm/slurm.conf.synthproxy-backup")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
LOCK = Path("/run/synthproxy-slurm-cluster.lock")  # held while a cluster runs: one per machine (ports, slurm.conf)
PORTS = (6817, 6818)  # slurmctld, slurmd
PARTITION = "debug"
ACTIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")
BINARIES = {
    "munged": "munge",
    "munge": "munge",
    "unmunge": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmstepd": "slurmd",
    "sbatch": "slurm-client",
    "srun": "slurm-client",
    "squeue": "slurm-client",
    "sinfo": "slurm-client",
    "scontrol": "slurm-client",
    "scancel": "slurm-client",
}
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the test cluster (not root, packages missing, ports taken): a reason to skip."""


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in BIN_DIRS:  # sbin is not always on a non-login PATH
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster (None: it can). Does not look at ports or running daemons."""
    if os.geteuid() != 0:
        return "needs root (starts munged, slurmctld and slurmd and writes /etc/slurm/slurm.conf)"
    missing = sorted({pkg for name, pkg in BINARIES.items() if not find_binary(name)})
    if missing:
        return (f"SLURM packages missing: {' '.join(missing)} (scripts/setup.sh installs them: "
                "apt-get install slurmctld slurmd slurm-client munge)")
    if not MUNGE_KEY.is_file():
        return f"{MUNGE_KEY} missing (made by the munge package; `mungekey --create` makes one)"
    return None


# --- processes ------------------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _proc_env_marker(pid: int) -> str | None:
    for item in _read(Path(f"/proc/{pid}/environ")).split(b"\0"):
        if item.startswith(MARKER_ENV.encode() + b"="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def _proc_cmdline(pid: int) -> str:
    return _read(Path(f"/proc/{pid}/cmdline")).replace(b"\0", b" ").decode(errors="replace").strip()


def _proc_comm(pid: int) -> str:
    return _read(Path(f"/proc/{pid}/comm")).decode(errors="replace").strip()


def _alive(pid: int) -> bool:
    stat = _read(Path(f"/proc/{pid}/stat")).decode(errors="replace")
    if not stat:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]  # after "(comm)"
    return state not in ("Z", "X")


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _read(Path(f"/proc/{pid}/stat")).decode(errors="replace")
        if not stat:
            break
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return pids


def _marked_processes(base: str | None = None) -> list[int]:
    """Pids whose environment (or, for the daemons, command line) names a test cluster (`base`: this one)."""
    own = _ancestors()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        pid = int(entry.name)
        marker = _proc_env_marker(pid)
        if marker is not None:
            if base is None or marker == base:
                out.append(pid)
        elif _proc_comm(pid) in ("slurmctld", "slurmd", "munged"):
            cmd = _proc_cmdline(pid)
            if "synthproxy-slurm-" in cmd and (base is None or base in cmd):
                out.append(pid)
    return out


def _kill_and_wait(pids, name: str, timeout: float = 10.0, procs: dict[int, subprocess.Popen] | None = None) -> None:
    """SIGTERM `pids`, wait up to `timeout` s, then SIGKILL the rest (reaping our own children)."""
    pids = [p for p in pids if _alive(p)]
    if not pids:
        return
    log.info("stopping %s: pids %s", name, pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            for pid in pids:
                if procs and pid in procs:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        procs[pid].wait(timeout=0)
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning("%s did not stop on SIGTERM within %.0f s: SIGKILL %s", name, timeout, pids)
    if pids:
        log.error("%s still alive after SIGKILL: %s", name, pids)


def _role(pid: int) -> int:
    """Stop order: jobs and their steps first, then slurmd, slurmctld, munged."""
    return {"slurmd": 1, "slurmctld": 2, "munged": 3}.get(_proc_comm(pid), 0)


def stop_marked(base: str | None = None) -> None:
    """Stop every process of the test cluster `base` (None: of any earlier test cluster), in order."""
    pids = _marked_processes(base)
    for role, name in enumerate(("job processes", "slurmd", "slurmctld", "munged")):
        group = [p for p in pids if _role(p) == role]
        if group:
            details = "; ".join(f"{p}: {_proc_cmdline(p)[:120]}" for p in group)
            log.info("leftover %s: %s", name, details)
        _kill_and_wait(group, name)


def _port_owners(port: int) -> list[str]:
    """'pid: cmdline' of the processes listening on TCP `port` (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in _read(Path(table)).decode().splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    if not inodes:
        return []
    owners = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    owners.append(f"{entry.name}: {_proc_cmdline(int(entry.name))[:160]}")
                    break
    return owners or ["(unknown process)"]


# --- slurm.conf -----------------------------------------------------------------------------------------


def _conf_base(path: Path) -> str | None:
    """The base directory named in a slurm.conf this module wrote (None: not ours, or absent)."""
    text = _read(path).decode(errors="replace")
    first = text.splitlines()[0] if text else ""
    return first[len(MARKER_LINE):].strip() if first.startswith(MARKER_LINE) else None


def restore_slurm_conf() -> None:
    """Put back the slurm.conf that was there before a test cluster (if the current one is ours)."""
    if _conf_base(SLURM_CONF) is None:
        return
    if SLURM_CONF_BACKUP.exists():
        log.info("restoring %s from %s", SLURM_CONF, SLURM_CONF_BACKUP)
        os.replace(SLURM_CONF_BACKUP, SLURM_CONF)
    else:
        log.info("removing %s (there was none before)", SLURM_CONF)
        SLURM_CONF.unlink()


def cleanup_leftovers() -> None:
    """Stop daemons and jobs of earlier test clusters and put /etc/slurm/slurm.conf back."""
    stop_marked(None)  # jobs, slurmd, slurmctld, munged of any earlier test cluster
    base = _conf_base(SLURM_CONF)
    if base:  # and by the pid files of the one that wrote /etc/slurm/slurm.conf (if its daemons lost the marker)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):  # stop order
            text = _read(Path(base) / pidfile).decode().strip()
            if text.isdigit() and base in _proc_cmdline(int(text)) + (_proc_env_marker(int(text)) or ""):
                _kill_and_wait([int(text)], f"leftover {Path(pidfile).stem}")
    restore_slurm_conf()


def mem_total_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf_text(base: Path, host: str, cpus: int, mem_mib: int, min_job_age: int = 3600) -> str:
    return f"""{MARKER_LINE}{base}
ClusterName=synthproxy-ci
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={PORTS[0]}
SlurmdPort={PORTS[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# schedule a submitted batch job within a second (default: batches of submissions every 3 s)
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
# finished jobs stay visible to squeue/scontrol (the plugin's squeue status checks, the tests' assertions)
MinJobAge={min_job_age}
KillWait=5
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mib} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


# --- the cluster ----------------------------------------------------------------------------------------


def _tail(path: Path, n: int = 40) -> str:
    lines = _read(path).decode(errors="replace").splitlines()
    return "\n".join(lines[-n:]) if lines else "(empty or missing)"


class SlurmCluster:
    """Start with `start()` (or `with`), stop with `stop()`; `stop()` is idempotent and also runs at exit."""

    def __init__(self, base: Path | str | None = None, start_timeout: float = 60.0, lock_timeout: float = 900.0
                 ) -> None:
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="synthproxy-slurm-"))
        self.base = self.base.resolve()
        self.start_timeout = start_timeout
        self.lock_timeout = lock_timeout
        self._lock = None
        self.host = socket.gethostname().split(".")[0]
        self.cpus = len(os.sched_getaffinity(0))
        self.mem_mib = mem_total_mib() - 1024
        self.conf = self.base / "slurm.conf"
        self.logdir = self.base / "log"
        self.procs: dict[str, subprocess.Popen] = {}
        self.started = False
        self._own_munged = False
        self._made_munge_run = False
        self._log_handler: logging.Handler | None = None
        self._old_handlers: dict[int, object] = {}
        self.timings: dict[str, float] = {}

    # environment for clients, daemons and jobs
    def env(self, **extra: str) -> dict[str, str]:
        """os.environ without SLURM_* (a real cluster's settings must not leak in), plus the cluster marker."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env[MARKER_ENV] = str(self.base)
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), *BIN_DIRS])
        env.update(extra)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)
        log.debug("$ %s -> %d\n%s%s", " ".join(cmd), proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def diagnostics(self) -> str:
        parts = [f"test cluster base: {self.base}"]
        for name in ("slurmctld.log", "slurmd.log", "munged.log", "slurmctld.out", "slurmd.out", "munged.out"):
            p = self.logdir / name
            if p.exists():
                parts.append(f"--- {p} (last lines) ---\n{_tail(p)}")
        return "\n".join(parts)

    # start / stop
    def start(self) -> SlurmCluster:
        reason = missing_requirements()
        if reason:
            raise ClusterUnavailable(reason)
        t0 = time.monotonic()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._log_handler = logging.FileHandler(self.logdir / "cluster.log")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_handler)
        log.setLevel(logging.DEBUG)
        log.info("starting a test SLURM cluster in %s (%s, %d CPUs, %d MiB)", self.base, self.host, self.cpus,
                 self.mem_mib)
        try:
            self._acquire_lock()  # from here on, every marked process is a leftover: its owner has died
            cleanup_leftovers()
            for port in PORTS:
                owners = _port_owners(port)
                if owners:
                    raise ClusterUnavailable(f"TCP port {port} is taken by a SLURM not started by this module "
                                             f"({'; '.join(owners)}); stop it first")
        except BaseException:
            self._release_lock()
            self._close_log()
            raise
        self._install_exit_handlers()
        self.started = True  # from here on stop() has something to undo
        try:
            self._write_conf()
            self._start_munged()
            self._start_daemon("slurmctld", ["-D", "-i", "-f", str(self.conf)])
            self._start_daemon("slurmd", ["-D", "-f", str(self.conf)])
            self._wait_idle()
        except BaseException:
            log.error("start failed:\n%s", self.diagnostics())
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - t0
        log.info("cluster up in %.1f s", self.timings["start"])
        return self

    def _acquire_lock(self) -> None:
        """One test cluster per machine: wait (up to lock_timeout) for another test run's cluster to stop."""
        self._lock = open(LOCK, "a+")  # noqa: SIM115 (held until stop)
        deadline, told = time.monotonic() + self.lock_timeout, False
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                self._lock.seek(0)
                holder = self._lock.read().strip() or "?"
                if time.monotonic() > deadline:
                    self._lock.close()
                    self._lock = None
                    raise ClusterUnavailable(f"another test cluster (pid {holder}) has been running for more than "
                                             f"{self.lock_timeout:.0f} s") from None
                if not told:
                    log.info("waiting for the test cluster of pid %s to stop", holder)
                    told = True
                time.sleep(1)
        self._lock.truncate(0)
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()

    def _release_lock(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.truncate(0)
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _write_conf(self) -> None:
        self.base.chmod(0o755)  # munged (user munge) writes its log and pid file below
        for sub in ("state", "spool"):
            (self.base / sub).mkdir(exist_ok=True)
        self.conf.write_text(slurm_conf_text(self.base, self.host, self.cpus, self.mem_mib))
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SLURM_CONF.exists() or SLURM_CONF.is_symlink():
            log.info("backing up %s to %s", SLURM_CONF, SLURM_CONF_BACKUP)
            os.replace(SLURM_CONF, SLURM_CONF_BACKUP)
        shutil.copyfile(self.conf, SLURM_CONF)
        log.info("wrote %s:\n%s", SLURM_CONF, self.conf.read_text())

    def _munge_works(self) -> bool:
        munge, unmunge = find_binary("munge"), find_binary("unmunge")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cred = subprocess.run([munge, "-n"], capture_output=True, timeout=5)
            if cred.returncode == 0:
                return subprocess.run([unmunge], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
        return False

    def _start_munged(self) -> None:
        if self._munge_works():
            log.info("a munged is already running and working: using it (and leaving it running)")
            return
        mdir = self.base / "munge"
        mdir.mkdir(exist_ok=True)
        shutil.chown(mdir, "munge", "munge")
        mdir.chmod(0o700)
        if not MUNGE_RUN.exists():
            MUNGE_RUN.mkdir(mode=0o755)
            self._made_munge_run = True
        shutil.chown(MUNGE_RUN, "munge", "munge")
        self._popen("munged", [find_binary("munged"), "-F", "--force", f"--pid-file={mdir}/munged.pid",
                               f"--log-file={mdir}/munged.log", f"--seed-file={mdir}/munged.seed"],
                    user="munge", group="munge")
        self._own_munged = True
        self._wait(self._munge_works, "munged to answer", 20, "munged")

    def _popen(self, name: str, cmd: list[str], **kw) -> None:
        out = open(self.logdir / f"{name}.out", "ab")  # noqa: SIM115 (the daemon keeps it)
        log.info("$ %s", " ".join(cmd))
        self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            env=self.env(), start_new_session=True, **kw)
        out.close()

    def _start_daemon(self, name: str, args: list[str]) -> None:
        self._popen(name, [find_binary(name), *args])
        if name == "slurmctld":
            self._wait(lambda: "UP" in self.run("scontrol", "ping", check=False).stdout,
                       "slurmctld to answer `scontrol ping`", self.start_timeout, name)

    def _wait(self, ready, what: str, timeout: float, daemon: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if daemon and self.procs.get(daemon) and self.procs[daemon].poll() is not None:
                raise RuntimeError(f"{daemon} exited with {self.procs[daemon].returncode} while waiting for {what}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _wait_idle(self) -> None:
        def idle() -> bool:
            states = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.split()
            if any(s.startswith(("drain", "down", "inval")) for s in states):
                log.warning("node state %s: %s", states,
                            self.run("scontrol", "show", "node", check=False).stdout)
            return "idle" in states

        self._wait(idle, "`sinfo` to show the node idle", self.start_timeout, "slurmd")

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still knows (MinJobAge keeps finished ones for an hour)."""
        fields = ["id", "state", "partition", "name", "comment", "reason"]
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T|%P|%j|%k|%r", check=False).stdout
        return [dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines() if line.strip()]

    def cancel_active(self, timeout: float = 20) -> list[str]:
        """scancel every job not finished yet (e.g. left by a Snakemake that was killed) and wait until they end."""
        active = [j["id"] for j in self.jobs() if j["state"] in ACTIVE_STATES]
        if active:
            log.info("cancelling jobs %s", active)
            self.run("scancel", *active, check=False, timeout=15)
            self._wait(lambda: not any(j["state"] in ACTIVE_STATES for j in self.jobs()), "cancelled jobs to end",
                       timeout)
        return active

    def stop(self) -> None:
        """Cancel jobs, stop slurmd, slurmctld, munged (ours only), restore /etc/slurm/slurm.conf. Idempotent."""
        if not self.started:
            return
        self.started = False
        t0 = time.monotonic()
        shielded = {}
        if threading_is_main():  # a second Ctrl-C / SIGTERM must not leave half-stopped daemons (stop takes ~1 s)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                shielded[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            ctld = self.procs.get("slurmctld")
            if ctld is not None and ctld.poll() is None:
                with contextlib.suppress(Exception):
                    self.cancel_active()
            # job processes and slurmstepd (they carry the marker), then the daemons in order
            stray = [p for p in _marked_processes(str(self.base)) if _role(p) == 0]
            _kill_and_wait(stray, "job processes", 5)
            by_pid = {p.pid: p for p in self.procs.values()}
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self.procs.get(name)
                if proc is not None:
                    _kill_and_wait([proc.pid], name, 10, by_pid)
            stop_marked(str(self.base))  # anything else of ours (daemonized children)
            if self._made_munge_run:
                with contextlib.suppress(OSError):
                    MUNGE_RUN.rmdir()  # only if munged left it empty
        finally:
            with contextlib.suppress(Exception):
                restore_slurm_conf()
            self._release_lock()
            for sig, handler in shielded.items():
                signal.signal(sig, handler)
            self._restore_exit_handlers()  # after the shield: puts back the handlers from before start()
            self.timings["stop"] = time.monotonic() - t0
            log.info("cluster stopped in %.1f s (logs: %s)", self.timings["stop"], self.logdir)
            self._close_log()

    def _close_log(self) -> None:
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # stop on SIGTERM / SIGHUP (as Ctrl-C: pytest tears fixtures down) and at exit
    def _install_exit_handlers(self) -> None:
        atexit.register(self.stop)
        if threading_is_main():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                old = signal.getsignal(sig)
                if old in (signal.SIG_DFL, None):
                    self._old_handlers[sig] = old
                    signal.signal(sig, _raise_keyboard_interrupt)

    def _restore_exit_handlers(self) -> None:
        atexit.unregister(self.stop)
        for sig, old in self._old_handlers.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, old or signal.SIG_DFL)
        self._old_handlers.clear()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


# --- command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.slurm_cluster", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start", help="start a cluster and leave it running")
    sub.add_parser("stop", help="stop every test cluster and restore /etc/slurm/slurm.conf")
    sub.add_parser("status", help="show the test cluster's processes and sinfo")
    r = sub.add_parser("run", help="start a cluster, run a command, stop the cluster")
    r.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="slurm_cluster: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.INFO)
    if args.cmd == "stop":
        with open(LOCK, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                print(f"slurm_cluster: a test cluster is in use by pid {lock.read().strip()}: not stopping it",
                      file=sys.stderr)
                return 1
            cleanup_leftovers()
        return 0
    if args.cmd == "status":
        pids = _marked_processes(None)
        print(f"/etc/slurm/slurm.conf written by a test cluster: {_conf_base(SLURM_CONF) or 'no'}")
        for p in pids:
            print(f"{p}: {_proc_cmdline(p)[:160]}")
        if pids:
            subprocess.run(["sinfo"], check=False)
        return 0
    cluster = SlurmCluster()
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        print(f"slurm_cluster: cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"slurm_cluster: up in {cluster.timings['start']:.1f} s; base {cluster.base}", file=sys.stderr)
    if args.cmd == "start":
        # leave it running; `stop` (or the next test run) finds and stops it through its marker
        cluster._restore_exit_handlers()
        cluster._release_lock()
        cluster.started = False
        print("slurm_cluster: stop it with: python -m tests.slurm_cluster stop", file=sys.stderr)
        return 0
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        return subprocess.run(cmd, env=cluster.env(), check=False).returncode if cmd else 0
    except KeyboardInterrupt:
        return 130
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
