"""ContainerRuntime: attempts with an image run as `podman run` (runc) under freight's own shim.

    shim ──vfork──▶ wrapper (sh), joins the slot's cgroups as any job does
                      │ reads its slot from /proc/self/cgroup, then moves itself to <parent>/ctl-<slot>
                      └─▶ podman run --cgroups=no-conmon --cgroup-parent=<slot> ... IMAGE ARGV
                             conmon stays beside podman in ctl-<slot>; runc creates the container's
                             cgroups as <slot>/libpod-<id>, and freight's createRuntime hook moves the
                             container's init from there into the slot itself, in freight's hierarchies

So the slot holds the container's processes and nothing else, exactly as it holds a process job's:
its limits, OOM-kill counter (v1 counts a kill in the victim's own cgroup only), peak, CPU time and
kill-everything work unchanged, and podman and conmon (a Go binary's tens of MiB) are not charged to
the job. Other hierarchies (devices, freezer, ...) keep podman's per-container cgroup. The shim
waits for the wrapper, which waits for podman, which exits with the container's status once it has
removed the container (`run --rm`: no second podman start); the wrapper exits with that status. The
shim records the exit as for any job, so a scheduler restart re-attaches to a container attempt
exactly as to a process one.

Attempts without an image go to the wrapped ShimRuntime untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from freight.errors import TerminalError
from freight.runtime.base import AttemptRequest, Container, Handle, Outcome, Recovered
from freight.runtime.cgroupfs import read_pids
from freight.runtime.cgroups import CgroupDriver
from freight.runtime.launcher import Launcher
from freight.runtime.process import ShimRuntime
from freight.runtime.slots import SlotPool

#: what podman itself needs to find conmon and runc, when the job's environment has no PATH
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: files the wrapper leaves in the attempt's record directory
REMOVED_FILE = "container-removed"
#: nofile and nproc are set explicitly: podman's defaults (1048576) exceed what a non-login root may set
NOFILE = 1024
NETWORKS = ("none", "host", "bridge")
_CGROUP_PARENT = "--cgroup-parent=@"
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./:-]*$")

# podman runs this with the container's state (JSON) on stdin, after runc made its cgroups and before
# the command starts; the arguments are freight's hierarchies (<root>/<cgroup parent>). A failure here
# fails the container's start: a container outside its slot would run without freight's accounting.
_HOOK = r"""#!/bin/sh
state=$(cat)
pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
[ -n "$pid" ] || exit 0
path=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*:\(.*\)$/\1/p;s/^0::\(.*\)$/\1/p' "/proc/$pid/cgroup" | head -n 1)
slot=${path%/*}
slot=${slot##*/}
case "$slot" in slot-*) ;; *) exit 0 ;; esac
for h; do
  if [ -d "$h/$slot" ]; then
    echo "$pid" > "$h/$slot/cgroup.procs" || exit 1
  fi
done
exit 0
"""

# $1 record dir, $2 container name, $3 podman, $4 number of hierarchies, then the hierarchies, then
# podman's arguments (one of them is --cgroup-parent=@, filled in with the slot found here).
_WRAPPER = r"""
rec=$1 name=$2 podman=$3 n=$4; shift 4
hs=
while [ "$n" -gt 0 ]; do hs="$hs $1"; shift; n=$((n - 1)); done
slot=
while IFS=: read -r _ ctl path; do
  case ",$ctl," in *,memory,*) slot=$path ;; ,,) [ -n "$slot" ] || slot=$path ;; esac
done < /proc/self/cgroup
[ -n "$slot" ] || { echo "freight: cannot find the job's cgroup" >&2; exit 125; }
for h in $hs; do
  mkdir -p "$h/ctl-${slot##*/}" 2>/dev/null
  echo $$ > "$h/ctl-${slot##*/}/cgroup.procs" ||
    { echo "freight: cannot leave the job's cgroup" >&2; exit 125; }
done
[ -e "$rec/kill" ] && exit 137
for a; do shift; [ "$a" = "--cgroup-parent=@" ] && a="--cgroup-parent=$slot"; set -- "$@" "$a"; done
# conmon leaves files (an empty `oom` when the container was OOM-killed) in its working directory:
# run podman from the attempt's own folder, never from the folder the user submitted from
cd "$rec" || exit 125
"$podman" "$@"
rc=$?
# run --rm removed it (in the same podman: no second Go start); 125 is podman's own failure, which
# may leave it behind
if [ "$rc" -ne 125 ] || "$podman" rm --force --ignore "$name" > /dev/null 2>&1; then
  : > "$rec/container-removed"
