#!/usr/bin/env python3
"""Write the role variable docs from the roles' argument specs.

Each role variable is documented once, in `roles/ROLE/meta/argument_specs.yml`. This script writes, from
those specs and `playbooks/site.yml`:

- in each `roles/ROLE/README.md`, the section between the lines `<!-- role-variables ... -->` and
  `<!-- /role-variables -->`: every variable with its default, description and type;
- in `docs/roles.md`, between the same markers, one table of the variables of every role (in the play
  order of `playbooks/site.yml`), and between `<!-- play-mappings ... -->` and `<!-- /play-mappings -->`
  the variables the play sets in its `vars:`.

Usage: `.venv/bin/python scripts/role-docs.py` writes the files; `--check` writes nothing, prints the
stale files (one line each) and exits 1 when any generated section differs from what is on disk.
Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ".venv/bin/python scripts/role-docs.py"
WIDTH = 100  # prose in the READMEs is wrapped at this width

# What each generated section is made from, as its start marker line says.
SOURCES = {
    "readme": "meta/argument_specs.yml",
    "docs": "roles/*/meta/argument_specs.yml",
    "play": "playbooks/site.yml",
}


class DocsError(Exception):
    """The sources or the Markdown files are not as this script needs them."""


# --- reading the sources -------------------------------------------------------------------------------


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DocsError(f"cannot read {path}: {exc}") from exc


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(read(path))
    except yaml.YAMLError as exc:
        raise DocsError(f"cannot read {path}: {exc}") from exc


def plays(root: Path) -> list[dict[str, Any]]:
    data = load_yaml(root / "playbooks" / "site.yml")
    return [play for play in data or [] if isinstance(play, dict)]


def role_order(root: Path) -> list[str]:
    """Roles with an argument spec, in the order the plays of site.yml apply them (others last, sorted)."""
    have = sorted(p.parent.parent.name for p in (root / "roles").glob("*/meta/argument_specs.yml"))
    order: list[str] = []
    for play in plays(root):
        entries = [*(play.get("roles") or [])]
        for task in play.get("tasks") or []:  # import_role/include_role tasks, in order
            if isinstance(task, dict):
                for key in ("ansible.builtin.import_role", "ansible.builtin.include_role", "import_role"):
                    if isinstance(task.get(key), dict):
                        entries.append(task[key])
        for entry in entries:
            name = entry if isinstance(entry, str) else entry.get("role") or entry.get("name")
            if name in have and name not in order:
                order.append(name)
    return order + [name for name in have if name not in order]


def role_options(root: Path, role: str) -> dict[str, dict[str, Any]]:
    path = root / "roles" / role / "meta" / "argument_specs.yml"
    data = load_yaml(path)
    try:
        options = data["argument_specs"]["main"].get("options") or {}
    except (KeyError, TypeError, AttributeError) as exc:
        raise DocsError(f"{path}: no argument_specs.main entry point") from exc
    return {str(name): dict(option or {}) for name, option in options.items()}


# --- rendering values and text -------------------------------------------------------------------------

FLOW_INDICATORS = set(",[]{}")


def render_scalar_str(text: str, flow: bool) -> str:
    """A string as written in YAML: plain when that reads back as the same string, else double-quoted."""
    plain = text != "" and text == text.strip() and "\n" not in text and " #" not in text
    plain = plain and not text.endswith(":") and ": " not in text and text[0] not in "-?:,[]{}#&*!|>'\"%@`"
    if plain and flow and FLOW_INDICATORS & set(text):
        plain = False
    if plain:
        try:
            plain = yaml.safe_load(text) == text
        except yaml.YAMLError:
            plain = False
    return text if plain else json.dumps(text, ensure_ascii=False)


def render_value(value: Any, flow: bool = False) -> str:
    """Compact YAML: `[22, 80, 443]`, `{}`, `true`, `""`, strings as they are where YAML allows."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return render_scalar_str(value, flow)
    if isinstance(value, dict):
        items = ", ".join(f"{render_value(k, True)}: {render_value(v, True)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_value(v, True) for v in value) + "]"
    return render_scalar_str(str(value), flow)


