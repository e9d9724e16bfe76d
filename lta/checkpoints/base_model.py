"""The frozen base model of a run, from an HF or a T5X checkpoint.

HF checkpoints are mT5 / T5 (lta.checkpoints.hf), mBART / NLLB-200
(lta.checkpoints.hf_bart) or a decoder-only family (lta.checkpoints.
hf_decoder: Llama, Qwen2, Qwen3, Gemma 2, Gemma 3 text), told apart by
config.json; the config returned is then a T5Config, a BartConfig or a
DecoderConfig.

`lta train` (INITIAL_CHECKPOINT_PATH), `lta eval` (run_eval.base_checkpoint)
and `lta merge` (run_merge.merge_into_base_path) all read their base here.
An HF directory (or weights file) carries its architecture, which must agree
with the gin model config when one is given; a T5X checkpoint does not, so
it needs the gin config (a gin/models file).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from lta import errors
from lta.checkpoints import hf
from lta.checkpoints import hf_bart
from lta.checkpoints import hf_decoder
from lta.checkpoints import t5x
from lta.models.bart.config import BartConfig
from lta.models.decoder.config import DecoderConfig
from lta.models.mt5.config import T5Config

ModelConfig = Union[T5Config, BartConfig, DecoderConfig]

_HF_WEIGHTS_SUFFIXES = (".safetensors", ".safetensors.index.json",
                        ".msgpack", ".msgpack.index.json")


def is_hf_checkpoint(path: str) -> bool:
  """An HF model directory (config.json) or one of its weights files."""
  if os.path.isfile(path):
    return path.endswith(_HF_WEIGHTS_SUFFIXES)
  return os.path.isfile(os.path.join(path, hf.CONFIG_FILE))


def is_t5x_checkpoint(path: str) -> bool:
  """A T5X `checkpoint_<step>` dir, its `checkpoint` file or orbax `state`."""
  if os.path.isfile(path):
    return os.path.basename(path) == t5x.MSGPACK_FILE
  return (os.path.basename(os.path.normpath(path)) == t5x.ORBAX_STATE_DIR or
          os.path.isfile(os.path.join(path, t5x.MSGPACK_FILE)) or
          os.path.isdir(os.path.join(path, t5x.ORBAX_STATE_DIR)))


def _load_hf(path: str) -> tuple[ModelConfig, dict[str, Any]]:
  hf_config = hf_decoder.read_hf_config(path)[3]
  if hf_decoder.is_decoder_only(hf_config):
    return hf_decoder.load_hf_decoder(path)
  if isinstance(hf_config, dict) and (
      hf_config.get("model_type") in hf_bart.ARCHITECTURES):
    return hf_bart.load_hf_checkpoint(path)
  return hf.load_hf_checkpoint(path)


def load_base_model(path: str, config: Optional[ModelConfig] = None,
                    flag: str = "base checkpoint",
                    config_flag: str = "model_config"
                    ) -> tuple[ModelConfig, dict[str, Any]]:
  """(config, numpy params) of the checkpoint at `path`.

  Args:
    path: an HF directory or weights file, or a T5X checkpoint.
    config: the gin model config; None takes an HF checkpoint's own (and
      refuses a T5X one, which does not record its architecture).
    flag, config_flag: the gin settings of `path` and `config`, for error
      messages.
  """
  where = f"{flag}={path!r}"
  if not os.path.exists(path):
    raise errors.MissingFileError(f"{where} does not exist")
  if is_hf_checkpoint(path):
    hf_config, params = _load_hf(path)
    if config is None:
      return hf_config, params
    if type(config) is not type(hf_config):
      raise errors.ConfigError(
          f"{where} holds a {type(hf_config).__name__} model, but the model "
          f"config is a {type(config).__name__}; use the gin/models file of "
          "this checkpoint")
    want, got = config.architecture_dict(), hf_config.architecture_dict()
    differ = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    if differ:
      raise errors.ConfigError(
          f"{where} does not match the model config (gin value, checkpoint "
          "value): " + ", ".join(f"{k}={v}" for k, v in sorted(
              differ.items())) + "; use the gin/models file of this "
          "checkpoint")
    return config, params
  if is_t5x_checkpoint(path):
    if config is None:
      raise errors.ConfigError(
          f"{where} is a T5X checkpoint, which does not record its "
          "architecture: add its gin/models file and the model config, e.g. "
          f"--gin_file=models/mt5_base.gin --gin.{config_flag}=@T5Config()")
    return config, t5x.load_t5x_checkpoint(path, config)
  raise errors.CheckpointError(
      f"{where} is neither an HF checkpoint ({hf.CONFIG_FILE} with "
      f"{hf.SAFETENSORS} or {hf.FLAX_MSGPACK}) nor a T5X checkpoint "
      f"(checkpoint_<step>/ with a '{t5x.MSGPACK_FILE}' file or an orbax "
      f"'{t5x.ORBAX_STATE_DIR}/' directory)")


def save_base_model(params: Any, config: ModelConfig, path: str) -> None:
  """Writes `params` as an HF checkpoint of `config`'s family."""
  if isinstance(config, DecoderConfig):
    hf_decoder.save_hf_decoder(params, config, path)
  elif isinstance(config, BartConfig):
    hf_bart.save_hf_checkpoint(params, config, path)
  else:
    hf.save_hf_checkpoint(params, config, path)
