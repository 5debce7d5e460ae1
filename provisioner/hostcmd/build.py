"""Builds: a Dockerfile means `docker build`; otherwise Heroku-style buildpacks in a build container."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import docker, procfile, runtime, stacks, tree
from .settings import Settings

URL_RE = re.compile(r"^(https?://|git://|ssh://|file:///|git@)[^\s'\"\\;|&$`<>]+$")
CA_MOUNT = "/etc/ssl/certs/ca-certificates.crt"
Say = Callable[[str], None]


class BuildError(RuntimeError):
    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


@dataclass
class BuildResult:
    image: str
    kind: str  # "dockerfile" or "buildpacks"
    defaults: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    base: str = ""  # the image of the app's dependencies that `image` is built on, if any


def export_source(repo: Path, sha: str, dest: Path) -> None:
    """The pushed tree, without .git, via `git archive` (works inside the pre-receive quarantine)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "--git-dir", str(repo), "archive", "--format=tar", sha], stdout=subprocess.PIPE
    )
    untar = subprocess.run(
        ["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True, check=False
    )
    if archive.stdout:
        archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise BuildError(f"could not export commit {sha[:12]}")


def docker_root() -> str:
    try:
        return str(docker.api("GET", "/info").get("DockerRootDir") or "/var/lib/docker")
    except docker.DockerError:
        return "/var/lib/docker"


def free_mb(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        st = os.statvfs("/")
    return st.f_bavail * st.f_frsize // (1024 * 1024)


def check_disk(settings: Settings) -> None:
    root = docker_root()
    free = free_mb(root)
    if free < settings.build_min_free_mb:
        raise BuildError(
            f"only {free} MB free in {root}, a build needs at least {settings.build_min_free_mb} MB: "
            "run 'ssh deploy@HOST cleanup' or free disk space"
        )


def failure(what: str, rc: int, tail: list[str]) -> BuildError:
    """A build step failed: say why in words when the reason is known (disk full, killed)."""
    text = "\n".join(tail)
    if "no space left on device" in text.lower():
        return BuildError(
            f"{what}: the host ran out of disk space; run 'ssh deploy@HOST cleanup' or free disk space", text
        )
    if rc in (137, 143, -9, -15):
        return BuildError(f"{what}: the build was killed (exit code {rc}: stopped or out of memory)", text)
    return BuildError(f"{what} (exit code {rc})", text)


def build(
    app: str, version: int, source: Path, config: dict[str, str], settings: Settings, cache: Path, say: Say
) -> BuildResult:
    check_disk(settings)
    tree.regular(source, ".dockerignore")  # the docker CLI reads these two on the host: never through a link
    if tree.regular(source, "Dockerfile"):
        return build_dockerfile(app, version, source, settings, say)
    return build_buildpacks(app, version, source, config, settings, cache, say)


def build_args(settings: Settings) -> list[str]:
    """The proxy settings as build args, by name only: docker takes the values from its environment
    (docker.stream's env), so credentials in a proxy URL never appear on a command line."""
    args: list[str] = []
    for key in settings.proxy_vars():
        args += ["--build-arg", key]
    return args


def build_cpus(settings: Settings) -> float:
    """The CPUs a build may use: receiver_build_cpus, at most the host's."""
    return min(float(settings.build_cpus), float(os.cpu_count() or 1))


def dockerfile_limits(settings: Settings) -> list[str]:
    """Memory and CPUs of a Dockerfile's RUN steps. Docker's classic builder applies them; BuildKit (the
    default from Docker 23) does not, so there only the time limit holds (docs/architecture.md)."""
    cpus = build_cpus(settings)
    return [
        "--memory", settings.build_memory,
        "--cpu-period", "100000",
        "--cpu-quota", str(int(cpus * 100000)),
    ]  # fmt: skip


def build_dockerfile(app: str, version: int, source: Path, settings: Settings, say: Say) -> BuildResult:
    say("-----> Dockerfile app detected")
    image = docker.app_image(app, version)
    argv = ["build", "--pull=false", "-t", image, *dockerfile_limits(settings), *build_args(settings)]
    rc, tail = docker.stream(
        [*argv, str(source)], say, env=settings.proxy_vars(), timeout=settings.build_timeout
    )
    if rc == docker.TIMED_OUT:
        say(f" !     the build ran longer than {settings.build_timeout} s (receiver_build_timeout): stopped")
        rc = -15
    if rc != 0:
        raise failure("docker build failed", rc, tail)
    exposed = sorted(docker.image_config(image).get("ExposedPorts") or {})
    tcp = [int(p.split("/")[0]) for p in exposed if p.endswith("/tcp")]
    return BuildResult(image, "dockerfile", {"web": ""}, tcp[0] if len(tcp) == 1 else None)


# --- buildpacks -------------------------------------------------------------------------------------------


def buildpack_urls(source: Path, config: dict[str, str], file_dir: str = "") -> list[str]:
    """BUILDPACK_URL, else the pushed .buildpacks file: git URLs, file:// ones only under file_dir (the
    operator's receiver_buildpack_file_dir; none when it is empty)."""
    urls: list[str] = []
    if config.get("BUILDPACK_URL"):
        urls = [config["BUILDPACK_URL"].strip()]
    else:
        lines = [ln.strip() for ln in (tree.read(source, ".buildpacks") or "").splitlines()]
        urls = [ln for ln in lines if ln and not ln.startswith("#")]
    for url in urls:
        if not URL_RE.fullmatch(url):
            raise BuildError(
                f"invalid buildpack URL {url!r}: expected an https://, git://, ssh:// or file:/// git URL"
            )
        if url.startswith("file://"):
            local_buildpack(url, file_dir)
    return urls


def local_buildpack(url: str, file_dir: str) -> Path:
    """The path of a file:// buildpack URL, which must lie under file_dir (links resolved): a pusher may not
    name any path the deploy user can read, such as another app's repository or cache."""
    if not file_dir:
        raise BuildError(
            f"buildpack {url}: file:// buildpacks are not allowed on this host; use an https://, git:// or "
            "ssh:// URL (an operator can allow one directory with receiver_buildpack_file_dir)"
        )
    path = Path(os.path.normpath(url.removeprefix("file://").partition("#")[0])).resolve()
    if not path.is_relative_to(Path(file_dir).resolve()):
        raise BuildError(f"buildpack {url}: file:// buildpacks must be under {file_dir} on this host")
    return path


def fetch_buildpack(url: str, cache: Path, say: Say) -> Path:
    repo_url, _, ref = url.partition("#")
    dest = cache / "buildpacks" / hashlib.sha256(url.encode()).hexdigest()[:16]
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    say(f"-----> Fetching buildpack {url}")
    cmd = ["git", "clone", "--quiet", "--depth", "1"]
    if ref:
        cmd += ["--branch", ref]
    # Inside the pre-receive hook git's quarantine variables are set; a clone of another repository must not
    # see them ("ref updates forbidden inside quarantine environment").
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.run(
        [*cmd, "--", repo_url, str(dest)], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["git clone failed"])[-1]
        raise BuildError(f"could not fetch buildpack {url}: {reason}")
    make_executable(dest)
    return dest


def make_executable(pack: Path) -> None:
    """bin/detect, compile and release executable, never through a symbolic link: a link to a file
    outside the buildpack (another app's config) is left alone, one to a file inside it is followed."""
    root = pack.resolve()
    for script in ("detect", "compile", "release"):
        path = pack / "bin" / script
        target = path.resolve() if path.is_symlink() else path
        if not target.is_relative_to(root) or target.is_symlink() or not target.is_file():
            continue
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)


def builtin_buildpacks(settings: Settings) -> list[Path]:
    root = Path(settings.buildpacks_dir)
    order = ["python", "nodejs", "static"]
    found = [root / name for name in order if (root / name / "bin" / "compile").exists()]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in order) if root.is_dir() else []
    return found + others


