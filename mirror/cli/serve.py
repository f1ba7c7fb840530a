"""`crate-mirror serve`: run the mirror."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from typing import Any

from mirror.cli.args import path_arg
from mirror.config import Settings, load_settings
from mirror.errors import ConfigError, MirrorError, StartupError, StorageError
from mirror.listeners import Listeners


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the mirror (sparse index + downloads) for cargo",
        description="Serve cargo's sparse protocol, verifying, caching and enforcing policy. "
        "Settings come from --config (YAML), then CRATE_MIRROR_* environment variables, "
        "then these flags.",
    )
    add_settings_arguments(p)
    p.add_argument("--policy", type=path_arg, help="policy YAML file (see policies/default.yaml)")
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never contact upstream; serve only what the cache holds",
    )
    p.add_argument("--host", dest="listen_host", help="address to listen on")
    p.add_argument("--port", dest="listen_port", type=int, help="port to listen on")
    p.add_argument(
        "--public-url",
        dest="public_url",
        help="URL cargo uses to reach this mirror (default http://HOST:PORT)",
    )
    p.add_argument("--upstream", dest="upstream_index", help="upstream sparse index URL")
    p.add_argument("--workers", type=int, help="server processes sharing the port and cache")
    p.set_defaults(func=run)


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=path_arg, help="settings YAML (see mirror.example.yaml)")
    p.add_argument(
        "--cache-dir",
        dest="cache_dir",
        type=path_arg,
        help="cache directory (default ./mirror-data)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from --config, the environment and any settings flags present on `args`."""
    names = (
        "listen_host",
        "listen_port",
        "public_url",
        "upstream_index",
        "workers",
        "cache_dir",
        "policy",
        "offline",
    )
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return load_settings(getattr(args, "config", None), overrides=overrides)


def run(args: argparse.Namespace) -> int:
    from mirror.app import run as run_server
    from mirror.logs import configure_logging
    from mirror.serving.alerts import AlertSettings
    from mirror.sources.policy_files import PolicyFiles
    from mirror.trust.settings import TufSettings

    try:
        settings = settings_from_args(args)
        configure_logging(settings.log_format, settings.log_level)
        if settings.policy is not None:
            PolicyFiles(settings.policy).validate()  # refuse to start on an invalid policy
        if settings.tuf:
            config = str(getattr(args, "config", "settings"))
            TufSettings.from_mapping(settings.tuf, config, offline=settings.offline)
        if settings.alerts:
            AlertSettings.from_mapping(settings.alerts, str(getattr(args, "config", "settings")))
    except ConfigError as e:
        print(f"crate-mirror: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    try:
        # Before the "serving on" line and anything slow: a taken port is said at once.
        listeners = Listeners.bind(
            settings.listen_host,
            settings.listen_port,
            count=settings.workers,
            backlog=settings.listen_backlog,
        )
    except StartupError as e:
        print(f"crate-mirror: {e}", file=sys.stderr)
        return 1

    def announce() -> None:
        print(
            f"crate-mirror serving on {settings.base_url}/index/ "
            f"({'offline' if settings.offline else 'upstream ' + settings.upstream_index}, "
            f"cache {settings.cache_dir}, {settings.workers} worker(s))",
            file=sys.stderr,
            flush=True,
        )

    if settings.workers == 1:
        try:
            run_server(settings, listeners.claim(0), ready=announce)  # said once it is true
        except MirrorError as e:
            return _cannot_start(e)
        return 0
    try:
        _directories(settings)  # the supervisor writes the audit log: before any worker
    except StorageError as e:
        listeners.release()
        return _cannot_start(e)
    announce()
    return _supervise(settings, run_server, listeners)


def _directories(settings: Settings) -> None:
    for what, directory in (("cache", settings.cache_dir), ("audit", settings.audit_directory)):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            message = f"cannot create the {what} directory {directory}: {e.strerror}"
            raise StorageError(message) from e


def _cannot_start(e: MirrorError) -> int:
    """One line for what stopped the start (its message says what to fix), no traceback."""
    print(f"crate-mirror: cannot start: {e}", file=sys.stderr)
    return 2 if isinstance(e, ConfigError) else 1


def _supervise(settings: Settings, run_server: Any, listeners: Listeners) -> int:
    """Run N workers on one port (SO_REUSEPORT); forward signals so none is orphaned."""
    from mirror.audit import AuditHub
    from mirror.audit.index import IndexPlace

    hub = AuditHub(settings.audit_directory, settings.workers, IndexPlace.of(settings))
    supervisor = os.getpid()
    procs = [
        multiprocessing.Process(
            target=_worker,
            args=(settings, run_server, hub, listeners, i, supervisor),
            name=f"worker-{i}",
        )
        for i in range(settings.workers)
    ]
    for proc in procs:
        proc.start()
    listeners.release()  # each worker holds its own sockets now
    hub.start()  # the audit chain is written here, for all workers

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for proc in procs:
        proc.join()
    hub.join(timeout=30)  # the workers' last events, sent as they shut down
    return max((proc.exitcode or 0) for proc in procs)


def _worker(
    settings: Settings,
    run_server: Any,
    hub: Any,
    listeners: Listeners,
    index: int,
    supervisor: int,
) -> None:
    _exit_with_parent(supervisor)
    try:
        run_server(settings, listeners.claim(index), hub.claim(index))
    except MirrorError as e:
        sys.exit(_cannot_start(e))


def _exit_with_parent(supervisor: int) -> None:
    """If the supervisor dies (even `kill -9`), die at once: its thread wrote our audit events.

    SIGKILL, not SIGTERM: a graceful stop would go on answering the requests in flight (a
    slow upstream download can take many seconds), and nothing would audit those answers.
    Crash safety is the same as for any `kill -9`: the store and the lock file are written
    to temporary names and renamed into place.
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != supervisor:  # it died before prctl took effect (we were re-parented)
        os.kill(os.getpid(), signal.SIGKILL)
