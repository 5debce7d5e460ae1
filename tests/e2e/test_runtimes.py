"""Real apps deploy unmodified: the Python and Node.js versions they ask for, their package managers.

The stacks other than the default (Ubuntu 24.04, Debian 13, Debian forky) are built on the host the first
time an app needs them. The first pushes go at once, as several developers would push: two of them need the
same stack (forky), so one builds it and the other waits for that build instead of starting its own.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import record_figure
from tests.e2e.conftest import app_host, get, pushed_ok, root_exec

# app name -> (sample in tests/e2e/apps, the stack it must land on)
FIRST = {
    "dj6": ("django6", "forky"),
    "pnpm22": ("node22pnpm", "forky"),
    "uvapp": ("uvapp", "trixie"),
    "yarn20": ("node20yarn", "trixie"),
    "py312": ("py312", "noble"),
}


@pytest.fixture(scope="module")
def first_pushes(deploy_box, dev):
    """The first push of each app, all at once (the stacks' build times become a figure of the run)."""
    repos = {app: dev.repo(app, sample) for app, (sample, _) in FIRST.items()}
    started = time.monotonic()
    with ThreadPoolExecutor(len(FIRST)) as pool:
        results = dict(zip(FIRST, pool.map(lambda app: dev.push(repos[app], app), FIRST), strict=True))
    logs = "".join(result.stderr for result in results.values())
    built = sorted(set(re.findall(r"stack (\w+) built in (\d+) s", logs)))
    record_figure(
        "stacks on first use",
        f"built {', '.join(f'{name} in {secs} s' for name, secs in built)}; the {len(FIRST)} concurrent "
        f"first pushes took {time.monotonic() - started:.0f} s",
    )
    return results


def test_each_stack_is_built_once_on_first_use_with_its_progress_in_the_push(first_pushes):
    for app, result in first_pushes.items():
        pushed_ok(result, app)
    for stack in ("forky", "trixie", "noble"):
        pushes = [first_pushes[app].stderr for app, (_, s) in FIRST.items() if s == stack]
        built = [log for log in pushes if f"Stack {stack}: bootstrapping" in log]
        assert len(built) == 1, (stack, pushes)
        assert f"Stack {stack}: importing the run image" in built[0] and f"stack {stack} built in" in built[0]
        for log in pushes:
            if log is not built[0]:  # waited for the other push's build, then used it
                assert f"stack {stack} is up to date" in log, log


def test_cleanup_keeps_the_stacks(deploy_box, dev, first_pushes):
    assert dev.ssh("cleanup").returncode == 0
    for stack in ("bookworm", "noble", "trixie", "forky"):
        out = root_exec(deploy_box, f"docker image inspect -f '{{{{.Id}}}}' provisioner/stack-build:{stack}")
        assert out.strip().startswith("sha256:"), (stack, out)


def test_django_6_on_python_3_14_serves_its_page_and_a_hashed_static_file(deploy_box, first_pushes):
    """Heroku's getting-started shape: .python-version 3.14, Django 6, whitenoise's manifest storage,
    gunicorn on [::]:$PORT, ALLOWED_HOSTS from DYNO."""
    log = first_pushes["dj6"].stderr
    assert re.search(r"Python 3\.14\.\d+ \(stack forky\): \.python-version asks for 3\.14", log), log
    assert "Running manage.py collectstatic" in log
    status, page = get(deploy_box, app_host("dj6"))
    assert status == 200 and re.search(r"django 6\.\d+\.\d+ on python 3\.14 web\.1", page), page
    css = re.search(r'href="(/static/[\w/]+\.[0-9a-f]{12}\.css)"', page)
    assert css, page
    status, body = get(deploy_box, app_host("dj6"), css.group(1))
    assert status == 200 and "{" in body, body


@pytest.mark.parametrize(
    ("app", "source", "version"),
    [("py312", "runtime.txt asks for 3.12", "3.12"), ("uvapp", "pyproject.toml requires-python", "3.13")],
)
def test_apps_run_on_the_python_they_pin(deploy_box, first_pushes, app, source, version):
    log = first_pushes[app].stderr
    assert re.search(rf"Python {re.escape(version)}\.\d+ \(stack \w+\): {re.escape(source)}", log), log
    status, page = get(deploy_box, app_host(app))
    assert status == 200 and re.search(rf"on python {re.escape(version)}\.\d+", page), page


def test_uv_app_installs_with_uv_from_its_lock_file(first_pushes):
    assert re.search(r"Installing Python dependencies with uv \S+ \(uv\.lock\)", first_pushes["uvapp"].stderr)


@pytest.mark.parametrize(
    ("app", "manager", "lock", "node"),
    [("pnpm22", "pnpm", "pnpm-lock.yaml", "24"), ("yarn20", "yarn", "yarn.lock", "20")],
)
def test_node_apps_run_on_a_matching_node_with_their_package_manager(
    deploy_box, first_pushes, app, manager, lock, node
):
    log = first_pushes[app].stderr
    assert re.search(
        rf"Node\.js {node}\.\d+\.\d+ \(stack \w+\): package\.json engines\.node asks for", log
    ), log
    assert re.search(rf"Installing Node\.js dependencies with {manager} \S+ \({re.escape(lock)}\)", log), log
    status, page = get(deploy_box, app_host(app))
    assert status == 200 and re.search(rf"{manager} app on node {node}\.\d+\.\d+", page), page


@pytest.mark.parametrize(
    ("app", "sample", "lock", "page"),
    [
        ("poetryapp", "poetryapp", "poetry.lock", r"poetry app on python 3\.11\.\d+"),
        ("pipenvapp", "pipenvapp", "Pipfile.lock", r"pipenv app on python 3\.11\.\d+"),
    ],
)
def test_a_redeploy_with_an_unchanged_lock_file_skips_the_install(deploy_box, dev, app, sample, lock, page):
    repo = dev.repo(app, sample)
    first = dev.push(repo, app)
    pushed_ok(first, app)
    manager = {"poetry.lock": "Poetry", "Pipfile.lock": "Pipenv"}[lock]
    assert re.search(
        rf"Installing Python dependencies with {manager} \S+ \({re.escape(lock)}\)", first.stderr
    )
    assert re.search(r"Python 3\.11\.\d+ \(stack bookworm\): ", first.stderr), first.stderr
    if app == "poetryapp":  # pinned
        assert ".python-version asks for 3.11" in first.stderr, first.stderr
    status, body = get(deploy_box, app_host(app))
    assert status == 200 and re.search(page, body), body
    # a code change only: the virtualenv of the first build is reused, the install step does not run
    app_py = repo / "app.py"
    app_py.write_text(app_py.read_text().replace(" on python", " (v2) on python"))
    dev.commit(repo, "code only")
    second = dev.push(repo, app)
    pushed_ok(second, app)
    assert f"Reusing the cached virtualenv ({lock} unchanged)" in second.stderr, second.stderr
    assert "Installing dependencies" not in second.stderr and "Collecting" not in second.stderr, second.stderr
    status, body = get(deploy_box, app_host(app))
    assert status == 200 and "(v2) on python 3.11." in body, body
