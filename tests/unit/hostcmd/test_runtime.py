"""Which Python and Node.js an app asks for, and which stack gives them (pure: files in tmp_path)."""

import dataclasses

import pytest

from provisioner.hostcmd import runtime

BOOKWORM = runtime.Stack(
    "bookworm", "run:bookworm", "build:bookworm", {"python": "3.11.2", "node": "18.19.0"}
)
TRIXIE = runtime.Stack(
    "trixie", "run:trixie", "build:trixie", {"python": "3.13.5", "node": "20.19.2"}, built=True, ahead=False
)
FORKY = runtime.Stack(
    "forky", "run:forky", "build:forky", {"python": "3.14", "node": "24"}, built=False, ahead=False
)


@pytest.mark.parametrize(
    ("spec", "yes", "no"),
    [
        (">=22", ["22.0.0", "24.1.0"], ["20.19.2", "18.19.0"]),
        ("20.x", ["20.0.0", "20.19.2"], ["21.0.0", "18.19.0"]),
        ("^24", ["24.0.0", "24.9.1"], ["25.0.0", "23.9.9"]),
        ("~20.1", ["20.1.0", "20.1.9"], ["20.2.0"]),
        ("~20.1.3", ["20.1.3"], ["20.1.2", "20.2.0"]),
        ("18 || 20", ["18.19.0", "20.1.0"], ["22.0.0"]),
        (">=18 <21", ["18.0.0", "20.99.0"], ["21.0.0", "16.0.0"]),
        (">= 18.0.0", ["18.0.0"], ["17.9.9"]),
        (">20", ["21.0.0"], ["20.9.9"]),
        ("<=20", ["20.9.9"], ["21.0.0"]),
        ("<20.1.2", ["20.1.1"], ["20.1.2"]),
        ("16 - 20", ["16.0.0", "20.9.0"], ["21.0.0", "15.0.0"]),
        ("=18.19.0", ["18.19.0"], ["18.19.1"]),
        ("v20", ["20.0.1"], ["19.0.0"]),
        ("*", ["0.1.0", "24.0.0"], []),
        ("lts/*", ["24.0.0"], []),
        ("^0.2.3", ["0.2.9"], ["0.3.0"]),
    ],
)
def test_npm_ranges(spec, yes, no):
    test = runtime.semver_range(spec)
    assert [v for v in yes if not test(v)] == [] and [v for v in no if test(v)] == [], spec


@pytest.mark.parametrize(
    ("spec", "yes", "no"),
    [
        (">=3.9", ["3.9.0", "3.14.2"], ["3.8.19"]),
        (">=3.10,<3.13", ["3.10.1", "3.12.9"], ["3.13.0", "3.9.9"]),
        ("~=3.11", ["3.11.0", "3.13.1"], ["3.10.9", "4.0.0"]),
        ("~=3.11.2", ["3.11.2", "3.11.9"], ["3.12.0", "3.11.1"]),
        ("==3.12.*", ["3.12.0", "3.12.7"], ["3.13.0"]),
        ("!=3.12.*, >=3.11", ["3.11.2", "3.13.0"], ["3.12.1"]),
        ("==3.11", ["3.11.0"], ["3.11.2"]),
    ],
)
def test_requires_python(spec, yes, no):
    test = runtime.pep440(spec)
    assert [v for v in yes if not test(v)] == [] and [v for v in no if test(v)] == [], spec


@pytest.mark.parametrize("spec", ["3.11", "3.11.9", "python-3.11.2"])
def test_python_version_file_matches_major_minor(tmp_path, spec):
    (tmp_path / ".python-version").write_text(f"# comment\n{spec}\n")
    request = runtime.python_request(tmp_path)
    assert request.source == ".python-version" and request.matches("3.11.2") and not request.matches("3.12.0")


