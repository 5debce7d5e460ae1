import pytest

from provisioner.hostcmd import names

HOSTILE = [
    "",
    "-rf",
    "--help",
    "../etc",
    "a/b",
    "a b",
    "a;b",
    "$(id)",
    "`id`",
    "a\nb",
    "a\x00b",
    "App",
    "1app",
    "a" * 31,
    "\u0430pp",  # Cyrillic a, a look-alike
    "app.",
    "app_1",
    "app'",
]


@pytest.mark.parametrize("name", ["a", "myapp", "my-app-2", "a" * 30])
def test_valid_app_names(name):
    assert names.app(name) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_app_names(name):
    with pytest.raises(names.NameError_):
        names.app(name)


@pytest.mark.parametrize("key", ["A", "_X", "DATABASE_URL", "a1"])
def test_config_keys(key):
    assert names.config_key(key) == key


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B", "$A", "A\n", "Ä"])
def test_bad_config_keys(key):
    with pytest.raises(names.NameError_):
        names.config_key(key)


@pytest.mark.parametrize("domain", ["www.example.com", "a.b", "xn--bcher-kva.example", "App.Example.COM"])
def test_domains(domain):
    assert names.domain(domain) == domain.lower()


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "localhost",
        "a..b",
        "-a.com",
        "a-.com",
        "a.com;",
        "a.com; return 200",
        "a.com\nserver",
        "1.2.3.4",
        "*.example.com",
        "a" * 64 + ".com",
        "exa mple.com",
        "éxample.com",
    ],
)
def test_bad_domains(domain):
    with pytest.raises(names.NameError_):
        names.domain(domain)


def test_release_ids():
    assert names.release("v3") == 3 and names.release("12") == 12
    for bad in ["v0", "v-1", "x3", "", "v3;", "v1e3"]:
        with pytest.raises(names.NameError_):
            names.release(bad)


def test_refs_and_shas():
    assert names.ref("refs/heads/main") == "refs/heads/main"
    for bad in ["refs/tags/v1", "refs/heads/../x", "main", "refs/heads/a b"]:
        with pytest.raises(names.NameError_):
            names.ref(bad)
    assert names.sha("a" * 40)
    with pytest.raises(names.NameError_):
        names.sha("HEAD")


def test_unicode_look_alikes_are_not_folded_into_ascii():
    import pytest

    from provisioner.hostcmd import names

    for text in ("\u212aelvin.example.com", "ex\u0430mple.com", "exa\u200bmple.com"):
        with pytest.raises(names.NameError_):
            names.domain(text)