def container_env(settings: Settings) -> list[str]:
    env = {
        "SSL_CERT_FILE": CA_MOUNT,
        "PIP_CERT": CA_MOUNT,
        "REQUESTS_CA_BUNDLE": CA_MOUNT,
        "NODE_EXTRA_CA_CERTS": CA_MOUNT,
        "npm_config_cafile": CA_MOUNT,
        "HOME": "/tmp",
        "STACK": f"provisioner-{settings.run_image.rpartition(':')[2]}",
    }
    if Path(settings.pip_conf).is_file():
        env["PIP_CONFIG_FILE"] = "/etc/pip.conf"
    args: list[str] = []
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for key in settings.proxy_vars():  # by name: the value comes from docker.stream's env
        args += ["-e", key]
    return args


def limits(settings: Settings) -> list[str]:
    """What a build container may do: no new privileges, no capabilities (it runs as the deploy user),
    and bounded processes, memory and CPUs."""
    cpus = build_cpus(settings)
    return [
        "--security-opt", "no-new-privileges",
        "--cap-drop", "ALL",
        "--pids-limit", str(settings.pids_limit * 4),
        "--memory", settings.build_memory,
        "--cpus", f"{cpus:g}",
    ]  # fmt: skip


# The whole buildpack build runs in one container (one container start instead of one per step): with
# --detect, the first buildpack that detects the app; then compile and release of each. It leaves what
# happened in /out for the host program: which buildpack detected, which one compiled last, each one's
# release output. Exit code 100: no buildpack detected the app.
DRIVER = """#!/bin/sh
set -u
if [ "$1" = --detect ]; then
  shift
  for pack in "$@"; do
    if "$pack/bin/detect" /app >/out/detect 2>&1; then
      echo "$pack" >/out/detected
      label=$(tail -n 1 /out/detect | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')
      echo "-----> ${label:-${pack##*/}} app detected"
      set -- "$pack"
      break
    fi
  done
  [ -f /out/detected ] || exit 100
fi
for pack in "$@"; do
  echo "$pack" >/out/compiling
  "$pack/bin/compile" /app /cache /env || exit $?
  if [ -f "$pack/bin/release" ]; then
    "$pack/bin/release" /app >"/out/release.${pack##*/}" 2>/dev/null || rm -f "/out/release.${pack##*/}"
  fi
done
"""
NO_BUILDPACK = 100


