"""Hostile input and escape attempts against the deploy user and the controller CLI.

Every input is refused with a clear message, and afterwards no file, container, vhost, key or repository
exists that did not exist before. The count of wrongly accepted inputs is a figure of the run (target 0).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time

import pytest

from provisioner import sandbox
from provisioner.targets import UNPINNED_SSH_OPTIONS
from tests.conftest import E2E_PREFIX, record_figure, run_cli
from tests.e2e.conftest import pushed_ok, root_exec

PWNED = "/tmp/pwned"
TALLY = {"tried": 0, "accepted": []}

# (case id, command words as the user types them after `ssh deploy@HOST`)
SSH_CASES = [
    ("app-traversal", ["apps:create", "../etc"]),
    ("app-dotdot", ["apps:create", ".."]),
    ("app-absolute-path", ["apps:create", "/etc/passwd"]),
    ("app-slash", ["apps:create", "a/b"]),
    ("app-option-help", ["apps:create", "--help"]),
    ("app-option-rf", ["apps:create", "-rf"]),
    ("app-semicolon", ["apps:create", "app;touch /tmp/pwned"]),
    ("app-command-substitution", ["apps:create", "$(touch /tmp/pwned)"]),
    ("app-backticks", ["apps:create", "`touch /tmp/pwned`"]),
    ("app-newline", ["apps:create", "app\ntouch /tmp/pwned"]),
    ("app-space", ["apps:create", "my app"]),
    ("app-uppercase", ["apps:create", "MyApp"]),
    ("app-cyrillic-lookalike", ["apps:create", "\u0430pp"]),
    ("app-zero-width-space", ["apps:create", "app\u200b"]),
    ("app-fullwidth", ["apps:create", "\uff41\uff50\uff50"]),
    ("app-overlong", ["apps:create", "a" * 300]),
    ("app-empty", ["apps:create", ""]),
    ("destroy-traversal", ["apps:destroy", "../hostile", "--force"]),
    ("config-key-substitution", ["config:set", "hostile", "$(touch /tmp/pwned)=1"]),
    ("config-key-digit", ["config:set", "hostile", "1X=1"]),
    ("config-key-dash", ["config:set", "hostile", "A-B=1"]),
    ("config-key-newline", ["config:set", "hostile", "A\nB=1"]),
    ("config-key-empty", ["config:set", "hostile", "=1"]),
    ("config-key-option", ["config:set", "hostile", "--help"]),
    ("config-key-unicode", ["config:set", "hostile", "K\u00c9Y=1"]),
    ("config-unset-traversal", ["config:unset", "hostile", "../config"]),
    ("domain-directive", ["domains:add", "hostile", "x.example.com; return 301 http://evil"]),
    ("domain-brace", ["domains:add", "hostile", "x.example.com}server{"]),
    ("domain-newline", ["domains:add", "hostile", "x.example.com\nserver_name evil"]),
    ("domain-wildcard", ["domains:add", "hostile", "*.example.com"]),
    ("domain-cyrillic-lookalike", ["domains:add", "hostile", "ex\u0430mple.com"]),
    ("domain-kelvin-sign", ["domains:add", "hostile", "\u212a.example.com"]),
    ("domain-ip-address", ["domains:add", "hostile", "127.0.0.1"]),
    ("domain-overlong-label", ["domains:add", "hostile", "a" * 64 + ".com"]),
    ("domain-option", ["domains:add", "hostile", "-rf"]),
    ("domain-empty", ["domains:add", "hostile", ""]),
    ("scale-traversal", ["ps:scale", "hostile", "../web=1"]),
    ("scale-huge", ["ps:scale", "hostile", "web=100000"]),
    ("scale-negative", ["ps:scale", "hostile", "web=-1"]),
    ("scale-substitution", ["ps:scale", "hostile", "web=$(id)"]),
    ("rollback-traversal", ["rollback", "hostile", "../v1"]),
    ("rollback-zero", ["rollback", "hostile", "v0"]),
    ("rollback-semicolon", ["rollback", "hostile", "v1;id"]),
    ("logs-substitution", ["logs", "hostile", "-n", "$(id)"]),
    ("logs-option-injection", ["logs", "hostile", "--since=0"]),
    ("receive-pack-traversal", ["git-receive-pack", "../../etc"]),
    ("receive-pack-absolute", ["git-receive-pack", "/var/lib/provisioner/apps/hostile/repo.git"]),
    ("receive-pack-option", ["git-receive-pack", "--help"]),
    ("upload-pack-etc", ["git-upload-pack", "/etc"]),
    ("upload-pack-option", ["git-upload-pack", "--upload-pack=touch /tmp/pwned"]),
    ("hook-over-ssh", ["hook", "pre-receive"]),
    ("path-as-command", ["../../bin/sh"]),
    ("cleanup-option", ["cleanup", "--keep", "-1"]),
    ("cleanup-unicode-digit", ["cleanup", "--keep", "\u00b2"]),
    ("scale-unicode-digit", ["ps:scale", "hostile", "web=\u00b2"]),
    ("scale-arabic-digit", ["ps:scale", "hostile", "web=\u0661"]),
    # Dokku's first-week commands (issue 18): names, keys, encoded garbage, URLs and options.
    ("run-traversal-app", ["run", "../hostile", "id"]),
    ("run-no-command", ["run", "hostile"]),
    ("run-app-option", ["run", "--rm", "id"]),
    ("config-get-traversal", ["config:get", "hostile", "../config"]),
    ("config-get-substitution", ["config:get", "hostile", "$(touch /tmp/pwned)"]),
    ("config-export-option", ["config:export", "hostile", "--format=$(id)"]),
    ("config-keys-extra", ["config:keys", "hostile", "extra"]),
    ("config-clear-extra", ["config:clear", "hostile", "now"]),
    ("config-encoded-garbage", ["config:set", "--encoded", "hostile", "K=%%%not-base64%%%", "--no-restart"]),
    ("config-encoded-not-utf8", ["config:set", "--encoded", "hostile", "K=//79", "--no-restart"]),
    ("config-encoded-bad-key", ["config:set", "--encoded", "hostile", "$(id)=YQ==", "--no-restart"]),
    ("apps-exists-traversal", ["apps:exists", "../etc"]),
    ("apps-report-traversal", ["apps:report", "/etc/passwd"]),
    ("ps-stop-traversal", ["ps:stop", "../hostile"]),
    ("ps-report-extra", ["ps:report", "hostile", "--all"]),
    ("logs-ps-traversal", ["logs", "hostile", "-p", "../web"]),
    ("git-sync-upload-pack", ["git:sync", "hostile", "--upload-pack=touch /tmp/pwned"]),
    ("git-sync-ext-transport", ["git:sync", "hostile", "ext::sh -c touch% /tmp/pwned"]),
    ("git-sync-shell-url", ["git:sync", "hostile", "https://example.com/x.git;touch /tmp/pwned"]),
    ("git-sync-file-outside", ["git:sync", "hostile", "file:///var/lib/provisioner/apps/hostile/repo.git"]),
    ("git-sync-ref-option", ["git:sync", "hostile", "git://127.0.0.1/x.git", "--upload-pack=x"]),
    ("git-sync-credentials", ["git:sync", "hostile", "https://user:pass@example.com/x.git"]),
]

EVIL_BUILDPACK = "/srv/buildpacks/evil.git"  # its bin/ scripts link to a 0600 file of the hostile app
LINK = "->"  # a PUSH_CASES file whose content starts with this is a symlink to the rest
# (case id, files written over the static sample, words the refusal names)
PUSH_CASES = [
    ("procfile-symlink", {"Procfile": "->/etc/passwd"}, "Procfile is a symbolic link"),
    ("app-json-symlink", {"app.json": "->/etc/passwd"}, "app.json is a symbolic link"),
    ("buildpacks-symlink", {".buildpacks": "->/etc/passwd"}, ".buildpacks is a symbolic link"),
    ("dockerfile-symlink", {"Dockerfile": "->/etc/passwd"}, "Dockerfile is a symbolic link"),
    ("dockerignore-symlink", {"Dockerfile": "FROM scratch\n", ".dockerignore": "->/etc/passwd"}, "symbolic"),
    ("procfile-in-symlinked-dir", {"Procfile": "web: ./x\n", "conf": "->/etc"}, ""),
    (
        "buildpack-file-url-outside",
        {".buildpacks": "file:///var/lib/provisioner/apps/hostile/repo.git\n"},
        "must be under /srv/buildpacks",
    ),
    ("buildpack-symlinked-bin", {".buildpacks": f"file://{EVIL_BUILDPACK}\n"}, "failed to compile"),
    ("app-json-attempts-text", {"app.json": '{"healthchecks": {"web": [{"attempts": "x"}]}}'}, "attempts"),
    ("app-json-timeout-text", {"app.json": '{"healthchecks": {"web": [{"timeout": "abc"}]}}'}, "timeout"),
    ("app-json-healthchecks-list", {"app.json": '{"healthchecks": []}'}, "healthchecks"),
    ("app-json-huge-timeout", {"app.json": '{"healthchecks": {"web": [{"timeout": 100000}]}}'}, "timeout"),
]


def snapshot(box) -> str:
    """What hostile input must not change: app dirs and files, vhosts, keys, containers, repositories."""
    return root_exec(
        box,
        "find /var/lib/provisioner/apps /var/lib/provisioner/nginx /etc/provisioner /etc/nginx "
        "/home/deploy -path '*/cache' -prune -o -path '*/objects' -prune -o -type f -name lock -prune -o "
        "-printf '%p %s %m %u\\n' | sort; "
        "md5sum /var/lib/provisioner/apps/hostile/*.json; "
        "docker ps -a --format '{{.Names}} {{.Image}}' | sort; "
        "docker images --format '{{.Repository}}:{{.Tag}}' | sort; "
        f"ls -d {PWNED}* 2>/dev/null; true",
    )


@pytest.fixture(scope="module")
def before(deploy_box, dev):
    """The target app exists and serves; then the host's state is recorded."""
    if "hostile" not in dev.ssh("apps:list").stdout.split():
        pushed_ok(dev.push(dev.repo("hostile", "static"), "hostile"), "hostile")
    return snapshot(deploy_box), sorted(b.name for b in sandbox.list_sandboxes())


