"""T5X checkpoints: the fixture's layout, import, and lta eval/merge on one."""

import json
import os
import shutil

from flax import serialization
import gin
import jax
import numpy as np
import pytest
import seqio

from lta import errors
from lta.jobs import evaluate as eval_job
from lta.cli import gin_flags as gin_cli
from lta.eval import metrics
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.checkpoints import t5x
from lta.cli import merge as merge_main
from lta.models.mt5.network import Transformer
from lta.models.contract import EncoderDecoderModel
from lta.adapters import adapter_io
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import AdapterManifest
from lta.adapters.tree import flatten_tree, unflatten_tree
from tests.checkpoints import hf_fixtures as fx
from tests.fixtures import make_t5x_fixture
from tests.trainer import fixture_task


def test_written_checkpoint_has_t5x_layout(tmp_path, mt5):
  ckpt = make_t5x_fixture.write_t5x(mt5[1], str(tmp_path), step=7)
  assert os.path.basename(ckpt) == "checkpoint_7"
  with open(os.path.join(ckpt, "checkpoint"), "rb") as f:
    contents = serialization.msgpack_restore(f.read())
  assert contents["version"] == 3
  spec = contents["optimizer"]["target"]["encoder"]["layers_0"]["attention"][
      "key"]["kernel"]
  assert spec["driver"] == "zarr"
  path = spec["kvstore"]["path"].rstrip("/")  # tensorstore adds a slash
  assert path == "target.encoder.layers_0.attention.key.kernel"
  assert os.path.isdir(os.path.join(ckpt, spec["kvstore"]["path"]))


@pytest.mark.parametrize("split_heads", [None, 3])
def test_t5x_import_equals_the_same_weights(tmp_path, mt5, split_heads):
  config, params = mt5
  ckpt = make_t5x_fixture.write_t5x(params, str(tmp_path),
                                    split_heads=split_heads)
  fx.assert_same_params(params, t5x.load_t5x_checkpoint(ckpt, config))
  # The msgpack file itself is accepted too.
  fx.assert_same_params(params, t5x.load_t5x_checkpoint(
      os.path.join(ckpt, "checkpoint"), config))


def test_orbax_t5x_import_equals_the_same_weights(tmp_path, mt5):
  config, params = mt5
  ckpt = make_t5x_fixture.write_orbax(params, str(tmp_path))
  fx.assert_same_params(params, t5x.load_t5x_checkpoint(ckpt, config))


def _with(params, change):
  flat = dict(flatten_tree(params))
  change(flat)
  return unflatten_tree(flat)


def test_unknown_missing_and_wrong_shape_are_named(tmp_path, mt5):
  config, params = mt5
  extra = "encoder/layers_7/attention/query/kernel"
  cases = {
      "unknown": (lambda f: f.update({extra: np.zeros((32, 24), np.float32)}),
                  extra),
      "missing": (lambda f: f.pop("decoder/layers_2/mlp/wo/kernel"),
                  "decoder/layers_2/mlp/wo/kernel"),
      "shape": (lambda f: f.update({"decoder/logits_dense/kernel":
                                    np.zeros((32, 100), np.float32)}),
                r"decoder/logits_dense/kernel.*\(32, 100\).*\(32, 128\)"),
  }
  for name, (change, pattern) in cases.items():
    ckpt = make_t5x_fixture.write_t5x(_with(params, change),
                                      str(tmp_path / name))
    with pytest.raises(ValueError, match=pattern):
      t5x.load_t5x_checkpoint(ckpt, config)


def test_missing_zarr_array_is_named(tmp_path, mt5):
  config, params = mt5
  ckpt = make_t5x_fixture.write_t5x(params, str(tmp_path))
  gone = "target.decoder.layers_1.self_attention.value.kernel"
  shutil.rmtree(os.path.join(ckpt, gone))
  with pytest.raises(FileNotFoundError, match=gone):
    t5x.load_t5x_checkpoint(ckpt, config)


def test_not_a_checkpoint(tmp_path, mt5):
  with pytest.raises(FileNotFoundError, match="checkpoint"):
    t5x.load_t5x_checkpoint(str(tmp_path), mt5[0])


# ---------------------------------------- lta eval and lta merge on T5X ---

# An XLSum-family task (so eval knows its metric) over the trainer fixture's
# lowercase examples; their byte ids fit mt5_tiny's 128-entry vocabulary.
EVAL_TASK = "xlsum_t5x_test.en"
LENGTHS = "{'inputs': 32, 'targets': 16}"
LORA = AdapterConfig(rank=2, alpha=4.0)


