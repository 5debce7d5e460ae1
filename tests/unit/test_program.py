"""The host program as one archive: the same bytes for the same sources, and importable from the zip."""

import subprocess
import sys
import zipfile

from provisioner import program


def test_the_archive_is_the_same_bytes_each_time(tmp_path):
    assert program.pack() == program.pack()
    assert program.archive() == program.archive()  # same content, same name: Ansible's copy sees no change


def test_the_archive_changes_with_the_sources(tmp_path):
    src = tmp_path / "hostcmd"
    src.mkdir()
    (src / "__init__.py").write_text("")
    (src / "main.py").write_text("X = 1\n")
    before = program.archive(src)
    (src / "main.py").write_text("X = 2\n")
    assert program.archive(src) != before


def test_the_archive_holds_every_module_and_runs_from_the_zip(tmp_path):
    path = program.archive()
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "hostcmd/main.py" in names and "hostcmd/commands/apps.py" in names
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]
    # As the installed entry point does: python3 -I, the zip first on sys.path, then `help`.
    code = f"import sys; sys.path.insert(0, {str(path)!r}); from hostcmd.main import main; main(['help'])"
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: ssh deploy@HOST") and "apps:destroy" in proc.stdout
