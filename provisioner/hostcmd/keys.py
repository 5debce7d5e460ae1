"""The deploy user's SSH keys, root side: one file per named key, rendered into authorized_keys.

/etc/provisioner/deploy-keys/NAME.pub holds one public key; NAME.apps, when present, the apps that key may
push and manage (one per line; Dokku's ACL). authorized_keys (owned by root, so the deploy user cannot
change it) is always rendered from that directory, every line with `restrict` and the forced command. The
host program learns which key logged in from sshd (ExposeAuthInfo) and enforces its apps (`Caller`).
Keys named `up-N` are the ones `provisioner up` passes (`set-managed`); `provisioner keys` adds and removes
the others. Run as root by the receiver role and by `provisioner keys` (through sudo).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from . import names
from .store import write_atomic

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MANAGED_PREFIX = "up-"
FORCED = 'restrict,command="{program}"'
HEADER = "# Rendered by provisioner-keys from {dir}: change keys with `provisioner keys`, not here.\n"


class KeyError_(ValueError):
    """A refused key or name; the message is fit for the user."""


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    blob: str
    apps: tuple[str, ...] | None = None  # None: every app (an admin key)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def line(self, program: str) -> str:
        return f"{FORCED.format(program=program)} {self.type} {self.blob} {self.name}"


def key_name(name: str, *, managed: bool = False) -> str:
    if not NAME_RE.fullmatch(name or "") or ".." in name:
        raise KeyError_(
            f"invalid key name {name!r}: use 1-64 lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if not managed and name.startswith(MANAGED_PREFIX):
        raise KeyError_(f"key names starting with {MANAGED_PREFIX!r} are kept for the keys of provisioner up")
    return name


def parse_key(text: str, name: str) -> Key:
    """One OpenSSH public key line (type, base64, optional comment), checked down to the key blob."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise KeyError_("expected exactly one public key line (e.g. ssh-ed25519 AAAA... comment)")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise KeyError_(
            "not an OpenSSH public key: expected TYPE BASE64 [COMMENT] with TYPE one of "
            + ", ".join(KEY_TYPES)
            + " (options such as command= are not accepted)"
        )
    ktype, blob = parts[0], parts[1]
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise KeyError_("the key's base64 part is damaged") from None
    if inner != ktype or len(raw) < 4 + length + 16:
        raise KeyError_(f"the key's data does not match its type {ktype}")
    return Key(name, ktype, blob)


def app_list(apps: list[str]) -> tuple[str, ...]:
    try:
        scope = tuple(sorted({names.app(a.strip()) for a in apps if a.strip()}))
    except names.NameError_ as exc:
        raise KeyError_(str(exc)) from None
    if not scope:
        raise KeyError_("--apps needs at least one app name")
    return scope


