"""The catalog of stacks, a stack built on first use, and the stack builder's pure parts."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from provisioner.hostcmd import build, runtime, stacks
from provisioner.hostcmd.settings import Settings

BUILDER = Path(__file__).parents[3] / "roles/buildpacks/files/usr/local/sbin/provisioner-stack"


def load_builder():
    loader = importlib.machinery.SourceFileLoader("provisioner_stack", str(BUILDER))
    spec = importlib.util.spec_from_loader("provisioner_stack", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


CATALOG = {
    "default": "bookworm",
    "ahead": ["bookworm"],
    "run_repository": "provisioner/stack-run",
    "build_repository": "provisioner/stack-build",
    "stacks": [
        {"name": "bookworm", "distribution": "debian", "python": "3.11", "node": "18"},
        {"name": "noble", "distribution": "ubuntu", "python": "3.12", "node": "18"},
        {"name": "trixie", "distribution": "debian", "python": "3.13", "node": "20"},
        {"name": "forky", "distribution": "debian", "python": "3.14", "node": "24"},
    ],
}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A catalog file, and build images: bookworm and trixie built (labels), the others not."""
    path = tmp_path / "stacks.json"
    path.write_text(json.dumps(CATALOG))
    images = {
        "provisioner/stack-build:bookworm": {
            "io.provisioner.stack": "bookworm",
            "io.provisioner.python": "3.11.2",
            "io.provisioner.node": "18.19.0",
        },
        "provisioner/stack-build:trixie": {
            "io.provisioner.stack": "trixie",
            "io.provisioner.python": "3.13.5",
            "io.provisioner.node": "20.19.2",
        },
    }

    def image_config(ref):
        if ref not in images:
            raise stacks.docker.DockerError(f"no such image: {ref}")
        return {"Labels": images[ref]}

    monkeypatch.setattr(stacks.docker, "image_config", image_config)
    settings = Settings(stacks_file=str(path), proxy_env=str(tmp_path / "none"))
    return settings, images


def test_the_stacks_offered_default_first_then_built_then_to_build(host):
    settings, _ = host
    offered = stacks.offered(settings)
    assert [(s.name, s.built, s.ahead) for s in offered] == [
        ("bookworm", True, True),
        ("trixie", True, False),
        ("noble", False, False),
        ("forky", False, False),
    ]
    assert offered[1].versions == {"python": "3.13.5", "node": "20.19.2"}  # the image's labels
    assert offered[3].versions == {"python": "3.14", "node": "24"}  # what the catalog expects
    assert offered[3].run_image == "provisioner/stack-run:forky"


def test_no_catalog_means_only_the_default_stack(host, tmp_path):
    settings, _ = host
    offered = stacks.offered(Settings(stacks_file=str(tmp_path / "missing.json")))
    assert [s.name for s in offered] == ["bookworm"] and settings


def test_a_stack_not_built_yet_is_built_through_sudo_then_chosen(host, tmp_path, monkeypatch):
    settings, images = host
    (tmp_path / ".python-version").write_text("3.14\n")
    calls = []

    class Builder:
        def __init__(self, argv, **kwargs):
            calls.append(argv)
            images["provisioner/stack-build:forky"] = {
                "io.provisioner.stack": "forky",
                "io.provisioner.python": "3.14.8",
                "io.provisioner.node": "24.11.1",
            }
            self.stdout = iter(["-----> Stack forky: bootstrapping\n", "stack forky built in 80 s\n"])

        def wait(self):
            return 0

    monkeypatch.setattr(stacks.subprocess, "Popen", Builder)
    said: list[str] = []
    chosen = build.choose_stack(tmp_path, settings, said.append)
    assert calls == [["sudo", "-n", "/usr/local/sbin/provisioner-stack", "build", "forky"]]
    assert chosen.name == "forky" and chosen.build_image == "provisioner/stack-build:forky"
    assert said == [
        "-----> Building stack forky, once: apps that need it later start at once",
        "-----> Stack forky: bootstrapping",
        "       stack forky built in 80 s",
        "-----> Python 3.14.8 (stack forky): .python-version asks for 3.14",
    ]


