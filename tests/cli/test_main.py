import pytest

from fieldvision import __version__
from fieldvision.cli.__main__ import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_pipelines(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("biomass", "reid", "mil", "demo", "export"))


def test_unknown_command_is_a_usage_error():
    assert main(["no-such-command"]) == 2


def test_user_error_is_one_line_and_exit_2(capsys, tmp_path):
    code = main(
        [
            "biomass",
            "evaluate",
            "--pred",
            str(tmp_path / "p.csv"),
            "--truth",
            str(tmp_path / "t.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    from fieldvision.errors import FieldVisionError

    with pytest.raises(FieldVisionError):
        main(
            [
                "--debug",
                "biomass",
                "evaluate",
                "--pred",
                str(tmp_path / "p.csv"),
                "--truth",
                str(tmp_path / "t.csv"),
            ]
        )
