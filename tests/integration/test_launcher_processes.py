"""The launcher stops processes in reverse start order, and none outlives the launcher."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from bot.launcher import Proc, Stack

# A child that prints "ready", and on SIGTERM records when it stopped and whether its peers
# (started before it) were still running at that moment.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    name, out = sys.argv[1], sys.argv[2]
    def stop(*_):
        with open(out, "a") as fh:
            fh.write(f"{name} {time.monotonic()}\\n")
        time.sleep(0.3)  # a shutdown that takes a moment, like the gateway's
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
""")


async def test_stop_goes_in_reverse_start_order(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "stops.txt"
    stack = Stack(dict(os.environ), echo=False)
    for name in ("emulator", "actions", "gateway"):
        await stack.start(Proc(name, f"{sys.executable} {script} {name} {out}",
                               ready_line="ready"), timeout=20)
    await stack.stop(grace=5)
    stops = [line.split() for line in out.read_text().splitlines()]
    assert [name for name, _ in stops] == ["gateway", "actions", "emulator"]
    times = [float(t) for _, t in stops]
    # Each one is asked to stop only after the one started after it has finished stopping.
    assert times[1] - times[0] >= 0.25 and times[2] - times[1] >= 0.25


LAUNCHER = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, sys.argv[1])
    from bot.launcher import Proc, Stack

    async def run():
        stack = Stack(dict(os.environ), echo=False)
        proc = Proc("sleeper", "exec sleep 300")
        task = asyncio.create_task(stack.start(proc, timeout=3600))
        while proc.process is None:
            await asyncio.sleep(0.05)
        print(proc.process.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(run())
""")


def test_children_do_not_outlive_a_killed_launcher(tmp_path: Path) -> None:
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    project = str(Path(__file__).resolve().parents[2])
    launcher = subprocess.Popen([sys.executable, str(script), project], stdout=subprocess.PIPE,
                                text=True)
    try:
        child_pid = int(launcher.stdout.readline())  # type: ignore[union-attr]
        child = psutil.Process(child_pid)
        assert child.is_running()
        launcher.send_signal(signal.SIGKILL)  # the terminal closed, or kill -9
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.is_running() \
                and child.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if launcher.poll() is None:
            launcher.kill()
        try:
            os.kill(child_pid, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError):
            pass


async def test_sigterm_reaches_what_a_process_left_in_its_group(tmp_path: Path) -> None:
    stack = Stack(dict(os.environ), echo=False)
    proc = Proc("parent", "sleep 300 & echo ready; wait", ready_line="ready")
    await stack.start(proc, timeout=10)
    assert proc.process is not None
    group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.process.pid]
    assert len(group) >= 2  # the shell and its background sleep
    await stack.stop(grace=2)
    await asyncio.sleep(0.2)
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in group)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
