"""Kronecker adapters (KronA, LoKr) train through lta.train.loop.train.

On the 8-device (data=4, model=2) mesh, so the Kronecker factors' logical
axes must map onto it. The LoKr run uses PEFT's per-module factorization on
attention and MLP kernels, so its modules have different Kronecker factors.
One layer per stack keeps the compilations short.
"""

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lta.train import optimizers
from lta import partitioning
from lta.train import loop as trainer
from lta.adapters import adapter_io
from lta.adapters.config import ATTENTION_TARGETS, MLP_TARGETS, AdapterConfig
from tests.trainer import fixture_task

STEPS = 12
CONFIG = fixture_task.CONFIG.replace(num_encoder_layers=1,
                                    num_decoder_layers=1)
KRONA = AdapterConfig(kind="krona", rank=1, alpha=1.0, kron_factors=(4, 4))
# Attention (32 -> 32) gets A (4, 4), wi (32 -> 64) (4, 8), wo (64 -> 32)
# (8, 4).
LOKR = AdapterConfig(kind="krona", rank=2, alpha=2.0, kron_b_rank=2,
                     kron_factor_rule="peft",
                     targets=f"(?:{ATTENTION_TARGETS})|(?:{MLP_TARGETS})")


pytestmark = pytest.mark.usefixtures("clean_gin")


def _train(model_dir, adapter):
  return trainer.train(
      model_dir=str(model_dir), mixture_or_task_name=fixture_task.TASK,
      task_feature_lengths=fixture_task.LENGTHS, train_steps=STEPS,
      initial_checkpoint_path=None, adapter=adapter,
      model_config=CONFIG, batch_size=8, log_period=1,
      checkpoint_period=STEPS, adapter_task="reverse", adapter_language="en",
      mesh_config=partitioning.MeshConfig(data=4, model=2),
      optimizer=optimizers.make_optimizer("adamw",
                                          optimizers.make_schedule(3e-2)))


def _losses(result):
  return [h["loss"] for h in result.history]


def _check_learnt_and_exported(result, adapter):
  losses = _losses(result)
  assert np.mean(losses[-3:]) < losses[0] - 0.5, losses
  tree, manifest = adapter_io.load_adapter(result.adapter_dir)
  assert manifest.config == adapter
  return tree


def test_krona_trains_on_a_data4_model2_mesh(tmp_path):
  result = _train(tmp_path, KRONA)
  tree = _check_learnt_and_exported(result, KRONA)
  query = result.state.trainable["adapters"]["encoder"]["layers_0"][
      "attention"]["query"]
  assert query["kron_a"].sharding.spec == P(None, None)
  assert query["kron_b"].sharding.spec == P(None, "model")  # (8, 8)
  assert len(query["kron_b"].addressable_shards) == 8
  assert query["kron_b"].addressable_shards[0].data.shape == (8, 4)
  assert tree["encoder"]["layers_0"]["attention"]["query"]["kron_a"].shape \
      == (4, 4)


def test_lokr_with_per_module_factors_trains_on_a_data4_model2_mesh(
    tmp_path):
  result = _train(tmp_path, LOKR)
  tree = _check_learnt_and_exported(result, LOKR)
  layer = tree["decoder"]["layers_0"]
  assert layer["self_attention"]["out"]["kron_a"].shape == (4, 4)
  assert layer["mlp"]["wi_0"]["kron_a"].shape == (4, 8)
  assert layer["mlp"]["wo"]["kron_a"].shape == (8, 4)
  assert layer["mlp"]["wo"]["kron_b_down"].shape == (8, 2)
  up = result.state.trainable["adapters"]["decoder"]["layers_0"]["mlp"][
      "wi_0"]["kron_b_up"]
  assert up.sharding.spec == P(None, "model")  # (2, 64 / 8)
