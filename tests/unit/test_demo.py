"""The demo workflow's pure parts: its result and the checks that run before anything starts."""

import pytest
from click.testing import CliRunner

from provisioner import api, cli, demo
from provisioner.errors import UsageError


def result(**changes):
    up = api.UpResult(hosts={}, seconds=80.0, ok=True, check=False, changes=[], artifacts="/runs/1")
    fields = {
        "sandbox": "demo",
        "app": "hello",
        "domain": "127.0.0.1.sslip.io",
        "http": "http://127.0.0.1:41080",
        "ssh_port": 41022,
        "seconds": 212.4,
        "up": up,
        **changes,
    }
    return demo.DemoResult(**fields)


def test_result_says_where_the_app_answers():
    shown = result()
    assert shown.url == "http://hello.127.0.0.1.sslip.io"
    assert shown.curl == "curl -H 'Host: hello.127.0.0.1.sslip.io' http://127.0.0.1:41080/"
    assert shown.push_url == "ssh://deploy@127.0.0.1:41022/APP"
    assert shown.shell == "provisioner sandbox ssh demo"


def test_result_rendering():
    console = cli.Console(record=True, width=200)
    cli.render_demo(result(), console)
    text = console.export_text()
    assert "hello is live 212 s after the start of this command." in text
    assert "url:    http://hello.127.0.0.1.sslip.io   (on this machine: curl -H 'Host: hello." in text
    assert "deploy: git push ssh://deploy@127.0.0.1:41022/APP main" in text
    assert "shell:  provisioner sandbox ssh demo" in text


@pytest.mark.parametrize(
    ("name", "app", "said"), [("Demo", "hello", "invalid sandbox name"), ("demo", "Hi!", "invalid app name")]
)
def test_bad_names_fail_before_anything_starts(name, app, said):
    with pytest.raises(UsageError, match=said):
        demo.run(name, app)  # no Docker engine is asked: the names are checked first


def test_bad_app_name_is_one_error_line():
    run = CliRunner().invoke(cli.main, ["demo", "--app", "Bad_App"])
    assert run.exit_code == 2
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid app name 'Bad_App': use 1-30 lowercase")
