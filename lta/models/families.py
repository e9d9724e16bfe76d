"""A model config -> its model contract: the one place that knows the families.

Jobs and the trainer hold a config (gin binds `T5Config`, `BartConfig` or
`DecoderConfig`)
and ask for the contract here; the contract's ARCHITECTURE names the batches
it reads (lta.data.input_pipeline.feature_converter).
"""

from __future__ import annotations

from typing import Optional, Union

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.models.bart import network as bart_network
from lta.models.bart.config import BartConfig
from lta.models.contract import EncoderDecoderModel
from lta.models.decoder.config import DecoderConfig
from lta.models.decoder.network import DecoderOnly
from lta.models.decoder_only import DecoderOnlyModel
from lta.models.execution import ExecutionConfig
from lta.models.mt5.config import T5Config
from lta.models.mt5.network import Transformer

ModelConfig = Union[T5Config, BartConfig, DecoderConfig]
Model = Union[EncoderDecoderModel, DecoderOnlyModel]


def build_model(config: ModelConfig,
                adapter: Optional[AdapterConfig] = None,
                execution: Optional[ExecutionConfig] = None,
                bidirectional_prompt: bool = False) -> Model:
  """The model contract of `config`'s family, with `adapter` unmerged.

  `execution`: speed and memory options of the training step (dropout
  masks, remat, chunked loss), the same for every family.
  `bidirectional_prompt`: a decoder-only model decodes with its prompt
  attending to itself both ways (trained with DecoderObjective.
  prefix_attention='bidirectional'; DecoderOnlyModel).
  """
  if isinstance(config, DecoderConfig):
    return DecoderOnlyModel(DecoderOnly(config, adapter,
                                        execution or ExecutionConfig()),
                            bidirectional_prompt=bidirectional_prompt)
  if bidirectional_prompt:
    raise errors.ConfigError(
        f"a bidirectional prompt (DecoderObjective.prefix_attention="
        f"'bidirectional') is for decoder-only models; "
        f"{getattr(config, 'name', type(config).__name__)} is an "
        "encoder-decoder: its encoder already reads the input both ways")
  if isinstance(config, T5Config):
    return EncoderDecoderModel(Transformer(config, adapter,
                                           execution or ExecutionConfig()))
  if isinstance(config, BartConfig):
    return EncoderDecoderModel(bart_network.Transformer(
        config, adapter, execution or ExecutionConfig()))
  raise errors.ConfigError(
      f"model config {type(config).__name__} is not a model family's config;"
      " bind T5Config, BartConfig or DecoderConfig (gin/models)")


def is_decoder_only(config: ModelConfig) -> bool:
  return isinstance(config, DecoderConfig)