@dataclass(frozen=True)
class Caller:
    """Who runs a command: the deploy key's name, and the apps it may use (None: every app)."""

    key: str | None = None
    apps: frozenset[str] | None = None

    def allows(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def refusal(self, what: str) -> str:
        shown = ", ".join(sorted(self.apps or ())) or "none"
        return f"key {self.key!r} may only push and manage the apps {shown}: {what} is not one of them"


class KeyStore:
    def __init__(self, directory: Path, authorized_keys: Path, program: str) -> None:
        self.dir = directory
        self.authorized_keys = authorized_keys
        self.program = program

    def entries(self) -> list[Key]:
        found: list[Key] = []
        if not self.dir.is_dir():
            return found
        for path in sorted(self.dir.glob("*.pub")):
            name = path.name.removesuffix(".pub")
            try:
                key = parse_key(path.read_text(), key_name(name, managed=True))
            except (KeyError_, OSError, UnicodeDecodeError):
                continue  # a damaged or foreign file never becomes a login
            found.append(Key(key.name, key.type, key.blob, self.scope(name)))
        return found

    def scope(self, name: str) -> tuple[str, ...] | None:
        """The apps of a key with a NAME.apps file; a damaged one allows no app (never every app)."""
        path = self.dir / f"{name}.apps"
        if not path.exists():
            return None
        try:
            listed = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
            return tuple(sorted({names.app(a) for a in listed}))
        except (OSError, UnicodeDecodeError, names.NameError_):
            return ()

    def render(self, dry_run: bool = False) -> bool:
        """Write authorized_keys from the key files; True when it changed."""
        seen: set[str] = set()
        lines = [HEADER.format(dir=self.dir)]
        for key in self.entries():
            if key.blob in seen:
                continue
            seen.add(key.blob)
            lines.append(key.line(self.program) + "\n")
        content = "".join(lines)
        try:
            old = self.authorized_keys.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            old = None
        stat_ok = False
        if old is not None:
            st = self.authorized_keys.stat()
            stat_ok = st.st_uid == 0 and (st.st_mode & 0o7777) == 0o644
        if old == content and stat_ok:
            return False
        if not dry_run:
            write_atomic(self.authorized_keys, content, 0o644)
        return True

    def add(self, name: str, text: str, apps: list[str] | None = None) -> Key:
        key = parse_key(text, key_name(name))
        scope = app_list(apps) if apps is not None else None
        for other in self.entries():
            if other.name == name:
                raise KeyError_(f"a key named {name!r} exists already (remove it first)")
            if other.blob == key.blob:
                raise KeyError_(f"this key is installed already, as {other.name!r}")
        self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        scope_file = self.dir / f"{name}.apps"
        if scope is not None:  # before the key: it never logs in without its limits
            write_atomic(scope_file, "".join(f"{a}\n" for a in scope), 0o644)
        elif scope_file.exists():
            scope_file.unlink()
        write_atomic(self.dir / f"{name}.pub", f"{key.type} {key.blob} {name}\n", 0o644)
        self.render()
        return Key(key.name, key.type, key.blob, scope)

    def remove(self, name: str) -> Key:
        key_name(name, managed=True)
        key = next((k for k in self.entries() if k.name == name), None)
        if key is None:
            raise KeyError_(f"no key named {name!r} (see keys list)")
        (self.dir / f"{name}.pub").unlink()
        self.render()
        (self.dir / f"{name}.apps").unlink(missing_ok=True)
        return key

    def caller(self, auth_info: str | None) -> Caller:
        """Which key logged in, from sshd's ExposeAuthInfo file ("publickey TYPE BASE64" lines), and the
        apps it may use. Without any key limited to apps, every key may do everything."""
        keys = self.entries()
        if all(k.apps is None for k in keys):
            return Caller()
        if auth_info is None:
            raise KeyError_("this host's sshd does not say which key logged in: run `provisioner up` for it")
        used = {
            ln.split()[2]
            for ln in auth_info.splitlines()
            if ln.startswith("publickey ") and len(ln.split()) > 2
        }
        for key in keys:
            if key.blob in used:
                return Caller(key.name, frozenset(key.apps) if key.apps is not None else None)
        raise KeyError_("the key that logged in is not a deploy key of this host")

    def set_managed(self, texts: list[str], dry_run: bool = False) -> bool:
        """The keys of `provisioner up` become up-1, up-2, ...; stale up-* files go."""
        wanted = {
            f"{MANAGED_PREFIX}{i}": parse_key(t, f"{MANAGED_PREFIX}{i}") for i, t in enumerate(texts, 1)
        }
        changed = False
        present = {p.name.removesuffix(".pub"): p for p in self.dir.glob(f"{MANAGED_PREFIX}*.pub")}
        for name, path in present.items():
            if name not in wanted:
                changed = True
                if not dry_run:
                    path.unlink()
        for name, key in wanted.items():
            content = f"{key.type} {key.blob} {name}\n"
            path = self.dir / f"{name}.pub"
            if not path.exists() or path.read_text() != content:
                changed = True
                if not dry_run:
                    self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)
                    write_atomic(path, content, 0o644)
        if dry_run and changed:
            return True
        return self.render(dry_run) or changed


USAGE = """\
usage: provisioner-keys list [--json]
       provisioner-keys add NAME [--apps A,B]   (the public key on stdin)
       provisioner-keys remove NAME
       provisioner-keys set-managed [--dry-run]   (the keys of provisioner up on stdin, one per line)
       provisioner-keys render [--dry-run]"""


def main(argv: list[str], store: KeyStore) -> int:
    try:
        return run(argv, store)
    except KeyError_ as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PermissionError:
        print("error: provisioner-keys must run as root", file=sys.stderr)
        return 1


def run(argv: list[str], store: KeyStore) -> int:
    verb, args = (argv[0], argv[1:]) if argv else ("", [])
    if verb == "list" and args in ([], ["--json"]):
        keys = store.entries()
        if args:
            print(
                json.dumps(
                    [
                        {"name": k.name, "type": k.type, "fingerprint": k.fingerprint, "apps": k.apps}
                        for k in keys
                    ]
                )
            )
        for key in keys if not args else []:
            scope = "all apps" if key.apps is None else "apps: " + (", ".join(key.apps) or "none")
            print(f"{key.name}  {key.type}  {key.fingerprint}  {scope}")
        return 0
    if verb == "add" and len(args) in (1, 3) and (len(args) == 1 or args[1] == "--apps"):
        apps = args[2].split(",") if len(args) == 3 else None
        key = store.add(args[0], sys.stdin.read(16384), apps)
        scope = "" if key.apps is None else f", apps {', '.join(key.apps)}"
        print(f"added {key.name} ({key.fingerprint}{scope})")
        return 0
    if verb == "remove" and len(args) == 1:
        key = store.remove(args[0])
        print(f"removed {key.name} ({key.fingerprint})")
        return 0
    if verb == "set-managed" and args in ([], ["--dry-run"]):
        texts = [ln for ln in sys.stdin.read(1 << 20).splitlines() if ln.strip()]
        print("changed" if store.set_managed(texts, dry_run=bool(args)) else "unchanged")
        return 0
    if verb == "render" and args in ([], ["--dry-run"]):
        print("changed" if store.render(dry_run=bool(args)) else "unchanged")
        return 0
    print(USAGE, file=sys.stderr)
    return 2