def refused(rc: int, output: str, case: str) -> None:
    TALLY["tried"] += 1
    if rc == 0:
        TALLY["accepted"].append(case)
    assert rc != 0, f"{case} was accepted: {output[-500:]}"
    assert "Traceback" not in output
    assert "uid=" not in output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert any(ln.lower().startswith(("error:", "unknown command", "usage:")) for ln in lines), output[-500:]


@pytest.mark.parametrize(("case", "words"), SSH_CASES, ids=[c for c, _ in SSH_CASES])
def test_hostile_ssh_command_is_refused(before, dev, case, words):
    result = dev.ssh(*words)
    refused(result.returncode, result.stderr + result.stdout, case)


def test_a_nul_byte_in_a_command_is_refused(before, deploy_box):
    """ssh(1) cannot send a NUL; a hand-made client can. sshd rejects it before our program runs."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=deploy_box.ssh_port, username="deploy", key_filename=deploy_box.identity)
    rc = -1
    try:
        _in, out, _err = client.exec_command("apps:create app\x00touch", timeout=20)
        rc = out.channel.recv_exit_status()
    except (paramiko.SSHException, EOFError, OSError):
        rc = 255  # the server dropped the connection: refused
    finally:
        client.close()
    TALLY["tried"] += 1
    if rc == 0:
        TALLY["accepted"].append("nul-byte")
    assert rc != 0


def cli_cases(key_file: str, options_key: str) -> list[tuple[str, list[str]]]:
    root = f"{E2E_PREFIX}root"
    return [
        ("target-semicolon", ["up", "root@127.0.0.1;touch /tmp/pwned"]),
        ("target-substitution", ["up", "root@$(touch /tmp/pwned)"]),
        ("target-newline", ["up", "root@host\nProxyCommand=touch /tmp/pwned"]),
        ("target-ssh-option", ["up", "--", "-oProxyCommand=touch /tmp/pwned"]),
        ("target-traversal", ["up", "../../etc/passwd"]),
        ("target-port-overflow", ["up", "root@127.0.0.1:99999"]),
        ("target-port-negative", ["up", "root@127.0.0.1:-1"]),
        ("target-empty", ["up", ""]),
        ("target-cyrillic-lookalike", ["up", "r\u043e\u043et@ex\u0430mple.com"]),
        ("target-overlong", ["up", "a" * 300]),
        ("domain-directive", ["up", root, "--domain", "x.example.com; return 301", "--no-verify"]),
        ("domain-newline", ["up", root, "--domain", "x.example.com\nserver_name evil", "--no-verify"]),
        ("apt-proxy-quote", ["up", root, "--apt-proxy", 'http://p:3128";Acquire::x "y', "--no-verify"]),
        ("pip-index-newline", ["up", root, "--pip-index-url", "https://i/simple\n[global]", "--no-verify"]),
        ("extra-var-substitution", ["up", root, "-e", "$(touch /tmp/pwned)=1", "--no-verify"]),
        ("key-name-traversal", ["keys", "add", root, "--key", key_file, "--name", "../x"]),
        ("key-name-option", ["keys", "add", root, "--key", key_file, "--name", "-rf"]),
        ("key-name-reserved", ["keys", "add", root, "--key", key_file, "--name", "up-1"]),
        ("key-name-newline", ["keys", "add", root, "--key", key_file, "--name", "a\nb"]),
        ("key-with-forced-command", ["keys", "add", root, "--key", options_key, "--name", "mallory"]),
        ("key-remove-traversal", ["keys", "remove", root, "../../etc/passwd"]),
        ("sandbox-traversal", ["sandbox", "create", "../x"]),
        ("sandbox-semicolon", ["sandbox", "create", "x;touch /tmp/pwned"]),
    ]


CLI_IDS = [c for c, _ in cli_cases("k", "k")]


@pytest.fixture(scope="module")
def key_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "k")], check=True)
    pub = (d / "k.pub").read_text().strip()
    (d / "options.pub").write_text(f'command="/bin/sh",no-pty {pub}\n')
    return str(d / "k.pub"), str(d / "options.pub")


@pytest.mark.parametrize("index", range(len(CLI_IDS)), ids=CLI_IDS)
def test_hostile_cli_input_is_refused(before, key_files, index):
    case, args = cli_cases(*key_files)[index]
    result = run_cli(*args, timeout=300)
    refused(result.rc, result.stderr + result.stdout, case)


def ssh_deploy(host, *extra: str) -> list[str]:
    base = [
        "ssh",
        "-i",
        host.identity,
        "-p",
        str(host.ssh_port),
        *UNPINNED_SSH_OPTIONS,
        "-o",
        "BatchMode=yes",
    ]
    return [*base, *extra, "deploy@127.0.0.1"]


free_port = sandbox.free_port


def escape(name: str, ok: bool) -> None:
    TALLY["tried"] += 1
    if not ok:
        TALLY["accepted"].append(name)


@pytest.mark.parametrize(
    "command",
    ["bash", "sh -c id", "/bin/sh -i", "exec /bin/sh", "apps:list; id", "apps:list && id", "$(id)", "env"],
)
def test_escape_to_a_shell_fails(before, deploy_box, command):
    proc = subprocess.run([*ssh_deploy(deploy_box), command], capture_output=True, text=True, timeout=60)
    escape(f"shell: {command}", proc.returncode != 0 and "uid=" not in proc.stdout)
    assert proc.returncode != 0 and "uid=" not in proc.stdout
    assert "unknown command" in proc.stderr or "error:" in proc.stderr
    assert "SSH_ORIGINAL_COMMAND" not in proc.stdout


def test_escape_through_stdio_forwarding_fails(before, deploy_box):
    proc = subprocess.run(
        [*ssh_deploy(deploy_box, "-W", "127.0.0.1:22")], capture_output=True, timeout=60, input=b""
    )
    escape("ssh -W", proc.returncode != 0 and not proc.stdout.startswith(b"SSH-"))
    assert proc.returncode != 0 and not proc.stdout.startswith(b"SSH-")
    assert b"forwarding failed" in proc.stderr or b"prohibited" in proc.stderr, proc.stderr


def _through_local_port(port: int) -> bytes:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            return sock.recv(64)
    return b""


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)


def test_escape_through_local_forwarding_fails(before, deploy_box):
    port = free_port()
    proc = subprocess.Popen(
        [*ssh_deploy(deploy_box, "-N", "-L", f"127.0.0.1:{port}:127.0.0.1:22")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc)
        data = _through_local_port(port)  # the host's own sshd, reached from inside, would say SSH-2.0
    finally:
        proc.kill()
        proc.wait()
    escape("ssh -L", not data.startswith(b"SSH-"))
    assert not data.startswith(b"SSH-"), data


def test_escape_through_dynamic_forwarding_fails(before, deploy_box):
    port = free_port()
    proc = subprocess.Popen(
        [*ssh_deploy(deploy_box, "-N", "-D", f"127.0.0.1:{port}")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    reply = b""
    try:
        _wait_listening(port, proc)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(5)
            sock.sendall(b"\x05\x01\x00")  # SOCKS5, no auth
            if sock.recv(2) == b"\x05\x00":
                sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + (22).to_bytes(2, "big"))
                reply = sock.recv(10)
    finally:
        proc.kill()
        proc.wait()
    succeeded = len(reply) >= 2 and reply[1] == 0
    escape("ssh -D", not succeeded)
    assert not succeeded, reply


def test_escape_through_remote_forwarding_fails(before, deploy_box):
    proc = subprocess.run(
        [*ssh_deploy(deploy_box, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    escape("ssh -R", proc.returncode != 0)
    assert proc.returncode != 0 and "forwarding failed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("tool", ["scp", "scp -O", "sftp"])
def test_escape_through_file_transfer_fails(before, deploy_box, tmp_path, tool):
    local = tmp_path / "payload"
    local.write_text("payload\n")
    base = ssh_deploy(deploy_box)[1:-1]  # the options, without the leading "ssh" and the destination
    opts = [o.replace("-p", "-P") if o == "-p" else o for o in base]
    if tool == "sftp":
        batch = tmp_path / "batch"
        batch.write_text(f"put {local} {PWNED}-sftp\n")
        argv = ["sftp", "-b", str(batch), *opts, "deploy@127.0.0.1"]
    else:
        argv = [*tool.split(), *opts, str(local), f"deploy@127.0.0.1:{PWNED}-{tool.replace(' ', '')}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    landed = root_exec(deploy_box, f"ls {PWNED}* 2>/dev/null; true").strip()
    escape(tool, proc.returncode != 0 and not landed)
    assert proc.returncode != 0 and not landed, (proc.stderr, landed)


@pytest.mark.parametrize(
    "path",
    ["/etc", "../../etc/passwd", "/var/lib/provisioner/apps/hostile/repo.git", "hostile/../../../etc"],
)
def test_escape_through_git_paths_fails(before, deploy_box, dev, tmp_path, path):
    url = (
        f"ssh://deploy@127.0.0.1:{deploy_box.ssh_port}/{path.lstrip('/')}"
        if not path.startswith("/")
        else (f"ssh://deploy@127.0.0.1:{deploy_box.ssh_port}{path}")
    )
    clone = dev.git(tmp_path, "clone", "-q", url, "c", check=False)
    escape(f"git clone {path}", clone.returncode != 0)
    assert clone.returncode != 0 and ("invalid app name" in clone.stderr or "no app named" in clone.stderr)
    if path == "/etc":
        return  # a push to /etc is a push to an app named etc (ssh:// URLs always send a leading /)
    repo = dev.repo("escape-push", "static")
    push = dev.git(repo, "push", url, "main", check=False)
    escape(f"git push {path}", push.returncode != 0)
    assert push.returncode != 0 and "invalid app name" in push.stderr, push.stderr


@pytest.fixture(scope="module")
def evil_buildpack(deploy_box):
    """A buildpack in the operator's allowed directory whose bin/ scripts are links to the hostile app's
    releases.json (0600): fetching it must not make that file readable."""
    target = "/var/lib/provisioner/apps/hostile/releases.json"
    root_exec(
        deploy_box,
        f"set -e; rm -rf /tmp/evil {EVIL_BUILDPACK}; mkdir -p /tmp/evil/bin /srv/buildpacks; cd /tmp/evil; "
        f"for s in detect compile release; do ln -s {target} bin/$s; done; "
        "git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@e commit -qm evil && "
        f"git clone -q --bare /tmp/evil {EVIL_BUILDPACK} && chown -R deploy: {EVIL_BUILDPACK}",
    )


@pytest.mark.parametrize(("case", "files", "words"), PUSH_CASES, ids=[c for c, _, _ in PUSH_CASES])
def test_hostile_pushed_content_is_refused(before, evil_buildpack, dev, case, files, words):
    repo = dev.repo(f"push-{case}", "static")
    for name, content in files.items():
        path = repo / name
        if content.startswith(LINK):
            path.symlink_to(content.removeprefix(LINK))
        else:
            path.write_text(content)
    if case == "procfile-in-symlinked-dir":
        (repo / "Procfile").unlink()
        (repo / "Procfile").symlink_to("conf/passwd")  # a link inside the tree, to a link out of it
    dev.commit(repo, case)
    pushed = dev.push(repo, "hostile")
    output = pushed.stdout + pushed.stderr
    escape(f"push {case}", pushed.returncode != 0)
    assert pushed.returncode != 0, f"{case} was deployed: {output[-800:]}"
    assert "Traceback" not in output and "root:x:0:0" not in output, output[-800:]
    failed = [ln for ln in output.splitlines() if "Deploy of hostile failed:" in ln]
    assert len(failed) == 1 and words in failed[0], output[-800:]


def test_hostile_input_created_nothing(before, deploy_box):
    state, boxes = before
    after = snapshot(deploy_box)
    assert after == state, "\n".join(sorted(set(after.splitlines()).symmetric_difference(state.splitlines())))
    assert sorted(b.name for b in sandbox.list_sandboxes()) == boxes
    assert not os.path.exists(PWNED)
    record_figure(
        "hostile input",
        f"{TALLY['tried']} hostile inputs and escape attempts tried, {len(TALLY['accepted'])} wrongly "
        f"accepted{': ' + ', '.join(TALLY['accepted']) if TALLY['accepted'] else ''} (target 0)",
    )
