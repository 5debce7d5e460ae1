"""Which Python and Node.js an app asks for, and which stack of this host gives them.

Python, in Heroku's order: `.python-version` (`3.14`, `3.14.2`), `runtime.txt` (`python-3.13.1`), then
`requires-python` in `pyproject.toml` (PEP 440 specifiers). Node.js: `engines.node` in `package.json` (npm's
semver ranges: `>=22`, `20.x`, `^24`, `18 || 20`). The versions come from the distributions' own packages,
one stack image per distribution release, so a request is met by a stack whose version matches, and the
patch release is the distribution's. A request no stack meets fails the push at once, naming what the host
offers. Files are read only as regular files inside the pushed tree (never through a symlink).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import tree

LABEL_PREFIX = "io.provisioner."  # stack images carry io.provisioner.stack, .python and .node labels
MAX_FILE = 256 * 1024
LANGUAGES = {"python": "Python", "node": "Node.js"}
DEFAULT_WHY = {
    "python": "no .python-version, runtime.txt or requires-python",
    "node": "no engines.node in package.json",
}
Version = tuple[int, ...]


class RuntimeRefused(ValueError):
    """The app asks for something this host cannot give; the message says what it offers."""


@dataclass(frozen=True)
class Request:
    language: str  # "python" or "node"
    spec: str  # as written: "3.14", ">=3.10,<3.13", "^24"
    source: str  # where it was written: ".python-version", "package.json engines.node", ...
    matches: Callable[[str], bool] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Stack:
    name: str  # the distribution release, e.g. bookworm
    run_image: str
    build_image: str
    versions: dict[str, str]  # language -> version, e.g. {"python": "3.11.2", "node": "18.19.0"}
    built: bool = True  # False: in the catalog, built the first time an app needs it (versions expected)
    ahead: bool = True  # built by `up`: the stacks apps that ask for no version choose from

    def describe(self, language: str) -> str:
        later = "" if self.built else ", built on first use"
        return f"{LANGUAGES[language]} {self.versions.get(language, '?')} (stack {self.name}{later})"


@dataclass(frozen=True)
class Choice:
    stack: Stack
    lines: list[str]  # what the build log says about the runtimes and where the choice came from


def version(text: str) -> Version:
    """'3.11.2' -> (3, 11, 2); the numeric release part only ('3.14.0rc1' -> (3, 14, 0))."""
    parts = []
    for piece in text.strip().lstrip("vV").split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def padded(v: Version, size: int = 3) -> Version:
    return v + (0,) * (size - len(v))


# --- reading the pushed tree --------------------------------------------------------------------------------


def read(source: Path, name: str) -> str | None:
    """A file of the pushed tree, as text; None when absent. Never follows a symlink (tree.py)."""
    try:
        return tree.read(source, name, MAX_FILE)
    except tree.TreeError as exc:
        raise RuntimeRefused(str(exc)) from None


# --- Python -------------------------------------------------------------------------------------------------


def python_request(source: Path) -> Request | None:
    text = read(source, ".python-version")
    if text is not None:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if lines:
            return pinned(
                "python", lines[0].removeprefix("python-").removeprefix("python"), ".python-version"
            )
    text = read(source, "runtime.txt")
    if text is not None and text.strip():
        spec = text.strip().splitlines()[0].strip()
        if not spec.startswith("python-"):
            raise RuntimeRefused(f"runtime.txt says {spec!r}: expected python-X.Y or python-X.Y.Z")
        return pinned("python", spec.removeprefix("python-"), "runtime.txt")
    text = read(source, "pyproject.toml")
    if text is not None:
        try:
            wanted = tomllib.loads(text).get("project", {}).get("requires-python")
        except tomllib.TOMLDecodeError as exc:
            raise RuntimeRefused(f"pyproject.toml is not valid TOML: {exc}") from None
        if isinstance(wanted, str) and wanted.strip():
            return Request("python", wanted.strip(), "pyproject.toml requires-python", pep440(wanted))
    return None


def pinned(language: str, spec: str, source: str) -> Request:
    """`3.14` or `3.14.2`: the distribution decides the patch release, so major.minor must match."""
    try:
        wanted = version(spec)
    except ValueError:
        raise RuntimeRefused(f"{source} says {spec!r}: expected a version such as 3.12") from None
    if len(wanted) < 2:
        raise RuntimeRefused(f"{source} says {spec!r}: give at least major.minor, e.g. 3.12")
    return Request(language, spec, source, lambda have: version(have)[:2] == wanted[:2])


def pep440(text: str) -> Callable[[str], bool]:
    """A PEP 440 specifier set (the forms requires-python uses) as a test of a version."""
    tests: list[Callable[[Version], bool]] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        match = re.fullmatch(r"(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9.]*)(\.\*)?", item)
        if not match:
            raise RuntimeRefused(f"requires-python {text!r}: cannot read {item!r}")
        op, ver, star = match.group(1), version(match.group(2)), bool(match.group(3))
        tests.append(_pep440_test(op, ver, star))
    return lambda have: all(test(version(have)) for test in tests)


def _pep440_test(op: str, ver: Version, star: bool) -> Callable[[Version], bool]:
    if star or op == "~=":
        prefix = ver if star else ver[:-1]
        if op == "~=":
            return lambda v: padded(v, 4) >= padded(ver, 4) and v[: len(prefix)] == prefix
        if op == "==":
            return lambda v: v[: len(prefix)] == prefix
        return lambda v: v[: len(prefix)] != prefix
    size = max(len(ver), 4)
    ops: dict[str, Callable[[Version, Version], bool]] = {
        "==": lambda a, b: a == b,
        "===": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
    }
    compare = ops[op]
    return lambda v: compare(padded(v, size), padded(ver, size))


# --- Node.js ------------------------------------------------------------------------------------------------


def node_request(source: Path) -> Request | None:
    text = read(source, "package.json")
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuntimeRefused(f"package.json is not valid JSON: {exc}") from None
    engines = data.get("engines") if isinstance(data, dict) else None
    wanted = engines.get("node") if isinstance(engines, dict) else None
    if not isinstance(wanted, str) or not wanted.strip():
        return None
    return Request("node", wanted.strip(), "package.json engines.node", semver_range(wanted))


def semver_range(text: str) -> Callable[[str], bool]:
    """npm's range syntax (||, hyphen ranges, ^, ~, x-ranges, comparators) as a test of a version."""
    alternatives: list[list[tuple[Version, Version | None]]] = []
    for alternative in text.split("||"):
        alternative = re.sub(r"\s+-\s+", " - ", alternative.strip())
        alternative = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative)
        words = alternative.split()
        bounds: list[tuple[Version, Version | None]] = []
        i = 0
        while i < len(words):
            if i + 2 < len(words) and words[i + 1] == "-":
                low, _ = _xrange(words[i], text)
                _, high_end = _xrange(words[i + 2], text)
                bounds.append((low, high_end))
                i += 3
                continue
            bounds.append(_comparator(words[i], text))
            i += 1
        alternatives.append(bounds or [((0, 0, 0), None)])

    def matches(have: str) -> bool:
        v = padded(version(have))
        return any(all(low <= v and (high is None or v < high) for low, high in alt) for alt in alternatives)

    return matches