def run_buildpacks(
    packs: list[Path],
    detect: bool,
    src: Path,
    cache: Path,
    envdir: Path,
    out: Path,
    settings: Settings,
    name: str,
    say: Say,
) -> tuple[int, list[str]]:
    """One build container for the DRIVER: each buildpack mounted at /buildpacks/NAME, the app at /app,
    the build cache at /cache, config vars in /env, the DRIVER's report in /out."""
    driver = out.parent / "driver"
    driver.write_text(DRIVER)
    driver.chmod(0o555)
    mounts = ["-v", f"{src}:/app", "-v", f"{cache}:/cache", "-v", f"{envdir}:/env:ro", "-v", f"{out}:/out"]
    mounts += ["-v", f"{driver}:/provisioner-build:ro"]
    for pack in packs:
        mounts += ["-v", f"{pack}:/buildpacks/{pack.name}:ro"]
    if Path(settings.ca_bundle).is_file():
        mounts += ["-v", f"{settings.ca_bundle}:{CA_MOUNT}:ro"]
    groups: list[str] = []
    if Path(settings.pip_conf).is_file():
        mounts += ["-v", f"{settings.pip_conf}:/etc/pip.conf:ro"]
        # root:provisioner 0640 (it may carry index credentials): the build runs with that group too.
        gid = os.stat(settings.pip_conf).st_gid
        if gid not in (0, os.getgid()):
            groups = ["--group-add", str(gid)]
    cmd = [
        "run",
        "--rm",
        "--name",
        name,
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        *groups,
        "--label",
        "io.provisioner.build=1",
        "--workdir",
        "/app",
        *limits(settings),
        *mounts,
        *container_env(settings),
        "--entrypoint",
        "/provisioner-build",
        settings.build_image,
        *(["--detect"] if detect else []),
        *(f"/buildpacks/{pack.name}" for pack in packs),
    ]
    # A build that runs too long is killed (docker kill): it then fails as killed, with the reason.
    timer = threading.Timer(settings.build_timeout, _kill, args=(name, settings.build_timeout, say))
    timer.daemon = True
    timer.start()
    try:
        return docker.stream(cmd, say, env=settings.proxy_vars())
    finally:
        timer.cancel()