def paragraphs(description: Any) -> list[str]:
    """The description's paragraphs (a string, or a list of strings), whitespace collapsed."""
    items = description if isinstance(description, list) else [description or ""]
    return [" ".join(str(item).split()) for item in items if str(item).strip()]


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence: followed by a space and a capital, a digit or a
    code span, not inside a code span and not the end of "e.g." or "i.e."."""
    in_code = False
    for i, char in enumerate(text):
        if char == "`":
            in_code = not in_code
        elif char == "." and not in_code and not re.search(r"\b(e\.g|i\.e)$", text[:i]):
            rest = text[i + 1 :]
            if re.match(r"\s+[A-Z0-9`\"(]", rest):
                return text[: i + 1]
    return text


# A line starting with one of these would turn into a list item, heading, quote or table row.
BLOCK_START = re.compile(r"^([-+*#>|=]|\d+[.)])")


def words(text: str) -> list[str]:
    """The text split at spaces outside code spans (a code span stays on one line)."""
    out: list[str] = []
    current, in_code = "", False
    for char in text:
        if char == "`":
            in_code = not in_code
        if char.isspace() and not in_code:
            if current:
                out.append(current)
            current = ""
        else:
            current += char
    return [*out, current] if current else out


def wrap(text: str, width: int = WIDTH) -> list[str]:
    """Greedy word wrap that never starts a line with something Markdown reads as a block marker."""
    lines: list[str] = []
    current = ""
    for word in words(text):
        if current and len(current) + 1 + len(word) > width and not BLOCK_START.match(word):
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    """A code span, with enough backticks around it for backticks inside."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def type_text(option: dict[str, Any]) -> str:
    """`list` of `str`, `str`, ... for the READMEs."""
    kind = str(option.get("type", "str"))
    if kind == "list" and option.get("elements"):
        text = f"{code(kind)} of {code(str(option['elements']))}"
    else:
        text = code(kind)
    if option.get("choices"):
        text += ", one of " + ", ".join(code(render_value(c, True)) for c in option["choices"])
    return text


def type_cell(option: dict[str, Any]) -> str:
    """`list[str]`, `str` (`a`/`b`), `list[{name, content}]` for the docs/roles.md table."""
    kind = str(option.get("type", "str"))
    if kind == "list" and option.get("elements"):
        elements = str(option["elements"])
        if elements == "dict" and option.get("options"):
            elements = "{" + ", ".join(option["options"]) + "}"
        kind = f"list[{elements}]"
    text = code(kind)
    if option.get("choices"):
        text += " (" + "/".join(code(render_value(c, True)) for c in option["choices"]) + ")"
    return text


def default_cell(option: dict[str, Any]) -> str:
    if option.get("required"):
        return "required"
    if "default" not in option:
        return "computed on the host"
    return code(render_value(option["default"]))


