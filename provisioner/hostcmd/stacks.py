"""The stacks this host offers: the catalog of the buildpacks role, each stack built or still to be built.

/etc/provisioner/stacks.json (settings.stacks_file) lists the stacks provisioner-stack can build, the
default one and the ones `up` builds ahead. A built stack's versions are the labels of its build image; a
stack not built yet offers the versions the catalog expects from it, and is built through sudo (the deploy
user's one rule for it: `provisioner-stack build NAME`) the first time an app's request needs it, with the
builder's progress in the push output. Its real versions then decide again.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import docker, runtime
from .settings import Settings

Say = Callable[[str], None]


class StackBuildFailed(RuntimeError):
    pass


def catalog(settings: Settings) -> dict[str, Any] | None:
    """The parsed catalog; None where the host has none (provisioned before stacks had a catalog)."""
    path = Path(settings.stacks_file)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("stacks"), list) else None


def built(build_image: str) -> dict[str, str] | None:
    """The labels of a stack's build image; None when it is not there."""
    try:
        return dict(docker.image_config(build_image).get("Labels") or {})
    except docker.DockerError:
        return None


def offered(settings: Settings) -> list[runtime.Stack]:
    """Every stack, in the order they are preferred: the default, the others built ahead, the other built
    ones, then the ones not built yet (each group in catalog order)."""
    default_labels = built(settings.build_image) or {}
    default = runtime.stack_of(settings.build_image, default_labels, settings.run_image)
    data = catalog(settings)
    if data is None:
        return [default]
    ahead = [str(n) for n in data.get("ahead") or []]
    stacks: list[runtime.Stack] = []
    for entry in data["stacks"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"]
        run_image = f"{data.get('run_repository')}:{name}"
        build_image = f"{data.get('build_repository')}:{name}"
        if build_image == settings.build_image:
            continue
        labels = built(build_image)
        if labels is not None:
            stack = runtime.stack_of(build_image, labels, run_image)
            stacks.append(dataclasses.replace(stack, ahead=name in ahead))
        else:
            expected = {lang: str(entry[lang]) for lang in runtime.LANGUAGES if entry.get(lang)}
            stacks.append(runtime.Stack(name, run_image, build_image, expected, False, name in ahead))

    def rank(stack: runtime.Stack) -> int:
        return 0 if stack.ahead else 1 if stack.built else 2

    return [default, *sorted(stacks, key=rank)]


def build(stack: runtime.Stack, settings: Settings, say: Say) -> None:
    """Builds a stack of the catalog (about 2 minutes), its progress in the push output."""
    say(f"-----> Building stack {stack.name}, once: apps that need it later start at once")
    proc = subprocess.Popen(
        ["sudo", "-n", settings.stack_builder, "build", stack.name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    last = ""
    for raw in proc.stdout:
        line = raw.rstrip()
        if line:
            last = line
            say(line if line.startswith(("-----> ", "       ")) else f"       {line}")
    if proc.wait() != 0:
        reason = last.removeprefix("provisioner-stack: ").strip() or f"exit code {proc.returncode}"
        raise StackBuildFailed(f"could not build stack {stack.name}: {reason}")