def _register_eval_task():
  if EVAL_TASK in seqio.TaskRegistry.names():
    return
  seqio.TaskRegistry.add(
      EVAL_TASK,
      source=seqio.FunctionDataSource(fixture_task._dataset_fn,  # pylint: disable=protected-access
                                      splits=("validation",)),
      preprocessors=[seqio.preprocessors.tokenize,
                     seqio.preprocessors.append_eos_after_trim],
      output_features={
          k: seqio.Feature(seqio.ByteVocabulary(), add_eos=True)
          for k in ("inputs", "targets")},
      metric_fns=[metrics.rouge_plain])


@pytest.fixture
def bases(tmp_path, mt5):
  """(HF dir, T5X dir of the same weights, its gin/models file, adapter)."""
  config, params = mt5
  t5x_dir = make_t5x_fixture.write_t5x(params, str(tmp_path / "t5x"))
  models_gin = tmp_path / "mt5_tiny.gin"
  models_gin.write_text("".join(
      f"T5Config.{k} = {json.dumps(v) if isinstance(v, str) else repr(v)}\n"
      for k, v in config.to_dict().items()))
  model = EncoderDecoderModel(Transformer(config, LORA))
  shapes = jax.eval_shape(lambda: model.init_unboxed(jax.random.key(0)))
  rng = np.random.default_rng(0)
  tree = jax.tree.map(
      lambda s: rng.normal(size=s.shape).astype(np.float32) * 0.1,
      shapes["adapters"])
  adapter_dir = str(tmp_path / "adapter")
  adapter_io.save_adapter(adapter_dir, tree, AdapterManifest.for_tree(
      tree, LORA, base_model_name=config.name, task="xlsum", language="en",
      base_model_fingerprint=fingerprint.base_model_fingerprint(config,
                                                                params)))
  gin.clear_config()
  yield fx.MT5, t5x_dir, str(models_gin), adapter_dir
  gin.clear_config()


def _eval(out, base, adapter_dir, *extra):
  gin.clear_config()
  gin_cli.parse_and_configure([
      "--gin_file=runs/eval.gin", *extra,
      f'--gin.run_eval.output_dir="{out}"',
      f'--gin.run_eval.base_checkpoint="{base}"',
      f"--gin.run_eval.tasks=['{EVAL_TASK}']",
      f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
      f'--gin.run_eval.adapter_dir="{adapter_dir}"',
      '--gin.run_eval.split="validation"', "--gin.run_eval.max_examples=4"])
  return eval_job.run_eval()


def test_eval_on_a_t5x_base_equals_eval_on_the_hf_base(tmp_path, bases):
  _register_eval_task()
  hf_dir, t5x_dir, models_gin, adapter_dir = bases
  want = _eval(tmp_path / "hf", hf_dir, adapter_dir)
  got = _eval(tmp_path / "t5x", t5x_dir, adapter_dir,
              f"--gin_file={models_gin}",
              "--gin.run_eval.model_config=@T5Config()")
  assert sorted(got) == sorted(want)
  texts = [name for name in want
           if name.endswith((".json", ".jsonl", ".csv", ".md"))]
  assert any(name.endswith(".jsonl") for name in texts), texts
  for name in texts:
    with open(want[name], encoding="utf-8") as f:
      expected = f.read().replace(hf_dir, "BASE")
    with open(got[name], encoding="utf-8") as f:
      assert f.read().replace(t5x_dir, "BASE") == expected, name
  # Without the architecture a T5X base is refused, naming the fix.
  with pytest.raises(errors.ConfigError,
                     match="--gin.run_eval.model_config=@T5Config()"):
    _eval(tmp_path / "none", t5x_dir, adapter_dir)


def test_merge_into_a_t5x_base_equals_merge_into_the_hf_base(tmp_path, bases):
  hf_dir, t5x_dir, models_gin, adapter_dir = bases
  merged = {}
  for name, base, extra in (
      ("hf", hf_dir, []),
      ("t5x", t5x_dir, [f"--gin_file={models_gin}",
                        "--gin.run_merge.model_config=@T5Config()"])):
    gin.clear_config()
    out = tmp_path / f"merged_{name}"
    assert merge_main.main([
        "--gin_file=runs/merge.gin", *extra,
        f'--gin.run_merge.output_dir="{out}"',
        '--gin.run_merge.composition="task_only"',
        '--gin.run_merge.target="pt"', "--gin.run_merge.sources=['en']",
        "--gin.run_merge.lam=0.5",
        f"--gin.run_merge.task_vectors={{'en': '{adapter_dir}'}}",
        f'--gin.run_merge.merge_into_base_path="{base}"']) == 0
    merged[name] = hf.load_hf_checkpoint(str(out / "model"))
  assert (merged["t5x"][0].architecture_dict() ==
          merged["hf"][0].architecture_dict())
  fx.assert_same_params(merged["hf"][1], merged["t5x"][1])
