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


def dockerfile_limits(settings: Settings) -> list[str]:
    """Memory and CPUs of a Dockerfile's RUN steps. Docker's classic builder applies them; BuildKit (the
    default from Docker 23) does not, so there only the time limit holds (docs/architecture.md)."""
    cpus = min(float(settings.build_cpus), float(os.cpu_count() or 1))
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
    cpus = min(float(settings.build_cpus), float(os.cpu_count() or 1))
    return [
        "--security-opt", "no-new-privileges",
        "--cap-drop", "ALL",
        "--pids-limit", str(settings.pids_limit * 4),
        "--memory", settings.build_memory,
        "--cpus", f"{cpus:g}",
    ]  # fmt: skip


def run_buildpack(
    script: str,
    buildpack: Path,
    src: Path,
    cache: Path,
    envdir: Path,
    settings: Settings,
    name: str,
    say: Say,
) -> tuple[int, list[str]]:
    mounts = [
        "-v",
        f"{src}:/app",
        "-v",
        f"{cache}:/cache",
        "-v",
        f"{envdir}:/env:ro",
        "-v",
        f"{buildpack}:/buildpack:ro",
    ]
    if Path(settings.ca_bundle).is_file():
        mounts += ["-v", f"{settings.ca_bundle}:{CA_MOUNT}:ro"]
    groups: list[str] = []
    if Path(settings.pip_conf).is_file():
        mounts += ["-v", f"{settings.pip_conf}:/etc/pip.conf:ro"]
        # root:provisioner 0640 (it may carry index credentials): the build runs with that group too.
        gid = os.stat(settings.pip_conf).st_gid
        if gid not in (0, os.getgid()):
            groups = ["--group-add", str(gid)]
    args = {"detect": ["/app"], "compile": ["/app", "/cache", "/env"], "release": ["/app"]}[script]
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
        f"/buildpack/bin/{script}",
        settings.build_image,
        *args,
    ]
    # A build that runs too long is killed (docker kill): its step then fails as killed, with the reason.
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
        name = f"{app}.build.v{version}"
        if not urls:
            chosen = None
            for pack in packs:
                rc, out = run_buildpack(
                    "detect", pack, source, layer, envdir, settings, name, lambda _l: None
                )
                if rc == 0:
                    chosen = pack
                    say(f"-----> {(out[-1] if out else pack.name).strip()} app detected")
                    break
            if chosen is None:
                raise BuildError(
                    "no buildpack detected this app: add requirements.txt, package.json, index.html "
                    "or a Dockerfile, or set BUILDPACK_URL"
                )
            packs = [chosen]
        defaults: dict[str, str] = {}
        for pack in packs:
            rc, tail = run_buildpack(
                "compile",
                pack,
                source,
                layer,
                envdir,
                settings,
                name,
                say,
            )
            if rc != 0:
                raise failure(f"buildpack {pack.name} failed to compile the app", rc, tail)
            if (pack / "bin" / "release").exists():
                rc, out = run_buildpack(
                    "release", pack, source, layer, envdir, settings, name, lambda _l: None
                )
                if rc == 0:
                    defaults.update(procfile.parse_release_yaml("\n".join(out)))
        image = docker.app_image(app, version)
        say("-----> Building the app image")
        context = work / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f"FROM {settings.run_image}\nCOPY --chown=1000:1000 app/ /app/\nUSER 1000\nWORKDIR /app\n"
        )
        shutil.copytree(source, context / "app", symlinks=True)
        rc, tail = docker.stream(["build", "--pull=false", "-q", "-t", image, str(context)], lambda _l: None)
        if rc != 0:
            raise failure("building the app image failed", rc, tail)
        return BuildResult(image, "buildpacks", defaults, settings.container_port)
    finally:
        shutil.rmtree(work, ignore_errors=True)
