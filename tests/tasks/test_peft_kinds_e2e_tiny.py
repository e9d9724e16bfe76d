"""Prompt tuning and bottleneck adapters: train -> compose -> eval in-process.

On a random one-layer mT5 base, `lta train`'s loop trains a task vector
on xlsum.en and a language vector on mc4_prefix_lm.en of each new kind,
and `lta eval`'s job composes them (Eq. 1, factor space) and decodes the
composition unmerged, as it must for kinds that do not fold into the base.
"""

import json

import jax
import numpy as np
import pytest

from lta.adapters import adapter_io
from lta.adapters.config import AdapterConfig
from lta.adapters.tree import flatten_tree
from lta.checkpoints import base_model
from lta.jobs import evaluate
from lta.models import families
from lta.models.mt5.config import T5Config
from lta.train import loop
from lta.train import optimizers

# Batches of 8: one row per fake CPU device (tests/conftest.py).
LENGTHS = {"inputs": 32, "targets": 8}
CONFIG = T5Config(vocab_size=1000, d_model=16, d_kv=8, d_ff=32, num_heads=2,
                  num_encoder_layers=1, num_decoder_layers=1,
                  relative_attention_num_buckets=8,
                  relative_attention_max_distance=16, name="mt5-e2e")
KINDS = {
    "prompt": AdapterConfig(kind="prompt", num_virtual_tokens=2),
    "bottleneck": AdapterConfig(kind="bottleneck", bottleneck_width=4),
}


def _train(tmp_path, name, task, base, adapter):
  result = loop.train(
      model_dir=str(tmp_path / name), mixture_or_task_name=task,
      task_feature_lengths=LENGTHS, train_steps=1,
      initial_checkpoint_path=base, mixture_or_task_module="lta_tasks",
      adapter=adapter, batch_size=8,
      optimizer=optimizers.make_optimizer(name="adamw"), log_period=1,
      checkpoint_period=1, async_checkpointing=False)
  assert result.step == 1 and result.adapter_dir
  return result.adapter_dir


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """One random base for both kinds (their adapters are what differs)."""
  params = jax.jit(families.build_model(CONFIG).init_unboxed)(
      jax.random.PRNGKey(0))["params"]
  path = str(tmp_path_factory.mktemp("peft_kinds") / "base")
  base_model.save_base_model(params, CONFIG, path)
  return path


@pytest.mark.parametrize("kind", KINDS)
def test_train_compose_eval_with_a_new_adapter_kind(tfds_dir, tmp_path, base,
                                                    kind):
  adapter = KINDS[kind]
  task_en = _train(tmp_path, "task_en", "xlsum.en", base, adapter)
  lang_en = _train(tmp_path, "lang_en", "mc4_prefix_lm.en", base, adapter)
  tree, manifest = adapter_io.load_adapter(task_en)
  assert manifest.config == adapter
  if kind == "bottleneck":  # training moved the zero-initialised up weights
    ups = [v for p, v in flatten_tree(tree).items()
           if p.endswith("up_kernel")]
    assert ups and all(np.abs(u).max() > 0 for u in ups)
  paths = evaluate.run_eval(
      output_dir=str(tmp_path / "eval"), base_checkpoint=base,
      tasks=["xlsum.en"], task_feature_lengths=LENGTHS, split="validation",
      selection_split="validation", batch_size=2, max_examples=2,
      composition="lang_task_add", task_vectors={"en": task_en},
      language_vectors={"en": lang_en}, sources=["en"], lambdas=(0.5,))
  records = json.load(open(paths["results.json"]))["records"]
  assert {r["method"] for r in records} == {"task_only", "lang_task_add"}
  for r in records:
    assert r["task"] == "xlsum.en" and r["num_examples"] >= 1
    assert np.isfinite(r["scores"]["rouge2"])
