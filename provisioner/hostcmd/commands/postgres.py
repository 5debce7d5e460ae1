"""postgres:* (Dokku's postgres plugin): PostgreSQL servers linked to apps as DATABASE_URL, with pg_dump
exports and imports over the SSH session's stdout and stdin, and local backups (the services role's
nightly timer runs `postgres:backup --all`)."""

from __future__ import annotations

import sys
import time

from .. import services
from ..services import POSTGRES
from ..settings import Settings
from .base import Command, UserError, err, no_extra, out
from .services import commands_for, service_arg


def export(settings: Settings, args: list[str]) -> None:
    """A pg_dump in its custom format on stdout: `ssh deploy@HOST postgres:export db > db.dump`."""
    service = service_arg(settings, POSTGRES, args, "postgres:export NAME")
    no_extra(args[1:], "postgres:export NAME")
    if sys.stdout.isatty():
        raise UserError("postgres:export writes a binary dump: redirect it to a file (> db.dump)")
    sys.stdout.flush()
    proc = service.exec(*services.dump_argv(service), stdout=sys.stdout.buffer, timeout=None)
    if proc.returncode != 0:
        raise UserError(f"pg_dump failed: {services.last_line(proc.stderr)}")
    err(f"-----> Exported {service.name}")


def import_(settings: Settings, args: list[str]) -> None:
    """A dump of postgres:export (pg_dump -Fc) on stdin, restored in one transaction: all of it or, on any
    error, nothing (the database stays as it was)."""
    service = service_arg(settings, POSTGRES, args, "postgres:import NAME")
    no_extra(args[1:], "postgres:import NAME")
    if sys.stdin.isatty():
        raise UserError("postgres:import reads a dump on stdin: postgres:import NAME < db.dump")
    with service.lock():
        proc = service.exec(*services.restore_argv(service), stdin=sys.stdin.buffer, timeout=None)
    if proc.returncode != 0:
        raise UserError(f"pg_restore failed, nothing was imported: {services.last_line(proc.stderr)}")
    out(f"imported into postgres {service.name}")


def backup(settings: Settings, args: list[str]) -> None:
    """A backup now (NAME), or of every Postgres service (--all: the nightly timer)."""
    usage = "postgres:backup NAME|--all"
    if args == ["--all"]:
        chosen = services.all_services(settings, POSTGRES)
    else:
        chosen = [service_arg(settings, POSTGRES, args, usage)]
        no_extra(args[1:], usage)
    failed = []
    for service in chosen:
        started = time.monotonic()
        try:
            with service.lock():
                path = services.backup(service, settings.backup_keep)
        except services.ServiceError as exc:
            err(f" !     {exc}")
            failed.append(service.name)
            continue
        out(f"backed up {service.name} to {path} in {time.monotonic() - started:.1f} s")
    if failed:
        raise UserError(f"backup failed for {', '.join(failed)}")


def list_backups(settings: Settings, args: list[str]) -> None:
    service = service_arg(settings, POSTGRES, args, "postgres:backups NAME")
    no_extra(args[1:], "postgres:backups NAME")
    found = services.backups(service)
    if not found:
        out(f"no backups of {service.name} yet (the nightly timer, or postgres:backup {service.name})")
    for path in reversed(found):
        stat = path.stat()
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stat.st_mtime))
        out(f"{path.name}  {stat.st_size:>12} bytes  {when}")


COMMANDS = [
    *commands_for(POSTGRES),
    Command("postgres:export", "NAME > FILE", "a pg_dump (custom format) on stdout", export, scope="host"),
    Command(
        "postgres:import", "NAME < FILE", "restore a dump from stdin (all or nothing)", import_, scope="host"
    ),
    Command(
        "postgres:backup", "NAME|--all", "back up now (the nightly timer backs up all)", backup, scope="host"
    ),
    Command("postgres:backups", "NAME", "list a service's backups, newest first", list_backups, scope="host"),
]
