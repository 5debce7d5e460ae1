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
