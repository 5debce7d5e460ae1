"""The role variable docs are generated from the argument specs (scripts/role-docs.py) and kept fresh."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "role-docs.py"
COMMAND = ".venv/bin/python scripts/role-docs.py"
SPECS = sorted((ROOT / "roles").glob("*/meta/argument_specs.yml"))


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("role_docs", module)
    spec.loader.exec_module(module)
    return module


role_docs = load_script()


def test_generated_docs_are_up_to_date():
    stale = role_docs.stale_files(ROOT)
    assert not stale, f"generated role docs are stale: {', '.join(stale)}; run {COMMAND}"


def copy_sources(dest: Path) -> None:
    """What the generator reads and writes, into dest."""
    for spec in SPECS:
        role = spec.parent.parent
        for rel in ("meta/argument_specs.yml", "README.md"):
            target = dest / "roles" / role.name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(role / rel, target)
    for rel in ("playbooks/site.yml", "docs/roles.md"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, dest / rel)


def test_check_mode_names_the_stale_files_and_writing_fixes_them(tmp_path, capsys):
    copy_sources(tmp_path)
    spec = tmp_path / "roles/git/meta/argument_specs.yml"
    data = yaml.safe_load(spec.read_text())
    data["argument_specs"]["main"]["options"]["git_packages"]["description"] = "The git packages."
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    before = {p: p.read_text() for p in tmp_path.rglob("*.md")}

    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["stale: roles/git/README.md", "stale: docs/roles.md"]
    assert {p: p.read_text() for p in tmp_path.rglob("*.md")} == before, "--check wrote a file"

    assert role_docs.main(["--root", str(tmp_path)]) == 0
    assert "The git packages." in (tmp_path / "roles/git/README.md").read_text()
    assert "| The git packages. |" in (tmp_path / "docs/roles.md").read_text()
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 0


def test_output_is_deterministic(tmp_path):
    copy_sources(tmp_path)
    first = role_docs.generate(tmp_path)
    assert role_docs.generate(tmp_path) == first


def test_missing_markers_are_an_error(tmp_path, capsys):
    copy_sources(tmp_path)
    readme = tmp_path / "roles/git/README.md"
    readme.write_text(readme.read_text().replace("<!-- /role-variables -->", ""))
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 2
    assert "roles/git/README.md" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ([22, 80, 443], "[22, 80, 443]"),
        ({}, "{}"),
        ([], "[]"),
        ("", '""'),
        (True, "true"),
        ("10m", "10m"),
        ("yes", '"yes"'),
        ("/home/{{ receiver_user }}", "/home/{{ receiver_user }}"),
        ("{{ x }}", '"{{ x }}"'),
        (["a,b", "c"], '["a,b", c]'),
        ({"log-opts": {"compress": "true"}}, '{log-opts: {compress: "true"}}'),
    ],
)
def test_defaults_render_as_compact_yaml(value, rendered):
    assert role_docs.render_value(value) == rendered
    assert yaml.safe_load(f"v: {rendered}")["v"] == value


def test_meaning_is_the_first_sentence():
    text = "Allow logins, e.g. PAM prompts (`a. B`). `false`: keys only. More."
    assert role_docs.first_sentence(text) == "Allow logins, e.g. PAM prompts (`a. B`)."


def options_of(options: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """Every option, sub-options included, as (dotted name, option)."""
    found = []
    for name, option in (options or {}).items():
        found.append((f"{prefix}{name}", option or {}))
        found += options_of((option or {}).get("options") or {}, f"{prefix}{name}.")
    return found


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parent.parent.name)
def test_every_option_has_a_description_and_a_type(spec):
    entry_points = yaml.safe_load(spec.read_text())["argument_specs"]
    problems = []
    for entry, point in entry_points.items():
        for name, option in options_of(point.get("options") or {}, f"{entry}: "):
            description = option.get("description")
            texts = description if isinstance(description, list) else [description]
            if not all(isinstance(t, str) for t in texts) or not "".join(texts).strip():
                problems.append(f"{name} has no description")
            if not option.get("type"):
                problems.append(f"{name} has no type")
    assert not problems, f"{spec.relative_to(ROOT)}: " + "; ".join(problems)