def _kill(name: str, seconds: int, say: Say) -> None:
    say(f" !     the build ran longer than {seconds} s (receiver_build_timeout): stopping it")
    subprocess.run(["docker", "kill", name], capture_output=True, check=False)


PYTHON_FILES = (
    "requirements.txt",
    "pyproject.toml",
    "setup.py",
    "Pipfile",
    "Pipfile.lock",
    "uv.lock",
    "poetry.lock",
    ".python-version",
    "runtime.txt",
)


def choose_stack(source: Path, settings: Settings, say: Say) -> runtime.Stack:
    """The stack whose Python and Node.js meet what the app asks for, built first if it is not yet (then
    its real versions decide again); the build log says which stack, which versions and why."""
    languages = [
        lang
        for lang, files in (("python", PYTHON_FILES), ("node", ("package.json",)))
        if any((source / f).exists() for f in files)
    ]
    tried: set[str] = set()
    while True:
        try:
            choice = runtime.choose(source, stacks.offered(settings), languages)
        except runtime.RuntimeRefused as exc:
            raise BuildError(str(exc)) from None
        if choice.stack.built:
            break
        if choice.stack.name in tried:
            raise BuildError(f"stack {choice.stack.name} was built but is still missing")
        tried.add(choice.stack.name)
        try:
            stacks.build(choice.stack, settings, say)
        except stacks.StackBuildFailed as exc:
            raise BuildError(str(exc)) from None
    for line in choice.lines:
        say(f"-----> {line}")
    return choice.stack


# Where buildpacks put an app's dependencies. They become an image of their own, which the app image is
# built on and which later builds reuse while the directories are unchanged: a code-only push then sends
# and stores only the code, not the virtualenv or node_modules again.
DEPENDENCY_DIRS = (".venv", "node_modules", ".heroku")


def tree_signature(roots: list[tuple[str, Path]]) -> str:
    """A digest of the names, types, modes, sizes, mtimes and link targets under these directories (each
    under its name): what make and git's index judge a file unchanged by (the buildpacks keep a reused
    virtualenv's files as they were: cp -a, or a link to the cache)."""
    digest = hashlib.sha256()
    stack = [(root, name) for name, root in reversed(roots)]
    while stack:
        path, rel = stack.pop()
        entries = sorted(os.scandir(path), key=lambda e: e.name, reverse=True)
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            name = f"{rel}/{entry.name}"
            target = os.readlink(entry.path) if entry.is_symlink() else ""
            digest.update(f"{name}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0{target}\n".encode())
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), name))
    return digest.hexdigest()


def image_layer(context: Path, base: str, tag: str) -> None:
    """Build `tag`: `base` with the context's app/ as /app, owned by the app's user (1000), which the image
    runs as."""
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY --chown=1000:1000 app/ /app/\nUSER 1000\nWORKDIR /app\n"
    )
    rc, tail = docker.stream(["build", "--pull=false", "-q", "-t", tag, str(context)], lambda _l: None)
    if rc != 0:
        raise failure("building the app image failed", rc, tail)


def dependency_dirs(source: Path, cache: Path) -> list[tuple[str, Path]]:
    """The app's dependency directories (DEPENDENCY_DIRS) as (name, where they are on the host): in the
    built tree, or in the build cache, where a buildpack may link one it reused (a link to
    /cache/..., the build container's name for `cache`). A link anywhere else is not followed."""
    found: list[tuple[str, Path]] = []
    for name in DEPENDENCY_DIRS:
        path = source / name
        if path.is_symlink():
            target = os.readlink(path)
            if not target.startswith("/cache/"):
                continue
            real = (cache / target.removeprefix("/cache/")).resolve()
            if real.is_relative_to(cache.resolve()) and real.is_dir():
                found.append((name, real))
        elif path.is_dir():
            found.append((name, path))
    return found


