"""The decoder-only benches' shared model: a gin model file, random weights
made once by transformers, imported by lta.

bench_decoder_train.py and bench_decoder_decode.py run lta and the HF peer
on the SAME weights: the model's DecoderConfig comes from a gin model file
(default: the real Qwen2.5-0.5B shape, gin/models/qwen2_5_0_5b.gin, with
optional --gin_binding overrides for smaller runs); lta writes its HF
config.json (lta.checkpoints.hf_decoder.config_to_hf), transformers fills
the directory with random weights (bench/hf_random_weights.py, under
--hf_python), and each lta worker imports them with
lta.checkpoints.hf_decoder.load_hf_decoder, checking that the imported
config is the gin one. The directory is a temporary one, outside the
repository.

Standard library at import (HF workers parse the same flags); lta is
imported by the functions that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import tempfile
from typing import Any, Iterator

# pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GIN = os.path.join("gin", "models", "qwen2_5_0_5b.gin")


def add_model_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--model_gin", default=DEFAULT_GIN,
                 help="gin file binding DecoderConfig (relative to the "
                 "repository or absolute)")
  p.add_argument("--gin_binding", action="append", default=[],
                 help="extra binding, e.g. DecoderConfig.num_layers=2 "
                 "(repeatable)")
  p.add_argument("--weights_dir",
                 help="keep the random HF weights here, made once and reused"
                 " by later runs of the same model (lta checks the config); "
                 "default: a temporary directory, deleted at the end")


def model_config(flags):
  """The DecoderConfig that --model_gin and --gin_binding bind."""
  import gin
  from lta.models.decoder.config import DecoderConfig
  path = flags.model_gin if os.path.isabs(flags.model_gin) else os.path.join(
      REPO, flags.model_gin)
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings([path], flags.gin_binding)
    return DecoderConfig()
  finally:
    gin.clear_config()


def describe(config) -> str:
  from lta.models.decoder.network import param_shapes
  count = sum(_size(shape) for shape in param_shapes(config).values())
  return (f"{config.name} ({config.family}): {count:,} parameters, hidden "
          f"{config.hidden_size}, {config.num_layers} layers, "
          f"{config.num_heads} query heads / {config.num_kv_heads} kv heads "
          f"x {config.head_dim}, MLP {config.intermediate_size}, vocab "
          f"{config.vocab_size:,}, tied head {config.tie_word_embeddings}")


def _size(shape) -> int:
  n = 1
  for d in shape:
    n *= d
  return n


def make_weights(config, directory: str, hf_python: str,
                 env: dict[str, str], seed: int = 0) -> None:
  """config.json from lta, random weights from transformers, in directory."""
  from lta.checkpoints import hf
  from lta.checkpoints import hf_decoder
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, hf.CONFIG_FILE), "w") as f:
    json.dump(hf_decoder.config_to_hf(config), f, indent=2)
  proc = subprocess.run(
      [hf_python, os.path.join(REPO, "bench", "hf_random_weights.py"),
       f"--model_dir={directory}", f"--seed={seed}"],
      env=env, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"hf_random_weights.py failed (exit "
                       f"{proc.returncode}):\n{proc.stdout[-3000:]}\n"
                       f"{proc.stderr[-3000:]}")


@contextlib.contextmanager
def weights(flags, config, env: dict[str, str]) -> Iterator[str]:
  """The HF weights' directory: --weights_dir, or a temporary one."""
  if flags.weights_dir:
    if not os.path.exists(os.path.join(flags.weights_dir,
                                       "model.safetensors")):
      make_weights(config, flags.weights_dir, flags.hf_python, env)
    yield os.path.abspath(flags.weights_dir)
    return
  with tempfile.TemporaryDirectory(prefix="lta-bench-") as tmp:
    make_weights(config, os.path.join(tmp, "hf"), flags.hf_python, env)
    yield os.path.join(tmp, "hf")


def load_weights(directory: str, expected) -> dict[str, Any]:
  """lta's float32 numpy params of the HF model in directory; its config
  must be `expected` (the gin one), apart from the name."""
  from lta.checkpoints import hf_decoder
  config, params = hf_decoder.load_hf_decoder(directory)
  config, expected = _comparable(config), _comparable(expected)
  if config != expected:
    diff = {k: (v, getattr(config, k)) for k, v in dataclasses.asdict(
        expected).items() if getattr(config, k) != v}
    raise RuntimeError(f"{directory}: imported config differs from the gin "
                       f"one (gin, imported): {diff}")
  return params


def _comparable(config):
  """Without the name, and with no layer types when every layer is full
  (transformers writes them out; the gin files leave them empty)."""
  full = all(t == "full_attention" for t in config.layer_types)
  return dataclasses.replace(config, name="",
                             layer_types=() if full else config.layer_types)


def train_state(model, optimizer, params: dict[str, Any]):
  """`lta train`'s set-up of a LoRA train state on one device (its
  init_variables and create_state) from a numpy base, which it empties."""
  import jax
  from lta import partitioning
  from lta.train import steps
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=1, model=1),
                                devices=jax.devices()[:1])
  rules = partitioning.LOGICAL_AXIS_RULES
  var_sh, state_sh = steps.state_shardings(model, "adapters", optimizer,
                                           mesh, rules)
  with partitioning.activated(mesh, rules):
    variables = steps.init_variables(model, var_sh, 0, params)
    return steps.create_state(variables, "adapters", optimizer, var_sh,
                              state_sh, 0)