def test_a_failed_stack_build_is_one_clear_line(host, tmp_path, monkeypatch):
    settings, _ = host
    (tmp_path / "runtime.txt").write_text("python-3.12\n")

    class Builder:
        def __init__(self, argv, **kwargs):
            self.stdout = iter(
                [
                    "-----> Stack noble: bootstrapping\n",
                    "provisioner-stack: debootstrap failed (exit code 1)\n",
                ]
            )

        def wait(self):
            return 1

    monkeypatch.setattr(stacks.subprocess, "Popen", Builder)
    with pytest.raises(build.BuildError) as exc:
        build.choose_stack(tmp_path, settings, lambda _l: None)
    assert str(exc.value) == "could not build stack noble: debootstrap failed (exit code 1)"


def test_a_request_no_stack_meets_names_what_the_catalog_offers(host, tmp_path):
    settings, _ = host
    (tmp_path / "package.json").write_text('{"engines": {"node": "12.x"}}')
    with pytest.raises(build.BuildError) as exc:
        build.choose_stack(tmp_path, settings, lambda _l: None)
    assert str(exc.value) == (
        "Node.js 12.x (package.json engines.node) is not offered by this host: it has Node.js 18.19.0 (stack "
        "bookworm), Node.js 20.19.2 (stack trixie), Node.js 18 (stack noble, built on first use), Node.js 24 "
        "(stack forky, built on first use)"
    )


# --- the builder (roles/buildpacks/files/usr/local/sbin/provisioner-stack) ---------------------------------


NOBLE = {
    "name": "noble",
    "distribution": "ubuntu",
    "mirror": "http://archive.ubuntu.com/ubuntu",
    "security_mirror": "http://security.ubuntu.com/ubuntu",
    "components": ["main", "universe"],
}


def test_builder_sources():
    noble = NOBLE
    builder = load_builder()
    assert builder.sources(noble).splitlines()[1:] == [
        "deb http://archive.ubuntu.com/ubuntu noble main universe",
        "deb http://archive.ubuntu.com/ubuntu noble-updates main universe",
        "deb http://security.ubuntu.com/ubuntu noble-security main universe",
    ]
    assert builder.sources({**noble, "security_mirror": ""}).count("deb ") == 2


def mmdebstrap_argv(builder, tmp_path, monkeypatch, stack, keyrings):
    """The mmdebstrap command prepared() runs for stack (stopped there)."""
    launcher = tmp_path / "launch"
    launcher.write_text("#!/bin/sh\n")
    catalog = {
        **CATALOG,
        "workdir": str(tmp_path / "work"),
        "launcher": str(launcher),
        "run_packages": ["python3", "nodejs"],
        "build_packages": ["git"],
        "keyrings": keyrings,
    }
    steps: list[list[str]] = []

    def run(argv, **kwargs):
        steps.append(argv)
        raise builder.StackError("stop here")

    monkeypatch.setattr(builder, "run", run)
    with pytest.raises(builder.StackError, match="stop here"):
        builder.prepared(catalog, stack)
    return steps[0]


def test_builder_bootstraps_the_release_with_its_updates_in_one_mmdebstrap_run(tmp_path, monkeypatch):
    builder = load_builder()
    noble = NOBLE
    argv = mmdebstrap_argv(builder, tmp_path, monkeypatch, noble, {"ubuntu": "/k/ubuntu.gpg"})
    assert argv[:3] == ["mmdebstrap", "--mode=root", "--variant=minbase"]
    assert "--include=python3,nodejs,apt,ubuntu-keyring" in argv and "--keyring=/k/ubuntu.gpg" in argv
    assert argv[-5:] == ["noble", str(tmp_path / "work" / "noble"), *builder.sources(noble).splitlines()[1:]]
    assert not any("Check-Valid-Until" in a for a in argv)
    forky = {"name": "forky", "distribution": "debian", "mirror": "http://m", "check_valid_until": False}
    argv = mmdebstrap_argv(builder, tmp_path, monkeypatch, forky, {"ubuntu": "/k/ubuntu.gpg"})
    assert "--include=python3,nodejs,apt,debian-archive-keyring" in argv
    assert '--aptopt=Acquire::Check-Valid-Until "false"' in argv
    assert "--keyring=/k/ubuntu.gpg" not in argv