def _xrange(word: str, text: str) -> tuple[Version, Version | None]:
    """A partial version as [low, high): '20' / '20.x' -> [20.0.0, 21.0.0), '*' -> everything."""
    if word.lower() in ("", "*", "x", "latest", "lts/*", "node", "current"):
        return (0, 0, 0), None
    parts = word.lstrip("vV=").split(".")
    numbers: list[int] = []
    for part in parts:
        if part.lower() in ("x", "*"):
            break
        if not part.isdigit():
            raise RuntimeRefused(f"engines.node {text!r}: cannot read {word!r}")
        numbers.append(int(part))
    if not numbers:
        return (0, 0, 0), None
    low = padded(tuple(numbers))
    if len(numbers) == 3:
        return low, (*numbers[:2], numbers[2] + 1)
    bumped = [*numbers[:-1], numbers[-1] + 1]
    return low, padded(tuple(bumped))


def _comparator(word: str, text: str) -> tuple[Version, Version | None]:
    match = re.fullmatch(r"(>=|<=|>|<|=|\^|~)?(.*)", word)
    assert match is not None
    op, rest = match.group(1) or "", match.group(2)
    low, high = _xrange(rest, text)
    exact = high is not None and len([p for p in rest.split(".") if p.isdigit()]) == 3
    if op in ("", "="):
        return low, high
    if op == ">=":
        return low, None
    if op == ">":
        return (high or (10**9,)), None
    if op == "<":
        return (0, 0, 0), low
    if op == "<=":
        return (0, 0, 0), high
    if op == "~":
        return low, high if not exact else (low[0], low[1] + 1, 0)
    # ^: the leftmost non-zero part may not change
    major, minor, patch = low
    if major:
        return low, (major + 1, 0, 0)
    if minor:
        return low, (0, minor + 1, 0)
    return low, (0, 0, patch + 1) if exact else high


