import flax.linen as nn
import jax
import numpy as np
import pytest

from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.models.mt5.network import Transformer
from lta.adapters.tree import flatten_tree
from tests.checkpoints import hf_fixtures as fx


@pytest.mark.parametrize("path", [fx.MT5, fx.T5V1])
def test_param_shapes_equal_the_networks_parameters(path):
  config, _ = hf.load_hf_checkpoint(path)
  tokens = np.ones((1, 4), np.int32)
  variables = jax.eval_shape(Transformer(config=config).init,
                             jax.random.key(0), tokens, tokens)
  got = {k: tuple(v.shape) for k, v in
         flatten_tree(nn.unbox(variables["params"])).items()}
  assert got == layout.param_shapes(config)


def test_check_complete_names_unknown_missing_and_wrong_shape():
  config, params = hf.load_hf_checkpoint(fx.MT5)
  flat = flatten_tree(params)
  with pytest.raises(ValueError, match="decoder/decoder_norm/scale"):
    layout.check_complete({k: v for k, v in flat.items()
                           if k != "decoder/decoder_norm/scale"}, config, "x")
  with pytest.raises(ValueError, match="encoder/extra"):
    layout.check_complete(dict(flat, **{"encoder/extra": flat[
        "encoder/encoder_norm/scale"]}), config, "x")
  flat["encoder/encoder_norm/scale"] = np.ones(3, np.float32)
  with pytest.raises(ValueError, match=r"encoder/encoder_norm/scale.*\(3,\)"):
    layout.check_complete(flat, config, "x")
