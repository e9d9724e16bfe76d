"""The decoder-only gin model files: real sizes and the tiny test models.

Each real-size file has the parameter count of its published checkpoint and
survives an HF config.json round trip; each tiny file equals the config of
the fixture checkpoint it stands for.
"""

import os

import gin
import numpy as np
import pytest

from lta.checkpoints import hf_decoder
from lta.models.decoder.config import DecoderConfig
from lta.models.decoder.network import param_shapes
from tests.model import decoder_fixtures as fx

GIN_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "gin", "models")
# Published parameter counts (Gemma 3 4B/12B: of the text model with the
# 262,144-token vocabulary, as Keras Hub's presets count them; HF's
# embedding has 64 more rows).
PARAMETERS = {
    "gemma3_1b": 999_885_952,
    "gemma3_4b": 3_880_099_328 + 64 * 2560,
    "gemma3_12b": 11_765_788_416 + 64 * 3840,
    "qwen2_5_0_5b": 494_032_768,
    "qwen2_5_1_5b": 1_543_714_304,
    "qwen2_5_7b": 7_615_616_512,
    "llama3_2_1b": 1_235_814_400,
    "llama3_2_3b": 3_212_749_824,
}


def _config(name: str) -> DecoderConfig:
  gin.clear_config()  # DecoderConfig, imported above, is all they bind
  try:
    gin.parse_config_file(os.path.join(GIN_MODELS, f"{name}.gin"))
    return DecoderConfig()
  finally:
    gin.clear_config()


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_real_size_files_have_the_published_parameter_count(name):
  config = _config(name)
  count = sum(int(np.prod(s)) for s in param_shapes(config).values())
  assert count == PARAMETERS[name]
  again = hf_decoder.config_from_hf(hf_decoder.config_to_hf(config),
                                    name=config.name)
  assert again == config


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_tiny_files_equal_their_fixture_checkpoints(family):
  assert (_config(f"{family}_tiny").architecture_dict() ==
          fx.load(family)[0].architecture_dict())