def dependency_image(app: str, source: Path, cache: Path, work: Path, settings: Settings, say: Say) -> str:
    """The image the app image is built on: the run image, or an image of the app's dependency
    directories on it (DEPENDENCY_DIRS), made when they changed and reused while they did not."""
    found = dependency_dirs(source, cache)
    if not found:
        return settings.run_image
    run_id = docker.image_id(settings.run_image)
    signature = hashlib.sha256(f"{run_id}\n{tree_signature(found)}".encode()).hexdigest()
    tag = docker.deps_image(app, signature[:20])
    if docker.image_exists(tag):
        say(f"       Dependencies unchanged: reusing their image layer ({', '.join(n for n, _ in found)})")
        return tag
    deps = work / "deps" / "app"
    deps.mkdir(parents=True)
    for name, path in found:
        if path.parent == source:
            path.rename(deps / name)  # the same file system: nothing is copied
        else:
            shutil.copytree(path, deps / name, symlinks=True)  # from the cache, where it stays
    try:
        image_layer(work / "deps", settings.run_image, tag)
    finally:
        for name, path in found:
            if path.parent == source:
                (deps / name).rename(path)
    return tag


def build_buildpacks(
    app: str, version: int, source: Path, config: dict[str, str], settings: Settings, cache: Path, say: Say
) -> BuildResult:
    if not docker.image_exists(settings.build_image):
        raise BuildError(
            f"the build image {settings.build_image} is missing: run 'provisioner up' on this host"
        )
    urls = buildpack_urls(source, config, settings.buildpack_file_dir)
    if not urls:  # custom buildpacks bring their own runtimes
        stack = choose_stack(source, settings, say)
        settings = dataclasses.replace(settings, build_image=stack.build_image, run_image=stack.run_image)
    packs = [fetch_buildpack(u, cache, say) for u in urls] if urls else builtin_buildpacks(settings)
    work = Path(tempfile.mkdtemp(prefix=f"provisioner-env-{app}-"))
    try:
        envdir = work / "env"
        envdir.mkdir(mode=0o700)
        for key, value in config.items():
            (envdir / key).write_text(value)
        layer = cache / "layers"
        layer.mkdir(parents=True, exist_ok=True)
        out = work / "out"
        out.mkdir()
        name = f"{app}.build.v{version}"
        rc, tail = run_buildpacks(packs, not urls, source, layer, envdir, out, settings, name, say)
        if not urls and rc == NO_BUILDPACK and tree.read(out, "detected") is None:
            raise BuildError(
                "no buildpack detected this app: add requirements.txt, package.json, index.html "
                "or a Dockerfile, or set BUILDPACK_URL"
            )
        by_mount = {f"/buildpacks/{pack.name}": pack for pack in packs}
        compiled = by_mount.get((tree.read(out, "compiling") or "").strip()) or packs[0]
        if rc != 0:
            raise failure(f"buildpack {compiled.name} failed to compile the app", rc, tail)
        defaults: dict[str, str] = {}
        for pack in packs:
            defaults.update(procfile.parse_release_yaml(tree.read(out, f"release.{pack.name}") or ""))
        image = docker.app_image(app, version)
        say("-----> Building the app image")
        base = dependency_image(app, source, layer, work, settings, say)
        code = work / "context"
        code.mkdir()
        shutil.copytree(  # the code only: the dependencies are in the base image
            source,
            code / "app",
            symlinks=True,
            ignore=lambda d, names: [n for n in names if n in DEPENDENCY_DIRS] if Path(d) == source else [],
        )
        image_layer(code, base, image)
        deps = base if base != settings.run_image else ""
        return BuildResult(image, "buildpacks", defaults, settings.container_port, deps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