# --- choosing -----------------------------------------------------------------------------------------------


def requests(source: Path) -> list[Request]:
    return [r for r in (python_request(source), node_request(source)) if r is not None]


def choose(source: Path, stacks: Sequence[Stack], languages: Sequence[str]) -> Choice:
    """The first stack (the host's default comes first) that meets every request of the app; languages
    are the ones the app uses (their versions are named in the build log even when not asked for)."""
    asked = requests(source)
    for request in asked:
        offered = [s for s in stacks if request.language in s.versions]
        if offered and not any(request.matches(s.versions[request.language]) for s in offered):
            have = ", ".join(s.describe(request.language) for s in offered)
            raise RuntimeRefused(
                f"{LANGUAGES[request.language]} {request.spec} ({request.source}) is not offered by this "
                f"host: it has {have}"
            )
    fitting = [
        s
        for s in stacks
        if all(r.language not in s.versions or r.matches(s.versions[r.language]) for r in asked)
    ]
    if not fitting:
        asks = " and ".join(f"{LANGUAGES[r.language]} {r.spec} ({r.source})" for r in asked)
        offers = "; ".join(", ".join(s.describe(lang) for lang in sorted(s.versions)) for s in stacks)
        raise RuntimeRefused(f"no stack of this host has {asks}: it has {offers}")
    stack = fitting[0] if asked else newest([s for s in stacks if s.ahead] or stacks[:1], languages)
    by_language = {r.language: r for r in asked}
    lines = []
    for language in [*dict.fromkeys([*languages, *by_language])]:
        if language not in stack.versions:
            continue
        wanted = by_language.get(language)
        why = (
            f"{wanted.source} asks for {wanted.spec}" if wanted else f"the default ({DEFAULT_WHY[language]})"
        )
        lines.append(f"{stack.describe(language)}: {why}")
    return Choice(stack, lines)


def newest(stacks: Sequence[Stack], languages: Sequence[str]) -> Stack:
    """With no request, the stack (of those built ahead) with the newest version of the app's languages."""

    def key(stack: Stack) -> tuple[Version, ...]:
        return tuple(padded(version(stack.versions.get(lang) or "0")) for lang in languages)

    return max(stacks, key=key)  # the first of equals: the default stays first


def stack_of(image: str, labels: dict[str, str], run_image: str) -> Stack:
    """A stack from the labels of its build image (written by the buildpacks role)."""
    versions = {
        lang: labels[f"{LABEL_PREFIX}{lang}"] for lang in LANGUAGES if labels.get(f"{LABEL_PREFIX}{lang}")
    }
    name = labels.get(f"{LABEL_PREFIX}stack") or image.rpartition(":")[2] or image
    return Stack(name, run_image, image, versions)