@pytest.mark.parametrize("name", ["../etc", "Forky", "forky;id", "", "-x", "a" * 40, "forky\n"])
def test_builder_refuses_names_not_in_its_catalog(name):
    builder = load_builder()
    with pytest.raises(builder.StackError):
        builder.find(CATALOG, name)
    with pytest.raises(builder.StackError, match="no stack 'sid'"):
        builder.find(CATALOG, "sid")


def test_builder_recipe_changes_with_what_the_image_is_made_of_only(tmp_path):
    builder = load_builder()
    launcher = tmp_path / "launch"
    launcher.write_text("#!/bin/sh\n")
    catalog = {**CATALOG, "launcher": str(launcher), "run_packages": ["python3"], "build_packages": ["git"]}
    stack = {"name": "forky", "distribution": "debian", "mirror": "http://m", "python": "3.14", "node": "24"}
    run, build_ = builder.recipes(catalog, stack)
    assert builder.recipes(catalog, {**stack, "python": "3.15"}) == (run, build_)  # expectations only
    assert builder.recipes(catalog, {**stack, "mirror": "http://other"})[0] != run
    assert builder.recipes({**catalog, "build_packages": ["git", "curl"]}, stack) == (
        run,
        builder.recipes({**catalog, "build_packages": ["git", "curl"]}, stack)[1],
    )
    assert builder.recipes({**catalog, "build_packages": ["git", "curl"]}, stack)[1] != build_
    launcher.write_text("#!/bin/sh\nexec true\n")
    assert builder.recipes(catalog, stack)[0] != run


def test_builder_usage_and_root_only(capsys):
    builder = load_builder()
    assert builder.main([]) == 2
    assert builder.main(["build"]) == 2
    assert builder.main(["build", "forky", "--yes"]) == 2
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        assert builder.main(["build", "forky"]) == 1
    assert "usage: provisioner-stack" in capsys.readouterr().err
    assert runtime.LANGUAGES  # the labels the builder writes are the languages the host program reads


def test_builder_reuses_a_prepared_root_only_with_its_stamp(tmp_path, monkeypatch, capsys):
    """`up` prepares in the background and `build` imports: a complete preparation (its stamp, written last,
    names the same recipe) is used as it is; anything else is made again."""
    builder = load_builder()
    launcher = tmp_path / "launch"
    launcher.write_text("#!/bin/sh\n")
    catalog = {
        **CATALOG,
        "workdir": str(tmp_path / "work"),
        "launcher": str(launcher),
        "run_packages": ["python3"],
        "build_packages": ["git"],
    }
    stack = {"name": "forky", "distribution": "debian", "mirror": "http://m"}
    (tmp_path / "work" / "forky").mkdir(parents=True)
    stamp = tmp_path / "work" / "forky.prepared"
    recipe = builder.recipes(catalog, stack)[0]
    stamp.write_text(json.dumps({"recipe": recipe, "versions": ["python 3.14.8", "node 24.11.1"]}))
    steps: list[list[str]] = []

    def run(argv, **kwargs):
        steps.append(argv)
        raise builder.StackError("stop here")

    monkeypatch.setattr(builder, "run", run)
    assert builder.prepared(catalog, stack) == ["python 3.14.8", "node 24.11.1"] and steps == []
    stamp.write_text(json.dumps({"recipe": "another", "versions": []}))
    with pytest.raises(builder.StackError, match="stop here"):
        builder.prepared(catalog, stack)
    assert steps[0][0] == "mmdebstrap" and not stamp.exists()
    assert not (tmp_path / "work" / "forky").exists()  # the half-made root is removed
