import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioner.hostcmd import keys

PROGRAM = "/usr/local/bin/provisioner-host"


def new_key(comment: str = "someone@laptop") -> str:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{raw} {comment}"


@pytest.fixture
def store(tmp_path):
    return keys.KeyStore(tmp_path / "deploy-keys", tmp_path / "home" / ".ssh" / "authorized_keys", PROGRAM)


def lines(store):
    return [ln for ln in store.authorized_keys.read_text().splitlines() if not ln.startswith("#")]


def test_every_rendered_line_is_restricted_to_the_host_program(store):
    store.set_managed([new_key(), new_key()])
    store.add("alice", new_key())
    rendered = lines(store)
    assert len(rendered) == 3
    assert all(ln.startswith(f'restrict,command="{PROGRAM}" ssh-ed25519 ') for ln in rendered)
    assert [ln.rsplit(" ", 1)[1] for ln in rendered] == ["alice", "up-1", "up-2"]
    assert stat.S_IMODE(os.stat(store.authorized_keys).st_mode) == 0o644


def test_add_list_remove(store):
    key = store.add("ci-bot", new_key())
    assert [k.name for k in store.entries()] == ["ci-bot"]
    assert key.fingerprint.startswith("SHA256:") and len(key.fingerprint) == 50
    store.remove("ci-bot")
    assert store.entries() == [] and lines(store) == []


def test_set_managed_keeps_added_keys_and_is_idempotent(store):
    store.add("alice", new_key())
    first, second = new_key(), new_key()
    assert store.set_managed([first, second]) is True
    assert store.set_managed([first, second]) is False
    assert store.set_managed([second]) is True
    assert sorted(k.name for k in store.entries()) == ["alice", "up-1"]
    assert store.set_managed([second], dry_run=True) is False


def test_dry_run_changes_nothing(store):
    assert store.set_managed([new_key()], dry_run=True) is True
    assert not store.authorized_keys.exists() and store.entries() == []


def test_the_same_key_twice_is_refused(store):
    key = new_key()
    store.add("alice", key)
    with pytest.raises(keys.KeyError_, match="installed already, as 'alice'"):
        store.add("bob", key.replace("someone@laptop", "other"))
    with pytest.raises(keys.KeyError_, match="exists already"):
        store.add("alice", new_key())


@pytest.mark.parametrize(
    "name", ["", "up-1", "../x", "a/b", "-rf", "--help", "A", "a..b", ".hidden", "a b", "x" * 65, "é", "a\nb"]
)
def test_bad_names_are_refused_before_any_file(store, name):
    with pytest.raises(keys.KeyError_):
        store.add(name, new_key())
    assert not store.dir.exists()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key",
        'command="/bin/sh" ' + new_key(),
        new_key() + "\n" + new_key(),
        "ssh-ed25519 AAAA",
        "ssh-rsa " + new_key().split()[1],  # blob of another type
        "ssh-ed25519 !!!notbase64",
    ],
    # Fixed ids: the keys are made at collection, and pytest-xdist's workers must collect the same tests.
    ids=["empty", "not-a-key", "forced-command", "two-keys", "short-blob", "other-type", "not-base64"],
)
def test_bad_keys_are_refused(store, text):
    with pytest.raises(keys.KeyError_):
        store.add("alice", text)
    assert not (store.dir / "alice.pub").exists()


def test_a_damaged_key_file_never_becomes_a_login(store):
    store.add("alice", new_key())
    (store.dir / "mallory.pub").write_text('command="/bin/sh" ssh-ed25519 AAAA\n')
    store.render()
    assert [ln.rsplit(" ", 1)[1] for ln in lines(store)] == ["alice"]


def test_main_reports_one_error_line(store, capsys, monkeypatch):
    import io

    monkeypatch.setattr(keys.sys, "stdin", io.StringIO("garbage"))
    assert keys.main(["add", "alice"], store) == 1
    assert capsys.readouterr().err.startswith("error: not an OpenSSH public key")
    assert keys.main(["frobnicate"], store) == 2


def auth_info(text: str) -> str:
    """What sshd's ExposeAuthInfo file says for a login with this public key."""
    ktype, blob = text.split()[:2]
    return f"publickey {ktype} {blob}\n"


def test_a_key_limited_to_apps_is_known_by_the_key_it_logged_in_with(store):
    admin, alice = new_key(), new_key()
    store.add("admin", admin)
    added = store.add("alice", alice, ["shop", "blog", "shop"])
    assert added.apps == ("blog", "shop")
    assert (store.dir / "alice.apps").read_text() == "blog\nshop\n"
    assert {k.name: k.apps for k in store.entries()} == {"admin": None, "alice": ("blog", "shop")}
    caller = store.caller(auth_info(alice))
    assert caller == keys.Caller("alice", frozenset({"blog", "shop"}))
    assert caller.allows("shop") and not caller.allows("billing")
    assert store.caller(auth_info(admin)) == keys.Caller("admin", None)
    with pytest.raises(keys.KeyError_, match="does not say which key"):
        store.caller(None)
    with pytest.raises(keys.KeyError_, match="not a deploy key"):
        store.caller(auth_info(new_key()))
    store.remove("alice")
    assert not (store.dir / "alice.apps").exists()
    assert store.caller(None) == keys.Caller()  # no limited key left: every key may do everything


def test_a_damaged_apps_file_allows_no_app(store):
    alice = new_key()
    store.add("alice", alice, ["shop"])
    (store.dir / "alice.apps").write_text("../etc\n")
    assert store.caller(auth_info(alice)).apps == frozenset()


@pytest.mark.parametrize("apps", [[], [""], ["Shop"], ["../etc"]])
def test_bad_app_lists_are_refused_before_any_file(store, apps):
    with pytest.raises(keys.KeyError_):
        store.add("alice", new_key(), apps)
    assert not list(store.dir.glob("alice.*")) if store.dir.exists() else True


def test_a_limited_key_runs_only_commands_on_its_apps(monkeypatch):
    from provisioner.hostcmd import commands, main
    from provisioner.hostcmd.commands import base

    monkeypatch.setattr(base, "CALLER", keys.Caller("alice", frozenset({"shop"})))
    main.allowed(commands.find("config:set"), ["shop", "A=1"])
    main.allowed(commands.find("apps:list"), [])
    for verb, args in [
        ("config", ["billing"]),
        ("apps:destroy", ["billing", "--force"]),
        ("cleanup", []),
        ("letsencrypt:renew", []),
        ("logs", ["-t"]),
    ]:
        with pytest.raises(base.UserError, match="alice"):
            main.allowed(commands.find(verb), args)