fi
exit "$rc"
"""

log = logging.getLogger("freight.runtime")


def container_name(attempt_id: str) -> str:
    return "freight-" + re.sub(r"[^A-Za-z0-9_.-]", "-", attempt_id)


def podman_base(podman: str = "podman") -> list[str]:
    """podman with the runtime and cgroup manager freight needs (crun fails on hybrid v1 layouts)."""
    return [podman, "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def podman_run_args(request: AttemptRequest, container: Container, hooks_dir: Path) -> list[str]:
    """podman's arguments (after the executable) for one attempt; env values travel in podman's own
    environment (`--env NAME` copies it), never on a command line that `ps` shows."""
    limits = request.limits
    args = [
        *podman_base("")[1:],
        "--hooks-dir",
        str(hooks_dir),
        "run",
        "--rm",
        "--quiet",  # a pull's progress is podman's, not the job's output (errors still reach the log)
        "--name",
        container_name(request.attempt_id),
        "--cgroups=no-conmon",
        _CGROUP_PARENT,
        "--log-driver",
        "none",
        "--network",
        container.network,
        "--ulimit",
        f"nofile={NOFILE}:{NOFILE}",
        "--ulimit",
        f"nproc={max(limits.pids, 1)}:{max(limits.pids, 1)}",
        "--oom-score-adj",
        "1000",
    ]
    if limits.memory > 0:
        args += ["--memory", str(limits.memory), "--memory-swap", str(limits.memory)]
    if limits.cpus > 0:
        args += ["--cpus", f"{limits.cpus:g}"]
    if limits.pids > 0:
        args += ["--pids-limit", str(limits.pids)]
    for mount in container.mounts:
        args += ["--volume", f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
    if request.cwd:
        args += ["--workdir", request.cwd]
    for name in request.env:
        args += ["--env", name]
    host = container.image.split("/", 1)[0]
    if "/" in container.image and host.split(":")[0] in ("127.0.0.1", "localhost"):
        args.append("--tls-verify=false")  # the local registry speaks plain HTTP on loopback
    from freight.runtime.registry_auth import auth_file  # cryptography: loaded for image jobs only

    logins = auth_file()
    if logins.is_file():  # the registry logins (`podman login`), whatever the job's environment says
        args += ["--authfile", str(logins)]
    return [*args, container.image, *request.argv]


class ContainerRuntime:
    """The `Runtime` for machines where jobs may carry an image; delegates everything else."""

    def __init__(self, inner: ShimRuntime, home: Path, *, podman: str | None = None) -> None:
        self.inner = inner
        self.podman = podman or shutil.which("podman") or "podman"
        self.description = inner.description
        self.home = home
        #: freight's OCI hook (see _HOOK), written on the first container start
        self.hooks_dir = home / "containers" / "hooks"
        self._hook_ready = False

    @property
    def launcher(self) -> Launcher | None:
        """The wrapped runtime's launcher (benchmarks and tests hold it up or time it)."""
        return self.inner.launcher

    # -- start ------------------------------------------------------------------------------------

    def podman_found(self) -> bool:
        return shutil.which(self.podman) is not None

    def start(self, request: AttemptRequest) -> Handle:
        if request.container is None:
            return self.inner.start(request)
        if not self.podman_found():
            raise TerminalError(
                f"podman is not installed on node {socket.gethostname()} ({self.podman} not found): "
                "install podman and runc there (scripts/system-deps.sh) to run jobs with an image"
            )
        pool = self._pool()
        hierarchies = [str(path) for path in pool.driver.hierarchies]
        if not all(_SAFE_PATH.match(path) for path in hierarchies):
            raise TerminalError(f"container jobs need plain cgroup paths, not {hierarchies}")
        for mount in request.container.mounts:
            if not Path(mount.source).exists():
                raise TerminalError(f"mount source {mount.source} does not exist on this node")
        name = container_name(request.attempt_id)
        if not self._hook_ready:
            self._write_hook(hierarchies)
        argv = [
            "/bin/sh",
            "-c",
            _WRAPPER,
            "freight-container",
            f"{self.inner.run_dir}/{request.attempt_id}",
            name,
            self.podman,
            str(len(hierarchies)),
            *hierarchies,
            *podman_run_args(request, request.container, self.hooks_dir),
        ]
        env = dict(request.env)
        env.setdefault("PATH", HOST_PATH)
        # the slot holds the container only; limits stay exactly the job's. podman needs root on the
        # host: the job runs as its image's user inside the container, not as the host's job user
        # (docs/reliability.md: a --userns mapping to the job user is still to come)
        handle = self.inner.start(replace(request, argv=argv, env=env, container=None, user=None))
        return replace(handle, extra={**handle.extra, "container": name})

    def _write_hook(self, hierarchies: list[str]) -> None:
        # one hook configuration per set of hierarchies: several runtimes on one host with one
        # FREIGHT_HOME (a test cluster's node agents) each move their containers into their own slots
        tag = hashlib.sha256("\n".join(hierarchies).encode()).hexdigest()[:12]
        self.hooks_dir = self.home / "containers" / f"hooks-{tag}"
        script = self.home / "containers" / "freight-container-hook"
        config = {
            "version": "1.0.0",
            "hook": {"path": str(script), "args": ["freight-container-hook", *hierarchies]},
            "when": {"always": True},
            "stages": ["createRuntime"],
        }
        self.hooks_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(script, _HOOK, 0o755)
        _write_atomic(self.hooks_dir / "freight.json", json.dumps(config), 0o644)
        self._hook_ready = True

    def _pool(self) -> SlotPool:
        isolation = self.inner.isolation
        if not isinstance(isolation, SlotPool):
            raise TerminalError("container jobs need cgroup isolation on this node (it runs with rlimits)")
        return isolation

    # -- outcome ----------------------------------------------------------------------------------

    def _container_outcome(self, handle: Handle, outcome: Outcome | None) -> Outcome | None:
        if outcome is None or "container" not in handle.extra:
            return outcome
        if outcome.exit_code == 125 and outcome.error is None:
            return replace(outcome, error="podman could not run the container (see the job's log)")
        return outcome

    def poll(self, handle: Handle) -> Outcome | None:
        return self._container_outcome(handle, self.inner.poll(handle))

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        return self._container_outcome(handle, self.inner.wait(handle, timeout))

    def recover(self, handle: Handle) -> Outcome | Recovered:
        result = self.inner.recover(handle)
        if isinstance(result, Outcome):
            outcome = self._container_outcome(handle, result)
            assert outcome is not None
            return outcome
        return result

    def fileno(self, handle: Handle) -> int | None:
        return self.inner.fileno(handle)

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        return self.inner.usage(handle)

    # -- stopping ---------------------------------------------------------------------------------

    def _subtree_procs(self, handle: Handle) -> list[str]:
        """cgroup.procs of the container's cgroups: every cgroup below the attempt's slot."""
        if handle.slot is None:
            return []
        found = []
        for hierarchy in self._pool().driver.hierarchies:
            slot = hierarchy / handle.slot
            with contextlib.suppress(OSError):
                for child in slot.iterdir():
                    if child.is_dir():
                        found += [str(p) for p in child.rglob("cgroup.procs")]
        return found

    def _ctl_procs(self, handle: Handle) -> list[str]:
        if handle.slot is None:
            return []
        return [str(h / f"ctl-{handle.slot}" / "cgroup.procs") for h in self._pool().driver.hierarchies]

    def _signal_tree(self, procs: list[str], signum: int) -> int:
        sent = 0
        for path in procs:
            for pid in read_pids(path):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
                    sent += 1
        return sent

    def signal(self, handle: Handle, signum: int) -> None:
        self.inner.signal(handle, signum)
        if "container" in handle.extra:
            self._signal_tree(self._subtree_procs(handle), signum)

    def terminate(self, handle: Handle) -> None:
        self.inner.terminate(handle)
        if "container" in handle.extra:
            self._signal_tree(self._subtree_procs(handle), signal.SIGTERM)

    def kill(self, handle: Handle) -> None:
        """SIGKILL the container's processes, then podman and the wrapper (the shim records signal 9)."""
        self.inner.kill(handle)
        if "container" not in handle.extra:
            return
        self._kill_until_empty(self._subtree_procs(handle))
        self._kill_until_empty(self._ctl_procs(handle))

    def _kill_until_empty(self, procs: list[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while self._signal_tree(procs, signal.SIGKILL) and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def release(self, handle: Handle) -> None:
        if "container" in handle.extra:
            self._kill_until_empty(self._subtree_procs(handle))
            self._kill_until_empty(self._ctl_procs(handle))
            if not Path(handle.record_dir, REMOVED_FILE).exists():
                self._remove_container(str(handle.extra["container"]))
        self.inner.release(handle)

    def _remove_container(self, name: str, tries: int = 20) -> None:
        """Remove the container, asking again while it is still there: a wrapper killed in the
        middle of the removal (`run --rm`, or `podman rm` after podman's own failure) can leave
        podman's lock held or the removal half done for a moment, and a single `rm` then fails
        quietly (seen in the kill test)."""
        podman = podman_base(self.podman)
        for attempt in range(tries):
            _quiet([*podman, "rm", "--force", "--ignore", name])
            if _quiet([*podman, "container", "exists", name]) != 0:
                return
            time.sleep(min(0.05 * 2**attempt, 1.0))
        log.warning("container %s could not be removed; remove it with `podman rm -f %s`", name, name)

    # -- the rest ---------------------------------------------------------------------------------

    def prewarm(self, count: int) -> None:
        self.inner.prewarm(count)

    def close(self) -> None:
        self.inner.close()

    def destroy(self) -> None:
        """Kill everything, remove what containers left in the cgroup trees, then the slots (tests)."""
        isolation = self.inner.isolation
        if isinstance(isolation, SlotPool):
            for slot in isolation.driver.slot_names():
                for hierarchy in isolation.driver.hierarchies:
                    procs = str(hierarchy / slot / "cgroup.procs")
                    self._kill_until_empty([procs, *_below(hierarchy / slot)])
                    self._kill_until_empty([str(hierarchy / f"ctl-{slot}" / "cgroup.procs")])
        self.remove_leftovers()
        self.inner.destroy()

    def remove_leftovers(self) -> None:
        """Remove the empty cgroups container attempts leave (see remove_container_cgroups)."""
        isolation = self.inner.isolation
        if isinstance(isolation, SlotPool):
            remove_container_cgroups(isolation.driver)


def remove_container_cgroups(driver: CgroupDriver) -> None:
    """Remove the empty cgroups container attempts leave: ctl-<slot> beside the slots, podman's
    per-container cgroups below them, and the slot paths podman made in the hierarchies freight
    does not use (blkio, devices, freezer, ...). Busy ones stay."""
    ours = driver.hierarchies
    for hierarchy in ours:
        _remove_tree_children(hierarchy, lambda name: name.startswith("ctl-"), remove_parent=False)
        for slot in driver.slot_names():
            _remove_tree_children(hierarchy / slot, lambda name: True, remove_parent=False)
    root = Path("/sys/fs/cgroup")
    for hierarchy in ours:
        if hierarchy.is_relative_to(root) and len(hierarchy.relative_to(root).parts) > 1:
            relative = Path(*hierarchy.relative_to(root).parts[1:])
            break
    else:
        return
    with contextlib.suppress(OSError):
        for mount in root.iterdir():
            parent = mount / relative
            if parent not in ours and parent.is_dir():
                _remove_tree_children(parent, lambda name: True, remove_parent=True)


def _below(slot: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return [str(p) for child in slot.iterdir() if child.is_dir() for p in child.rglob("cgroup.procs")]
    return []


def _remove_tree_children(parent: Path, chosen: Callable[[str], bool], *, remove_parent: bool) -> None:
    """rmdir (deepest first) the cgroup directories below `parent` whose top-level name is chosen;
    `parent` itself goes too (once empty) with remove_parent. Busy ones stay."""
    with contextlib.suppress(OSError):
        for child in list(parent.iterdir()):
            if not child.is_dir() or not chosen(child.name):
                continue
            for sub in sorted((p for p in child.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                child.rmdir()
    if remove_parent:
        with contextlib.suppress(OSError):
            parent.rmdir()


def _write_atomic(path: Path, text: str, mode: int) -> None:
    if path.exists() and path.read_text() == text:
        return
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(text)
    temp.chmod(mode)
    temp.replace(path)


def _quiet(argv: list[str]) -> int:
    """Run a podman command with no input or output; its exit code."""
    null = subprocess.DEVNULL
    return subprocess.run(argv, stdin=null, stdout=null, stderr=null, check=False).returncode
