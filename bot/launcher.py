"""Start the whole system: migrate, load demo data, train if needed, run every Procfile process.

`make run` calls this. Ctrl+C stops every process cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from core.settings import PROJECT_ROOT, ConfigError, Settings, load_settings

COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m"]
RESET = "\033[0m"

SANDBOX_PERSONAS = [
    {"key": "retailer", "label": "Demo retailer 终端门店 (R001)", "user_id": 1001,
     "first_name": "王老板", "language_code": "zh-hans", "customer_code": "R001"},
    {"key": "retailer_hk", "label": "Demo retailer 繁體 (R002)", "user_id": 1004,
     "first_name": "陳生", "language_code": "zh-hant", "customer_code": "R002"},
    {"key": "dealer", "label": "Demo dealer 经销商 (D001)", "user_id": 1002,
     "first_name": "Li Dealer", "language_code": "en", "customer_code": "D001"},
    {"key": "trainer", "label": "Demo trainer 培训师", "user_id": 1003,
     "first_name": "Trainer Zhao", "language_code": "zh-hans", "staff_name": "Trainer Zhao",
     "staff_role": "trainer"},
    {"key": "staff", "label": "Customer service 客服 (staff group)", "user_id": 1005,
     "first_name": "客服小李", "language_code": "zh-hans", "staff_name": "客服小李",
     "staff_role": "customer_service"},
]
# What to try first, per persona (printed with the sandbox URL).
SANDBOX_TRIES = [
    "retailer: 我的订单到哪了 · 红烧牛肉面有货吗 · 转人工",
    "dealer:   my groups · /points · /redeem · /courses · next lesson",
    "trainer:  /push product-basics dealers=D001 (then play the dealer) · /progress "
    "product-basics · /newcourse",
    "staff:    approve a redemption in the staff group · /announce all",
]


async def register_sandbox_chats(settings: Settings) -> None:
    """Tell the emulator about the staff group (with the staff persona and the bot in it) and
    about each persona's private chat — as if each had started the bot once, so a lesson a
    trainer pushes reaches the demo dealer before the dealer has written anything."""
    staff = next(p for p in SANDBOX_PERSONAS if p["key"] == "staff")
    body = {
        "id": settings.staff_chat_id, "type": "supergroup", "title": "客服组 Staff desk",
        "bot_status": "administrator",
        "members": [{"user": {"id": staff["user_id"], "first_name": staff["first_name"],
                              "is_bot": False}, "status": "administrator"}],
    }
    privates = [{"id": p["user_id"], "type": "private", "first_name": p["first_name"]}
                for p in SANDBOX_PERSONAS]
    async with aiohttp.ClientSession() as http:
        for chat in (body, *privates):
            async with http.post(f"{settings.sandbox.url}/_emulator/chats", json=chat) as resp:
                if resp.status >= 400:
                    raise RuntimeError(f"emulator refused chat {chat['id']}: "
                                       f"{await resp.text()}")
    from community.sandbox import register_demo_groups
    await register_demo_groups(settings)  # demo dealer groups (emulator + database)


def read_procfile(path: Path = PROJECT_ROOT / "Procfile") -> dict[str, str]:
    """Process name → command line, in file order."""
    procs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            procs[name.strip()] = command.strip()
    return procs


# Files the launcher and its children create are for this user only (secrets, database, logs).
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create (or tighten) a folder only its owner can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), also when it existed before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def secure_data_files(settings: Settings) -> None:
    """Data dir 0700; the SQLite database (with its WAL files) and logs 0600."""
    data = private_dir(settings.data_path)
    url = settings.resolved_database_url()
    prefix = "sqlite+aiosqlite:///"
    db_files: list[Path] = []
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        db = Path(url[len(prefix):])
        db_files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    logs = data / "logs"
    for path in [*db_files, *(logs.glob("*.log") if logs.is_dir() else [])]:
        if path.exists():
            os.chmod(path, 0o600)
    if logs.is_dir():
        private_dir(logs)


def process_env(settings: Settings, model: Path | None, base: dict[str, str] | None = None
                ) -> dict[str, str]:
    """The environment every process gets: settings as variables plus shared secrets.

    Secrets travel only through this environment and 0600 files, never on a command line.
    """
    from core.identity import load_or_create_pepper

    env = dict(os.environ if base is None else base)
    data = settings.data_path
    secure_data_files(settings)
    rasa_dir = private_dir(data / "rasa")
    # Hex, so a secret never starts with "-" (argparse would take it for an option).
    env.setdefault("ACTION_SERVER_TOKEN", secrets.token_hex(24))
    # The gateway signs who is asking; the action server checks it (core/identity.py).
    env.setdefault("IDENTITY_SIGNING_KEY", secrets.token_hex(32))
    # Link codes outlive a run, so their pepper is kept in a 0600 file unless given.
    if not env.get("LINK_CODE_PEPPER"):
        env["LINK_CODE_PEPPER"] = load_or_create_pepper(data)
    endpoints = rasa_dir / "endpoints.yml"
    write_private(
        endpoints,
        "# Written by the launcher at each start; edit config.yml instead.\n"
        "action_endpoint:\n"
        f"  url: {json.dumps(settings.actions.url)}\n"
        f"  token: {json.dumps(env['ACTION_SERVER_TOKEN'])}\n"
        + rasa_stores(settings, env),
    )
    credentials = rasa_dir / "credentials.yml"
    write_private(credentials, "rest: {}\n")
    personas = data / "sandbox-personas.json"
    write_private(personas, json.dumps(SANDBOX_PERSONAS, ensure_ascii=False))
    env.update({
        "SANDBOX_HOST": settings.sandbox.host,
        "SANDBOX_PORT": str(settings.sandbox.port),
        "SANDBOX_PERSONAS": str(personas),
        "RASA_HOST": settings.rasa.host,
        "RASA_PORT": str(settings.rasa.port),
        "RASA_MODEL": str(model or ""),
        "RASA_ENDPOINTS": str(endpoints),
        "RASA_CREDENTIALS": str(credentials),
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::UserWarning",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def rasa_stores(settings: Settings, env: dict[str, str]) -> str:
    """endpoints.yml entries for Rasa's SQL tracker store (conversations survive a restart)
    and, when rasa.redis_url is set, its Redis lock store. Passwords go into `env` and are
    referenced as ${VAR} (Rasa substitutes environment variables in endpoints.yml).

    SQLite: a separate file, var/rasa/tracker.db (Rasa runs its own SQLAlchemy 1.4).
    PostgreSQL: the app's server, a separate database `<app db>_rasa` that Rasa creates on
    first start (it logs in to the app's database to do so).
    """
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        tracker_db = settings.data_path / "rasa" / "tracker.db"
        out = ("tracker_store:\n  type: SQL\n  dialect: sqlite\n"
               f"  db: {json.dumps(str(tracker_db))}\n")
    else:
        env["RASA_TRACKER_DB_PASSWORD"] = url.password or ""
        out = ("tracker_store:\n  type: SQL\n  dialect: postgresql\n"
               f"  url: {json.dumps(url.host or '127.0.0.1')}\n  port: {url.port or 5432}\n"
               f"  username: {json.dumps(url.username or 'postgres')}\n"
               + ("  password: ${RASA_TRACKER_DB_PASSWORD}\n" if url.password else "")
               + f"  db: {json.dumps((url.database or 'postgres') + '_rasa')}\n"
               f"  login_db: {json.dumps(url.database or 'postgres')}\n")
    if settings.rasa.redis_url:
        redis = make_url(settings.rasa.redis_url)
        env["RASA_REDIS_PASSWORD"] = redis.password or ""
        db = (redis.database or "0").lstrip("/") or "0"
        out += ("lock_store:\n  type: redis\n"
                f"  url: {json.dumps(redis.host or '127.0.0.1')}\n  port: {redis.port or 6379}\n"
                f"  db: {int(db)}\n"
                + ("  password: ${RASA_REDIS_PASSWORD}\n" if redis.password else "")
                + f"  use_ssl: {'true' if redis.drivername == 'rediss' else 'false'}\n"
                "  key_prefix: dealer_desk\n")
    return out


@dataclass
class Proc:
    """One running child process and how to tell it is ready."""

    name: str
    command: str
    ready_url: str | None = None
    ready_line: str | None = None
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    output_task: asyncio.Task | None = None
    log_path: Path | None = None
    echo: bool = True  # False: output only in the log file (Rasa's warnings would fill a screen)


class Stack:
    """Starts processes in order, waits for each to be ready, stops them all together."""

    def __init__(self, env: dict[str, str], echo: bool = True, log_dir: Path | None = None
                 ) -> None:
        self.env = env
        self.echo = echo
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    async def start(self, proc: Proc, timeout: float = 300) -> float:
        """Start one process and wait until it is ready; returns seconds taken."""
        t0 = time.monotonic()
        if self.log_dir:
            private_dir(self.log_dir)
            proc.log_path = self.log_dir / f"{proc.name}.log"
        proc.process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", proc.command, cwd=PROJECT_ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so Ctrl+C reaches it through us
            preexec_fn=_die_with_parent,
            umask=PRIVATE_UMASK,  # whatever a child creates (database, WAL, files) is 0600
        )
        self.procs.append(proc)
        proc.output_task = asyncio.create_task(self._pump(proc, len(self.procs) - 1))
        deadline = t0 + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if proc.process.returncode is not None:
                    raise RuntimeError(
                        f"{proc.name} exited with code {proc.process.returncode} while starting"
                        + (f"; see {proc.log_path}" if proc.log_path else "")
                    )
                if proc.ready_url:
                    try:
                        async with http.get(proc.ready_url) as resp:
                            if resp.status < 500:
                                proc.ready.set()
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                if proc.ready.is_set():
                    return time.monotonic() - t0
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{proc.name} was not ready after {timeout:.0f} s"
                           + (f"; see {proc.log_path}" if proc.log_path else ""))

    async def _pump(self, proc: Proc, index: int) -> None:
        assert proc.process and proc.process.stdout
        color = COLORS[index % len(COLORS)] if sys.stdout.isatty() else ""
        reset = RESET if color else ""
        log_file = None
        if proc.log_path:
            fd = os.open(proc.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            log_file = os.fdopen(fd, "a", encoding="utf-8")
        try:
            async for raw in proc.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                if proc.ready_line and proc.ready_line in line:
                    proc.ready.set()
                if log_file:
                    log_file.write(line + "\n")
                    log_file.flush()
                if self.echo and proc.echo:
                    print(f"{color}{proc.name:>9} |{reset} {line}", flush=True)
        finally:
            if log_file:
                log_file.close()

    def exited(self) -> list[Proc]:
        """Processes that have stopped on their own."""
        return [p for p in self.procs if p.process and p.process.returncode is not None]

    async def wait_any_exit(self) -> Proc:
        """Wait until one of the processes exits."""
        waits = {asyncio.create_task(p.process.wait()): p for p in self.procs if p.process}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        return waits[next(iter(done))]

    async def stop(self, grace: float = 10) -> None:
        """Stop in reverse start order, one at a time: SIGTERM, then SIGKILL after `grace`.

        The gateway stops before the emulator it polls, Rasa before the action server it calls,
        so nothing logs a traceback about a peer that went away first.
        """
        for proc in reversed(self.procs):
            if proc.process is None:
                continue
            if proc.process.returncode is None:
                _signal_group(proc.process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.process.wait(), grace)
                except TimeoutError:
                    _signal_group(proc.process.pid, signal.SIGKILL)
                    await proc.process.wait()
            # Whatever the process left in its group (e.g. Rasa's helpers) goes too.
            _signal_group(proc.process.pid, signal.SIGKILL)
            if proc.output_task:
                await asyncio.gather(proc.output_task, return_exceptions=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the launcher dies (closed terminal, kill -9).

    Each child has its own session (so Ctrl+C is handled once, by the launcher), which also
    means nothing would stop it if the launcher vanished; Linux's parent-death signal does.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the launcher's own signal handlers still stop the children
        pass


def standard_procs(settings: Settings) -> list[Proc]:
    """The Procfile's processes with their readiness checks, in start order."""
    commands = read_procfile()
    procs = []
    if settings.sandbox_mode:
        procs.append(Proc("emulator", commands["emulator"],
                          ready_url=f"{settings.sandbox.url}/"))
    procs.append(Proc("actions", commands["actions"],
                      ready_url=f"http://{settings.actions.host}:{settings.actions.port}/health"))
    procs.append(Proc("rasa", commands["rasa"], ready_url=f"{settings.rasa.url}/", echo=False))
    procs.append(Proc("gateway", commands["gateway"], ready_line="gateway ready"))
    procs.append(Proc("worker", commands["worker"], ready_line="delivery worker ready"))
    procs.append(Proc("scheduler", commands["scheduler"], ready_line="scheduler ready"))
    return procs


async def prepare(settings: Settings, demo: bool) -> Path:
    """Migrate the database, load demo data, and make sure a trained model exists."""
    from core.cli import cmd_migrate, cmd_seed_demo
    from nlu.train import ensure_model

    await cmd_migrate(settings, argparse.Namespace())
    if demo:
        await cmd_seed_demo(settings, argparse.Namespace())
        if settings.sandbox_mode:
            await link_sandbox_personas(settings)
    return await asyncio.to_thread(ensure_model)


async def link_sandbox_personas(settings: Settings) -> None:
    """Link the sandbox personas to demo accounts, so the chat page works at once."""
    from core.db import Database
    from core.i18n import locale_from_language_code
    from core.services.accounts import link_identity_directly

    db = Database(settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            for p in SANDBOX_PERSONAS:
                await link_identity_directly(
                    s, int(p["user_id"]), str(p["first_name"]),
                    customer_code=p.get("customer_code"), staff_name=p.get("staff_name"),
                    staff_role=str(p.get("staff_role") or "trainer"),
                    locale=locale_from_language_code(str(p.get("language_code") or "")),
                )
    finally:
        await db.dispose()


async def main_async(args: argparse.Namespace) -> int:
    """Prepare, start everything, wait for Ctrl+C or a crash, stop everything."""
    t0 = time.monotonic()
    os.umask(PRIVATE_UMASK)  # the database, logs and generated files: owner only
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    demo = settings.sandbox_mode if args.demo is None else args.demo
    model = await prepare(settings, demo)
    env = process_env(settings, model)
    stack = Stack(env, log_dir=settings.data_path / "logs")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: terminal closed
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        for proc in standard_procs(settings):
            starting = asyncio.create_task(stack.start(proc))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                starting.cancel()
                return 130
            stopping.cancel()
            where = f" (output in {proc.log_path})" if not proc.echo and proc.log_path else ""
            print(f"  {proc.name} ready in {starting.result():.1f} s{where}", flush=True)
            if proc.name == "emulator":
                await register_sandbox_chats(settings)
        elapsed = time.monotonic() - t0
        print("\n" + "=" * 70)
        print(f"ready in {elapsed:.1f} s")
        if settings.sandbox_mode:
            print(f"SANDBOX MODE (no TELEGRAM_BOT_TOKEN): open {settings.sandbox.url}/ "
                  "to chat with the bot as a demo persona")
            for line in SANDBOX_TRIES:
                print(f"  {line}")
        else:
            print("connected to Telegram; talk to your bot there")
        print("Ctrl+C stops everything")
        print("=" * 70 + "\n", flush=True)
        crashed = asyncio.create_task(stack.wait_any_exit())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({crashed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if crashed.done() and not stop.is_set():
            proc = crashed.result()
            print(f"{proc.name} stopped unexpectedly (exit {proc.process.returncode}); "
                  f"stopping the rest. Log: {proc.log_path}", file=sys.stderr)
            code = 1
    except RuntimeError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("stopping …", flush=True)
        await stack.stop()
        print("all processes stopped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make run`."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.launcher",
        description="Run the whole system: migrate the database, load demo data, train the Rasa "
                    "model if its inputs changed, then start the processes of the Procfile. "
                    "Without TELEGRAM_BOT_TOKEN it runs in sandbox mode with a local chat page.",
    )
    demo = parser.add_mutually_exclusive_group()
    demo.add_argument("--demo", dest="demo", action="store_true", default=None,
                      help="load the bundled demo data (default in sandbox mode)")
    demo.add_argument("--no-demo", dest="demo", action="store_false",
                      help="do not load demo data (default with a real token)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
