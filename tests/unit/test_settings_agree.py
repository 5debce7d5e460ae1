"""Each host setting has one home: role defaults, argument specs, the playbook's mappings and the host
program's defaults must agree. A value changed in one place only fails here, with the places named."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from provisioner import keys as controller_keys
from provisioner.hostcmd import settings as host_settings

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
# Settings fields that no role variable sets: fixed paths the base role writes to.
FIXED = {"ca_bundle", "pip_conf", "proxy_env"}
# The role templates that write the host program's settings files, and what each key is set from.
SETTINGS_TEMPLATES = [
    ROOT / "roles/base/templates/etc/provisioner/host.json.j2",
    ROOT / "roles/receiver/templates/etc/provisioner/deploy.json.j2",
    ROOT / "roles/tls/templates/etc/provisioner/tls.json.j2",
    ROOT / "roles/services/templates/etc/provisioner/services.json.j2",
    ROOT / "roles/swarm/templates/etc/provisioner/swarm.json.j2",
]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) or {}


def defaults(role: str) -> dict[str, Any]:
    return dict(load(ROOT / "roles" / role / "defaults" / "main.yml"))


def role_vars(role: str) -> dict[str, Any]:
    path = ROOT / "roles" / role / "vars" / "main.yml"
    return dict(load(path)) if path.exists() else {}


def spec(role: str) -> dict[str, dict[str, Any]]:
    return dict(
        load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    )


def play_vars() -> dict[str, Any]:
    return dict(load(ROOT / "playbooks" / "site.yml")[0]["vars"])


def context() -> dict[str, Any]:
    """What a play sees before facts: every role's defaults and vars, then the play's own vars on top."""
    ctx: dict[str, Any] = {}
    for role in ROLES:
        ctx.update(defaults(role))
        ctx.update(role_vars(role))
    ctx.update(play_vars())
    return ctx


def resolve(value: Any, ctx: dict[str, Any]) -> Any:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(10):
        if not isinstance(value, str) or "{{" not in value:
            return value
        value = env.from_string(value).render(ctx)
    raise AssertionError(f"{value!r} does not resolve")


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_and_argument_specs_agree(role):
    values, options = defaults(role), spec(role)
    problems = []
    for name, option in options.items():
        if option.get("required"):
            if name in values:
                problems.append(f"{name} is required in the spec but has a default in defaults/main.yml")
            elif name not in play_vars() and name != "receiver_program_archive":  # the controller's
                problems.append(f"{name} is required but playbooks/site.yml does not map it")
        elif name not in values:
            problems.append(f"{name} is in the spec but not in defaults/main.yml")
        elif "default" not in option and "{{" in str(values[name]):
            pass  # computed on the host (from facts); the spec's description says how
        elif option.get("default") != values[name]:
            problems.append(
                f"{name}: defaults/main.yml says {values[name]!r}, the argument spec {option['default']!r}"
            )
        if not str(option.get("description", "")).strip():
            problems.append(f"{name} has no description in the argument spec")
    problems += [
        f"{name} is in defaults/main.yml but not in the spec" for name in values if name not in options
    ]
    assert not problems, f"roles/{role}: " + "; ".join(problems)


def test_role_variables_carry_their_role_prefix():
    wrong = [
        f"{role}: {name}"
        for role in ROLES
        for name in [*defaults(role), *role_vars(role), *spec(role)]
        if not name.startswith(f"{role}_")
    ]
    assert not wrong


def template_keys() -> dict[str, str]:
    """Settings key -> the role variable the role templates write it from ("key": role_var ...)."""
    found: dict[str, str] = {}
    for path in SETTINGS_TEMPLATES:
        for key, var in re.findall(r"['\"](\w+)['\"]:\s*(\w+)", path.read_text()):
            found[key] = var
    return found


def test_every_host_setting_is_written_by_exactly_one_role_variable():
    fields = {f.name for f in dataclasses.fields(host_settings.Settings)} - FIXED
    written = template_keys()
    assert sorted(written) == sorted(fields), "Settings fields and the keys the roles write differ"


def test_host_program_defaults_are_the_role_defaults():
    """Settings' default for each key == the role default (through site.yml's mappings) of the variable
    the role writes it from."""
    ctx = context()
    problems = []
    for field in dataclasses.fields(host_settings.Settings):
        if field.name in FIXED:
            continue
        var = template_keys()[field.name]
        try:
            role_value = resolve(ctx[var], ctx)
        except (
            jinja2.UndefinedError,
            jinja2.TemplateRuntimeError,
        ):  # computed from the inventory (swarm groups)
            if field.default:
                problems.append(f"Settings.{field.name} = {field.default!r}, but {var} has no value alone")
            continue
        if type(field.default)(role_value) != field.default:
            problems.append(f"Settings.{field.name} = {field.default!r} but {var} resolves to {role_value!r}")
    assert not problems, "; ".join(problems)


def test_paths_both_sides_name_agree():
    receiver = role_vars("receiver")
    assert receiver["receiver_program"] == host_settings.PROGRAM
    assert receiver["receiver_keys_tool"] == controller_keys.TOOL
