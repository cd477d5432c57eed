"""Run directories: the start policy, status lifecycle, open checks, metrics, weights."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from fieldvision.config import StrictModel, config_fingerprint, runtime_field
from fieldvision.errors import RunError
from fieldvision.models.reid import ReIDModel, ReIDModelConfig
from fieldvision.runs import CONFIG_FILE, METRICS_FILE, RUN_FILE, RunDir

KIND = "toy"
INPUTS = {"labels": "abc123", "rows": 10}


class _Train(StrictModel):
    lr: float = 0.1
    epochs: int = 2
    device: str = runtime_field("cpu")


class _Cfg(StrictModel):
    seed: int = 0
    train: _Train = _Train()
    workers: int = runtime_field(0)


def _run_json(path) -> dict:
    return json.loads((path / RUN_FILE).read_text())


def _existing(path, status: str, cfg: _Cfg | None = None, kind: str = KIND, inputs=INPUTS):
    """A run left behind by an earlier call, with a pipeline file in it."""
    run = RunDir.start(path, kind, cfg or _Cfg(), inputs)
    (path / "weights.bin").write_text("trained")
    if status == "done":
        run.done()
    elif status == "failed":
        run.fail(ValueError("boom"))
    return run


OTHER = _Cfg(train=_Train(lr=0.5))
RUNTIME_ONLY = _Cfg(workers=4, train=_Train(device="cuda"))


# (setup, cfg given to start, inputs, outcome): outcome is "new" (fresh run), "kept" (the
# existing run with its files), "replaced" (old files gone) or an error message.
START_CASES = [
    ("missing", _Cfg(), INPUTS, "new"),
    ("empty_dir", _Cfg(), INPUTS, "new"),
    ("running", _Cfg(), INPUTS, "kept"),
    ("running", RUNTIME_ONLY, INPUTS, "kept"),  # runtime fields do not change the run
    ("done", _Cfg(), INPUTS, "kept"),
    ("failed", _Cfg(), INPUTS, "kept"),  # same config: resumed, not wiped
    ("failed", OTHER, INPUTS, "replaced"),
    ("failed", _Cfg(), {"labels": "other"}, "replaced"),
    ("running", OTHER, INPUTS, r"different config \(train\.lr\)"),
    ("done", OTHER, INPUTS, r"holds a done run with a different config \(train\.lr\)"),
    ("running", _Cfg(), {"labels": "xyz", "rows": 10}, r"different input data \(labels\)"),
    ("other_kind", _Cfg(), INPUTS, "holds a 'other' run, not a toy run"),
    ("foreign_files", _Cfg(), INPUTS, "not a fieldvision run directory"),
    ("broken_run_json", _Cfg(), INPUTS, "not a fieldvision run directory"),
    ("file", _Cfg(), INPUTS, "is a file"),
]


@pytest.mark.parametrize(("setup", "cfg", "inputs", "outcome"), START_CASES)
def test_start_policy(tmp_path, setup, cfg, inputs, outcome):
    path = tmp_path / "run"
    if setup == "empty_dir":
        path.mkdir()
    elif setup in ("running", "done", "failed"):
        _existing(path, setup)
    elif setup == "other_kind":
        _existing(path, "done", kind="other")
    elif setup == "foreign_files":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    elif setup == "broken_run_json":
        path.mkdir()
        (path / RUN_FILE).write_text("{not json")
    elif setup == "file":
        path.write_text("a file")
    before = {p.name: p.read_bytes() for p in path.iterdir()} if path.is_dir() else None

    if outcome not in ("new", "kept", "replaced"):
        with pytest.raises(RunError, match=outcome):
            RunDir.start(path, KIND, cfg, inputs)
        after = {p.name: p.read_bytes() for p in path.iterdir()} if path.is_dir() else None
        assert after == before  # a refusal touches nothing
        return

    run = RunDir.start(path, KIND, cfg, inputs)
    info = _run_json(path)
    assert info["kind"] == KIND and info["fingerprint"] == config_fingerprint(cfg)
    assert info["inputs"] == inputs and run.inputs == inputs
    assert yaml.safe_load((path / CONFIG_FILE).read_text()) == cfg.model_dump(mode="json")
    assert (path / "weights.bin").exists() is (outcome == "kept")
    expected_status = "done" if (setup, outcome) == ("done", "kept") else "running"
    assert run.status == info["status"] == expected_status
    assert "error" not in info  # a resumed failed run starts clean


def test_runtime_fields_keep_the_fingerprint():
    assert config_fingerprint(RUNTIME_ONLY) == config_fingerprint(_Cfg())
    assert config_fingerprint(OTHER) != config_fingerprint(_Cfg())


def test_inputs_are_recorded_as_json(tmp_path):
    from pathlib import Path

    run = RunDir.start(tmp_path / "r", KIND, _Cfg(), {"table": Path("/data/x.csv"), "n": (1, 2)})
    assert run.inputs == {"table": "/data/x.csv", "n": [1, 2]}
    # The same inputs given again (as a Path and a tuple) resume the run.
    again = RunDir.start(tmp_path / "r", KIND, _Cfg(), {"table": Path("/data/x.csv"), "n": (1, 2)})
    assert again.inputs == run.inputs


@pytest.mark.parametrize("status", ["running", "failed", "done"])
def test_the_data_location_is_recorded_outside_the_resume_identity(tmp_path, status):
    path, first, copy = tmp_path / "run", tmp_path / "a" / "data", tmp_path / "b" / "data"
    first.mkdir(parents=True)
    copy.mkdir(parents=True)
    run = RunDir.start(path, KIND, _Cfg(), INPUTS, data=first)
    assert _run_json(path)["data"] == {"path": str(first.resolve())}
    assert _run_json(path)["inputs"] == INPUTS and run.data_path == first.resolve()
    (path / "weights.bin").write_text("trained")
    if status == "failed":
        run.fail(ValueError("boom"))
    elif status == "done":
        run.done()
    # The same data copied to another path: the run is resumed (its files kept), not refused.
    again = RunDir.start(path, KIND, _Cfg(), INPUTS, data=copy)
    assert (path / "weights.bin").exists() and again.data_path == copy.resolve()
    again.done()
    assert _run_json(path)["data"] == {"path": str(copy.resolve())}
    assert RunDir.open(path, KIND, _Cfg)[0].data_path == copy.resolve()
    # A resume that names no data keeps the recorded location.
    RunDir.start(path, KIND, _Cfg(), INPUTS).done()
    assert _run_json(path)["data"] == {"path": str(copy.resolve())}


def test_a_relative_data_path_is_recorded_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    RunDir.start(tmp_path / "run", KIND, _Cfg(), INPUTS, data="data/train.csv")
    assert _run_json(tmp_path / "run")["data"]["path"] == str(tmp_path.resolve() / "data/train.csv")


@pytest.mark.parametrize("recorded", [None, "not a mapping", {"path": ""}])
def test_a_run_json_without_a_usable_data_field_still_opens(tmp_path, recorded):
    path = tmp_path / "run"
    _existing(path, "done")
    info = _run_json(path)
    assert "data" not in info  # written without a location, as before it was recorded
    if recorded is not None:
        (path / RUN_FILE).write_text(json.dumps({**info, "data": recorded}))
    run, _ = RunDir.open(path, KIND, _Cfg)
    assert run.data_path is None and run.inputs == INPUTS


# --------------------------------------------------------------------------- running()


def test_running_marks_done_on_success(tmp_path):
    run = RunDir.start(tmp_path / "r", KIND, _Cfg())
    assert run.status == "running"
    with run.running() as same:
        assert same is run and run.status == "running"
    assert run.status == "done"


def test_running_marks_failed_and_records_the_error(tmp_path):
    run = RunDir.start(tmp_path / "r", KIND, _Cfg())
    with pytest.raises(ValueError, match="bad rows"), run.running():
        raise ValueError("bad rows")
    assert run.status == "failed"
    assert _run_json(run.path)["error"] == "ValueError: bad rows"


def test_running_stays_running_on_keyboard_interrupt(tmp_path):
    run = RunDir.start(tmp_path / "r", KIND, _Cfg())
    with pytest.raises(KeyboardInterrupt), run.running():
        raise KeyboardInterrupt
    assert run.status == "running" and "error" not in _run_json(run.path)


# --------------------------------------------------------------------------- open()


def _edit_config(path, **train):
    cfg = yaml.safe_load((path / CONFIG_FILE).read_text())
    cfg["train"].update(train)
    (path / CONFIG_FILE).write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize(
    ("setup", "kind", "error"),
    [
        ("done", KIND, None),
        ("done_runtime_edit", KIND, None),  # runtime fields may be edited
        ("running", KIND, "the run is unfinished"),
        ("failed", KIND, "the run is failed: ValueError: boom"),
        ("done", "other", "holds a 'toy' run, not a other run"),
        ("done_edited", KIND, "differs from the config the run was trained with"),
        ("nothing", KIND, "not a run directory"),
    ],
)
def test_open(tmp_path, setup, kind, error):
    path = tmp_path / "run"
    cfg = _Cfg(seed=3)
    if setup != "nothing":
        _existing(path, setup.split("_")[0], cfg)
    if setup == "done_edited":
        _edit_config(path, lr=0.9)
    elif setup == "done_runtime_edit":
        _edit_config(path, device="cuda")
    if error is not None:
        with pytest.raises(RunError, match=error):
            RunDir.open(path, kind, _Cfg)
        return
    run, loaded = RunDir.open(path, kind, _Cfg)
    assert isinstance(loaded, _Cfg) and loaded.seed == 3 and loaded.train.lr == cfg.train.lr
    assert loaded.train.device == ("cuda" if setup == "done_runtime_edit" else "cpu")
    assert run.path == path and run.kind == KIND and run.inputs == INPUTS
    assert run.fingerprint == config_fingerprint(cfg)


# --------------------------------------------------------------------------- metrics, weights


def test_metrics_sections_merge(tmp_path):
    run = RunDir.start(tmp_path / "r", KIND, _Cfg())
    assert run.read_metrics() == {}
    run.update_metrics("fit", {"r2": 0.5, "folds": [0.4, 0.6]})
    run.update_metrics("evaluate", {"map": 0.7})
    run.update_metrics("fit", {"r2": 0.8})  # a section is replaced whole
    assert run.read_metrics() == {"fit": {"r2": 0.8}, "evaluate": {"map": 0.7}}
    assert json.loads((run.path / METRICS_FILE).read_text()) == run.read_metrics()
    (run.path / METRICS_FILE).write_text("{oops")
    with pytest.raises(RunError, match="not valid JSON"):
        run.read_metrics()


def test_save_and_load_model_round_trip(tmp_path):
    run = RunDir.start(tmp_path / "r", KIND, _Cfg())
    torch.manual_seed(0)
    model = ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=8)).eval()
    path = run.save_model("fold0/model.safetensors", model)
    assert path == run.path / "fold0" / "model.safetensors" and path.is_file()
    loaded = run.load_model("fold0/model.safetensors")
    assert isinstance(loaded, ReIDModel) and not loaded.training
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["embedding"], model(x)["embedding"])
    with pytest.raises(RunError, match="model file not found"):
        run.load_model("fold1/model.safetensors")


def test_kind_of_names_the_pipeline_or_refuses(tmp_path):
    from fieldvision.runs import RunDir

    (tmp_path / "run.json").write_text('{"kind": "mil", "status": "done"}')
    assert RunDir.kind_of(tmp_path) == "mil"
    with pytest.raises(RunError, match="not a run directory"):
        RunDir.kind_of(tmp_path / "nope")


def test_a_run_stays_readable_when_a_later_release_adds_a_config_field(tmp_path):
    """A field added later (with a default) is absent from an old config.yaml: the run still
    opens, and its config gets the default."""
    from fieldvision.config import StrictModel as _Strict

    class Old(_Strict):
        lr: float = 0.1

    class New(_Strict):
        lr: float = 0.1
        added: int = 3

    run = RunDir.start(tmp_path / "run", "demo", Old())
    run.done()
    _, cfg = RunDir.open(tmp_path / "run", "demo", New)
    assert cfg.added == 3
    text = (tmp_path / "run" / CONFIG_FILE).read_text()
    (tmp_path / "run" / CONFIG_FILE).write_text(text.replace("0.1", "0.2"))
    with pytest.raises(RunError, match="differs from the config"):
        RunDir.open(tmp_path / "run", "demo", New)


class _OldRelease(StrictModel):
    lr: float = 0.1


class _NewRelease(StrictModel):
    lr: float = 0.1
    added: int = 3  # a field a later release added, default = the old behaviour


@pytest.mark.parametrize("status", ["done", "running"])
def test_a_run_from_before_a_new_config_field_resumes_under_the_new_release(tmp_path, status):
    old = RunDir.start(tmp_path / "run", "demo", _OldRelease(), INPUTS)
    if status == "done":
        old.done()
    before = _run_json(tmp_path / "run")
    recorded = (tmp_path / "run" / CONFIG_FILE).read_text()
    run = RunDir.start(tmp_path / "run", "demo", _NewRelease(), INPUTS)
    # The run keeps its own identity: config.yaml untouched, run.json's fingerprint kept,
    # so the run still opens (and its exports still match it).
    assert run.fingerprint == before["fingerprint"]
    assert (tmp_path / "run" / CONFIG_FILE).read_text() == recorded
    assert _run_json(tmp_path / "run")["fingerprint"] == before["fingerprint"]
    assert _run_json(tmp_path / "run")["status"] == status
    if status == "done":
        _, cfg = RunDir.open(tmp_path / "run", "demo", _NewRelease)
        assert cfg.added == 3


@pytest.mark.parametrize(
    ("new_cfg", "edit", "message"),
    [
        # The added field is set to a non-default value: a different config.
        (_NewRelease(added=5), None, r"different config \(added\)"),
        # The recorded config.yaml was edited since training: not the run's record.
        (_NewRelease(lr=0.2), ("0.1", "0.2"), "different config"),
    ],
)
def test_an_old_run_with_a_really_different_config_is_still_refused(
    tmp_path, new_cfg, edit, message
):
    RunDir.start(tmp_path / "run", "demo", _OldRelease(), INPUTS).done()
    if edit:
        path = tmp_path / "run" / CONFIG_FILE
        path.write_text(path.read_text().replace(*edit))
    with pytest.raises(RunError, match=message):
        RunDir.start(tmp_path / "run", "demo", new_cfg, INPUTS)