def anchor(name: str) -> str:
    """GitHub's anchor of a `### \\`name\\`` heading."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")


# --- the generated sections ----------------------------------------------------------------------------


def example_lines(name: str, example: Any) -> list[str]:
    if isinstance(example, str):
        text = example
    else:
        text = yaml.safe_dump({name: example}, default_flow_style=False, sort_keys=False)
    return [f"    {line}" if line.strip() else "" for line in text.rstrip("\n").splitlines()]


def suboption_lines(options: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, sub in options.items():
        facts = [type_text(sub)]
        if sub.get("required"):
            facts.append("required")
        elif "default" in sub:
            facts.append(f"default {code(render_value(sub['default']))}")
        text = f"{code(name)} ({', '.join(facts)}): " + " ".join(paragraphs(sub.get("description")))
        wrapped = wrap(text, WIDTH - 2)
        lines += [f"- {wrapped[0]}", *(f"  {line}" for line in wrapped[1:])]
    return lines


def readme_section(options: dict[str, dict[str, Any]]) -> str:
    out = [
        "The variables as documented in `meta/argument_specs.yml` (Ansible checks given values against it",
        "when the role starts), each with its default from `defaults/main.yml`.",
    ]
    for name, option in options.items():
        out += ["", f"### {code(name)}", ""]
        if option.get("required"):
            out.append("Required; no default.")
        elif "default" not in option:
            out.append("Computed on the host; see below.")
        else:
            out.append(f"    {name}: {render_value(option['default'])}")
        for paragraph in paragraphs(option.get("description")):
            out += ["", *wrap(paragraph)]
        if "example" in option:
            out += ["", "For example:", "", *example_lines(name, option["example"])]
        if option.get("options") and option.get("type") in ("list", "dict"):
            each = "each item" if option.get("type") == "list" else "it"
            out += ["", f"Type: {type_text(option)}; {each} has these keys:", ""]
            out += suboption_lines(option["options"])
        else:
            out += ["", f"Type: {type_text(option)}."]
    return "\n".join(out)


def variables_table(root: Path, roles: Sequence[str]) -> str:
    out = ["| Variable | Role | Type | Default | Meaning |", "|---|---|---|---|---|"]
    for role in roles:
        for name, option in role_options(root, role).items():
            link = f"[{code(name)}](../roles/{role}/README.md#{anchor(name)})"
            texts = paragraphs(option.get("description"))
            meaning = cell(first_sentence(texts[0])) if texts else ""
            default = cell(default_cell(option))
            out.append(f"| {link} | {role} | {type_cell(option)} | {default} | {meaning} |")
    return "\n".join(out)


def play_var_comments(root: Path) -> dict[str, tuple[int, str]]:
    """For each key of a play's `vars:` in site.yml, the comment above it: (group number, text).

    A comment applies to the keys that follow it, up to a blank line or the next comment."""
    found: dict[str, tuple[int, str]] = {}
    vars_indent: int | None = None  # inside a `vars:` block whose line has this indent
    key_indent: int | None = None
    group, comment = 0, ""
    after_comment = False
    for line in read(root / "playbooks" / "site.yml").splitlines():
        stripped = line.strip()
        depth = len(line) - len(line.lstrip())
        if vars_indent is not None and stripped and depth <= vars_indent and not stripped.startswith("#"):
            vars_indent = None
        if vars_indent is None:
            match = re.match(r"^(\s*)vars:\s*$", line)
            if match:
                vars_indent, key_indent, comment, after_comment = len(match.group(1)), None, "", False
            continue
        if not stripped:
            comment, after_comment = "", False
        elif stripped.startswith("#"):
            if not after_comment:
                group, comment, after_comment = group + 1, "", True
            comment = f"{comment} {stripped.lstrip('#').strip()}".strip()
        else:
            key_indent = depth if key_indent is None else key_indent
            key = re.match(r"^([\w.-]+)\s*:", stripped)
            if depth == key_indent and key and key.group(1) not in found:
                found[key.group(1)] = (group if comment else 0, comment)
            after_comment = False
    return found


def mappings_table(root: Path) -> str:
    comments = play_var_comments(root)
    out = ["| Variable | Set from | Why |", "|---|---|---|"]
    shown: set[int] = set()
    for play in plays(root):
        for name, value in (play.get("vars") or {}).items():
            group, why = comments.get(name, (0, ""))
            if group and group in shown:
                why = "(as above)"
            elif group:
                shown.add(group)
            source = value if isinstance(value, str) else render_value(value)
            out.append(f"| {code(name)} | {cell(code(source))} | {cell(why)} |")
    return "\n".join(out)


# --- markers -------------------------------------------------------------------------------------------


def start_marker(name: str, source: str) -> str:
    return f"<!-- {name}: generated by scripts/role-docs.py from {source}; do not edit -->"


def replace_section(text: str, path: Path, name: str, source: str, body: str) -> str:
    starts = list(re.finditer(rf"^<!-- {re.escape(name)}\b.*-->[ \t]*$", text, re.MULTILINE))
    ends = list(re.finditer(rf"^<!-- /{re.escape(name)} -->[ \t]*$", text, re.MULTILINE))
    if len(starts) != 1 or len(ends) != 1 or ends[0].start() < starts[0].end():
        raise DocsError(
            f"{path}: needs exactly one line starting with '<!-- {name}' and, after it, one line "
            f"'<!-- /{name} -->' around the generated section"
        )
    section = f"{start_marker(name, source)}\n\n{body}\n\n<!-- /{name} -->"
    return text[: starts[0].start()] + section + text[ends[0].end() :]


# --- the whole job -------------------------------------------------------------------------------------


def generate(root: Path) -> dict[Path, str]:
    """Every file this script writes, with its wanted content."""
    roles = role_order(root)
    wanted: dict[Path, str] = {}
    for role in roles:
        path = root / "roles" / role / "README.md"
        text = read(path)
        body = readme_section(role_options(root, role))
        wanted[path] = replace_section(text, path, "role-variables", SOURCES["readme"], body)
    path = root / "docs" / "roles.md"
    text = read(path)
    text = replace_section(text, path, "role-variables", SOURCES["docs"], variables_table(root, roles))
    wanted[path] = replace_section(text, path, "play-mappings", SOURCES["play"], mappings_table(root))
    return wanted


def stale_files(root: Path = ROOT) -> list[str]:
    """The files whose generated sections differ from what generate() makes, relative to root."""
    return [path.relative_to(root).as_posix() for path, text in generate(root).items() if read(path) != text]


def write(root: Path) -> list[str]:
    written = []
    for path, text in generate(root).items():
        if read(path) != text:
            path.write_text(text, encoding="utf-8")
            written.append(path.relative_to(root).as_posix())
    return written


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the role variable docs from the roles' argument specs."
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root = args.root.resolve()
    try:
        if args.check:
            stale = stale_files(root)
            for name in stale:
                print(f"stale: {name}")
            if stale:
                print(f"run {COMMAND} to update them", file=sys.stderr)
            return 1 if stale else 0
        for name in write(root):
            print(f"wrote {name}")
    except DocsError as exc:
        print(f"role-docs: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
