"""Training on an HF base (the loader itself: tests/checkpoints)."""

import os

import jax
import numpy as np

from lta.train import optimizers
from lta.train import loop as trainer
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.models.mt5.config import T5Config
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from tests.trainer import fixture_task
from tests.trainer import states

HF_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                      "hf", "mt5_tiny")
# The architecture of tests/fixtures/hf/mt5_tiny (a transformers export).
HF_CONFIG = T5Config(vocab_size=128, d_model=32, d_kv=8, num_heads=3, d_ff=48,
                     num_encoder_layers=2, num_decoder_layers=3,
                     relative_attention_num_buckets=8,
                     relative_attention_max_distance=12, dropout_rate=0.0,
                     name="mt5-tiny-fixture")


def test_adapter_training_on_an_hf_base(tmp_path):
  """The frozen base stays the HF weights; the manifest fingerprints them."""
  config, base = base_model.load_base_model(HF_DIR, HF_CONFIG, "test")
  assert config == HF_CONFIG
  result = trainer.train(
      model_dir=str(tmp_path), mixture_or_task_name=fixture_task.TASK,
      task_feature_lengths=fixture_task.LENGTHS, train_steps=2,
      initial_checkpoint_path=HF_DIR, adapter=states.LORA,
      model_config=HF_CONFIG, batch_size=8, log_period=1,
      optimizer=optimizers.make_optimizer(
          "adamw", optimizers.make_schedule(1e-2)))
  frozen = flatten_tree(jax.device_get(result.state.frozen["params"]))
  want = flatten_tree(base)
  assert set(frozen) == set(want)
  for path, value in want.items():
    assert frozen[path].tobytes() == np.asarray(value).tobytes(), path
  _, manifest = adapter_io.load_adapter(result.adapter_dir)
  assert manifest.base_model_fingerprint == (
      fingerprint.base_model_fingerprint(HF_CONFIG, base))
  assert manifest.base_model_name == "mt5-tiny-fixture"
