"""lta.pipeline.stages: when a re-run skips, resumes, redoes or refuses a stage."""

import json
import os

import pytest

from lta import errors
from lta.pipeline import stages

SPEC = {"task": "xlsum.en", "task_steps": 150, "feature_lengths": (64, 16),
        "model": {"d_model": 64, "name": "tiny"}}


def _stage(tmp_path, spec=None):
  return stages.Stage.in_dir("task_en adapter", str(tmp_path / "task_en"),
                             SPEC if spec is None else spec)


def test_new_then_resume_then_cached(tmp_path):
  stage = _stage(tmp_path)
  assert stages.check(stage) == stages.NEW
  stages.start(stage)
  assert stages.check(stage) == stages.RESUME  # interrupted: run again
  stages.finish(stage)
  assert stages.check(stage) == stages.CACHED
  record = json.load(open(stage.record_path))
  assert record["finished"] and record["digest"] == stage.digest
  # A tuple reads back as a list: the same spec, still cached.
  assert record["spec"]["feature_lengths"] == [64, 16]


def test_another_config_is_refused_and_named(tmp_path):
  stages.finish(_stage(tmp_path))
  changed = _stage(tmp_path, {**SPEC, "task_steps": 600,
                              "model": {"d_model": 128, "name": "tiny"}})
  with pytest.raises(errors.ConfigError) as e:
    stages.check(changed)
  message = str(e.value)
  assert "\n" not in message
  assert changed.record_path in message
  assert "model.d_model: 64 -> 128" in message
  assert "task_steps: 150 -> 600" in message
  assert "PipelineConfig.workdir" in message
  # The trained outputs are untouched; a redoable stage is told it is stale.
  assert json.load(open(changed.record_path))["spec"]["task_steps"] == 150
  assert stages.check(changed, redo_stale=True) == stages.STALE
  assert stages.changes(changed) == ["model.d_model: 64 -> 128",
                                     "task_steps: 150 -> 600"]


def test_outputs_without_a_record_are_refused(tmp_path):
  stage = _stage(tmp_path)
  os.makedirs(stage.outputs[0])
  assert stages.check(stage) == stages.NEW  # an empty directory is nothing
  open(os.path.join(stage.outputs[0], "checkpoint"), "w").close()
  with pytest.raises(errors.ConfigError, match="no stage.json"):
    stages.check(stage)


def test_digest_follows_the_spec():
  a = stages.Stage("a", "/x/stage.json", SPEC)
  assert a.digest == stages.Stage("b", "/y/stage.json", dict(SPEC)).digest
  assert a.digest != stages.Stage("a", "/x/stage.json",
                                  {**SPEC, "task_steps": 151}).digest


def test_differences_are_what_the_new_spec_asks_for():
  # A shared base records its first run's seed; later runs do not ask.
  assert stages.differences({"a": 1, "seed": 0}, {"a": 1}) == []
  assert stages.differences({"a": 1, "b": {"c": None}},
                            {"a": 1, "b": {"c": 0}, "d": 2}) == [
                                "b.c: null -> 0", "d: unset -> 2"]


def _result(preempted, step):
  from lta.train.loop import TrainResult  # pylint: disable=g-import-not-at-top
  return TrainResult(state=None, step=step, history=[], eval_history=[],
                     preempted=preempted, adapter_dir=None, model_dir=None)


def test_a_preempted_training_leaves_its_stage_to_resume(tmp_path):
  from lta.pipeline import run  # pylint: disable=g-import-not-at-top
  stage = _stage(tmp_path)
  with pytest.raises(errors.Preempted, match="step 40 .* rerun") as caught:
    run._run_stage(stage, "task_en adapter",
                   lambda: _result(preempted=True, step=40))
  assert caught.value.exit_code == 75
  assert stages.check(stage) == stages.RESUME  # not marked finished
  run._run_stage(stage, "task_en adapter",
                 lambda: _result(preempted=False, step=150))
  assert stages.check(stage) == stages.CACHED