def test_heroku_order_python_version_then_runtime_txt_then_requires_python(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.12"\n')
    assert runtime.python_request(tmp_path).source == "pyproject.toml requires-python"
    (tmp_path / "runtime.txt").write_text("python-3.13.1\n")
    assert runtime.python_request(tmp_path).spec == "3.13.1"
    (tmp_path / ".python-version").write_text("3.14\n")
    assert runtime.python_request(tmp_path).source == ".python-version"


def test_no_request_means_the_default_stack(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    choice = runtime.choose(tmp_path, [BOOKWORM, TRIXIE, FORKY], ["python"])
    assert choice.stack is BOOKWORM
    assert choice.lines == [
        "Python 3.11.2 (stack bookworm): the default (no .python-version, runtime.txt or requires-python)"
    ]


def test_no_request_means_the_newest_of_the_stacks_built_ahead(tmp_path):
    (tmp_path / "package.json").write_text("{}")
    ahead = dataclasses.replace(TRIXIE, ahead=True)
    choice = runtime.choose(tmp_path, [BOOKWORM, ahead, FORKY], ["node"])
    assert choice.stack is ahead
    assert choice.lines == ["Node.js 20.19.2 (stack trixie): the default (no engines.node in package.json)"]


def test_a_stack_not_built_yet_is_chosen_when_only_it_meets_the_request(tmp_path):
    (tmp_path / ".python-version").write_text("3.14\n")
    choice = runtime.choose(tmp_path, [BOOKWORM, TRIXIE, FORKY], ["python"])
    assert choice.stack is FORKY
    assert choice.lines == ["Python 3.14 (stack forky, built on first use): .python-version asks for 3.14"]


def test_the_refusal_names_the_stacks_not_built_yet_too(tmp_path):
    (tmp_path / ".python-version").write_text("3.8\n")
    with pytest.raises(runtime.RuntimeRefused) as exc:
        runtime.choose(tmp_path, [BOOKWORM, TRIXIE, FORKY], ["python"])
    assert str(exc.value) == (
        "Python 3.8 (.python-version) is not offered by this host: it has Python 3.11.2 (stack bookworm), "
        "Python 3.13.5 (stack trixie), Python 3.14 (stack forky, built on first use)"
    )


def test_the_first_stack_that_meets_every_request(tmp_path):
    (tmp_path / ".python-version").write_text("3.13\n")
    (tmp_path / "package.json").write_text('{"engines": {"node": ">=20"}}')
    choice = runtime.choose(tmp_path, [BOOKWORM, TRIXIE], ["python", "node"])
    assert choice.stack is TRIXIE
    assert choice.lines == [
        "Python 3.13.5 (stack trixie): .python-version asks for 3.13",
        "Node.js 20.19.2 (stack trixie): package.json engines.node asks for >=20",
    ]


def test_what_no_stack_offers_is_refused_naming_what_the_host_has(tmp_path):
    (tmp_path / "runtime.txt").write_text("python-3.8.18\n")
    with pytest.raises(runtime.RuntimeRefused) as info:
        runtime.choose(tmp_path, [BOOKWORM, TRIXIE], ["python"])
    assert str(info.value) == (
        "Python 3.8.18 (runtime.txt) is not offered by this host: it has Python 3.11.2 (stack bookworm), "
        "Python 3.13.5 (stack trixie)"
    )


def test_requests_each_met_but_not_by_one_stack(tmp_path):
    (tmp_path / ".python-version").write_text("3.13\n")
    (tmp_path / "package.json").write_text('{"engines": {"node": "18.x"}}')
    with pytest.raises(runtime.RuntimeRefused, match=r"^no stack of this host has Python 3\.13"):
        runtime.choose(tmp_path, [BOOKWORM, TRIXIE], ["python", "node"])


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        (".python-version", "latest\n", "expected a version"),
        (".python-version", "3\n", "at least major.minor"),
        ("runtime.txt", "ruby-3.3\n", "expected python-X.Y"),
        ("pyproject.toml", "[project\n", "not valid TOML"),
        ("pyproject.toml", '[project]\nrequires-python = ">=3.9; os"\n', "cannot read"),
        ("package.json", "{", "not valid JSON"),
        ("package.json", '{"engines": {"node": ">=abc"}}', "cannot read"),
    ],
)
def test_unreadable_requests_are_one_clear_line(tmp_path, name, content, words):
    (tmp_path / name).write_text(content)
    with pytest.raises(runtime.RuntimeRefused, match=words):
        runtime.choose(tmp_path, [BOOKWORM], ["python", "node"])


def test_a_symlinked_runtime_file_is_never_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("3.11\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / ".python-version").symlink_to(secret)
    with pytest.raises(runtime.RuntimeRefused, match="symbolic link"):
        runtime.python_request(app)


def test_stacks_from_image_labels():
    labels = {"io.provisioner.stack": "trixie", "io.provisioner.python": "3.13.5"}
    stack = runtime.stack_of("provisioner/stack-build:trixie", labels, "provisioner/stack-run:trixie")
    assert stack == runtime.Stack(
        "trixie", "provisioner/stack-run:trixie", "provisioner/stack-build:trixie", {"python": "3.13.5"}
    )
    # an image without labels (built before they existed): no versions known, nothing refused
    assert runtime.stack_of("b:bookworm", {}, "r:bookworm").versions == {}
