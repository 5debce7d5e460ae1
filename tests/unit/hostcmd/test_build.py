import pytest

from provisioner.hostcmd import build
from provisioner.hostcmd.settings import Settings


@pytest.mark.parametrize(
    ("rc", "tail", "expected"),
    [
        (1, ["cp: error writing '/app/x': No space left on device"], "ran out of disk space"),
        (137, ["Collecting flask"], "the build was killed (exit code 137"),
        (2, ["SyntaxError"], "compile (exit code 2)"),
    ],
)
def test_build_failures_say_why(rc, tail, expected):
    exc = build.failure("compile", rc, tail)
    assert expected in str(exc)
    assert exc.tail == "\n".join(tail)


def test_a_build_is_refused_when_the_disk_is_nearly_full(monkeypatch):
    monkeypatch.setattr(build, "docker_root", lambda: "/")
    with pytest.raises(build.BuildError, match="a build needs at least"):
        build.check_disk(Settings(build_min_free_mb=10**9))
    build.check_disk(Settings(build_min_free_mb=0))
