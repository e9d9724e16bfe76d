"""The one base-model loader of train, eval and merge: HF or T5X, or refused."""

import pytest

from lta import errors
from lta.checkpoints import base_model
from tests.checkpoints import hf_fixtures as fx
from tests.fixtures import make_t5x_fixture


def test_hf_and_t5x_bases_load_alike(tmp_path, mt5):
  config, params = mt5
  t5x_dir = make_t5x_fixture.write_t5x(params, str(tmp_path))
  # An HF checkpoint brings its architecture; a T5X one takes the gin one.
  assert base_model.load_base_model(fx.MT5, None, "flag")[0] == config
  for path in (t5x_dir, f"{t5x_dir}/checkpoint"):
    got_config, got = base_model.load_base_model(path, config, "flag")
    assert got_config == config
    fx.assert_same_params(got, params)
  named = config.replace(name="gin-name", dropout_rate=0.1)
  assert base_model.load_base_model(fx.MT5, named, "flag")[0] == named


def _refusal(error, match, *args):
  with pytest.raises(error, match=match) as info:
    base_model.load_base_model(*args)
  assert isinstance(info.value, errors.LtaError)
  assert "\n" not in str(info.value)


def test_refusals_are_one_line_errors_naming_the_path(tmp_path, mt5):
  config, params = mt5
  _refusal(errors.MissingFileError,
           r"^run_eval.base_checkpoint='/no/such/base' does not exist$",
           "/no/such/base", config, "run_eval.base_checkpoint")
  _refusal(errors.CheckpointError,
           rf"^INITIAL_CHECKPOINT_PATH='{tmp_path}' is neither an HF "
           r"checkpoint \(config.json with model.safetensors",
           str(tmp_path), config, "INITIAL_CHECKPOINT_PATH")
  t5x_dir = make_t5x_fixture.write_t5x(params, str(tmp_path / "t5x"))
  _refusal(errors.ConfigError,
           rf"run_merge.merge_into_base_path='{t5x_dir}' is a T5X checkpoint"
           r".*--gin.run_merge.model_config=@T5Config\(\)$",
           t5x_dir, None, "run_merge.merge_into_base_path",
           "run_merge.model_config")
  _refusal(errors.ConfigError,
           r"INITIAL_CHECKPOINT_PATH='.*mt5_tiny' does not match the model "
           r"config \(gin value, checkpoint value\): d_ff=\(64, 48\)",
           fx.MT5, config.replace(d_ff=64), "INITIAL_CHECKPOINT_PATH")
