"""Validation of every name before it touches a path, a command or a config file."""

from __future__ import annotations

import re

APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
PROCESS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,29}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RELEASE_RE = re.compile(r"^v?([1-9][0-9]{0,8})$")
SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
BRANCH_RE = re.compile(r"^refs/heads/[A-Za-z0-9._/-]{1,200}$")
STORAGE_RE = APP_RE  # a storage directory's name: the same rule as an app's
# A container path: absolute, in portable characters only (it is data for the engine's API, but a later
# scheduler may have to write it into a --mount option, where ',' and '=' have meanings).
CONTAINER_PATH_RE = re.compile(r"^(?:/[A-Za-z0-9._@+-]+)+$")
CONTAINER_PATH_MAX = 200
# The kernel's and the engine's own file systems in a container: never hidden under a mount.
RESERVED_PATHS = ("/proc", "/sys", "/dev")


class NameError_(ValueError):
    """A name that is refused; the message is fit for the user."""


def app(name: str) -> str:
    if not APP_RE.fullmatch(name or ""):
        raise NameError_(
            f"invalid app name {name!r}: use 1-30 lowercase letters, digits and '-', starting with a letter"
        )
    return name


def process(name: str) -> str:
    if not PROCESS_RE.fullmatch(name or ""):
        raise NameError_(f"invalid process type {name!r}: use lowercase letters, digits, '-' and '_'")
    return name


def config_key(key: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(key or "") or len(key) > 200:
        raise NameError_(
            f"invalid config key {key!r}: use letters, digits and '_', not starting with a digit"
        )
    return key


def domain(name: str) -> str:
    if not (name or "").isascii():  # before lower(): the Kelvin sign lowercases to an ASCII 'k'
        raise NameError_(f"invalid domain {name!r}: use ASCII (punycode, xn--...) for international names")
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(LABEL_RE.fullmatch(label) for label in labels):
        raise NameError_(f"invalid domain {name!r}: expected a DNS name such as www.example.com")
    if labels[-1].isdigit():
        raise NameError_(f"invalid domain {name!r}: an IP address is not a domain")
    return name


def covers(pattern: str, domain: str) -> bool:
    """A certificate's DNS name covers a domain: the same name, or a wildcard for one leftmost label."""
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = domain.partition(".")
        return bool(label) and rest == pattern[2:] and "." in rest
    return pattern == domain


def release(text: str) -> int:
    match = RELEASE_RE.fullmatch(text or "")
    if not match:
        raise NameError_(f"invalid release {text!r}: expected vN, e.g. v3")
    return int(match.group(1))


def sha(text: str) -> str:
    if not SHA_RE.fullmatch(text or ""):
        raise NameError_(f"invalid git object id {text!r}")
    return text


def ref(text: str) -> str:
    if not BRANCH_RE.fullmatch(text or "") or ".." in text or text.endswith((".lock", "/", ".")):
        raise NameError_(f"invalid git ref {text!r}")
    return text


def storage(name: str) -> str:
    if not STORAGE_RE.fullmatch(name or ""):
        raise NameError_(
            f"invalid storage name {name!r}: use 1-30 lowercase letters, digits and '-', starting with a "
            "letter (a name, not a host path: the directory is made under the host's storage directory)"
        )
    return name


def container_path(path: str) -> str:
    """An absolute, normalised path inside a container; not /, nor under /proc, /sys or /dev."""
    shown = repr(path if len(path or "") <= 60 else path[:60] + "...")
    if path == "/":
        raise NameError_("invalid container path '/': a mount cannot hide the container's whole file system")
    if len(path or "") > CONTAINER_PATH_MAX:
        raise NameError_(f"invalid container path {shown}: at most {CONTAINER_PATH_MAX} characters")
    if not CONTAINER_PATH_RE.fullmatch(path or ""):
        raise NameError_(
            f"invalid container path {shown}: expected an absolute path such as /app/data, of letters, "
            "digits and . _ - @ + only"
        )
    if any(part in (".", "..") for part in path.split("/")):
        raise NameError_(f"invalid container path {shown}: no '.' or '..' components")
    if any(path == top or path.startswith(top + "/") for top in RESERVED_PATHS):
        raise NameError_(f"invalid container path {shown}: /proc, /sys and /dev belong to the container")
    return path
