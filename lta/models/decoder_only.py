"""Task logic around a decoder-only network: scoring and decoding (the T5X contract).

`DecoderOnlyModel` is to lta.models.decoder.network.DecoderOnly what
`EncoderDecoderModel` (lta/models/contract.py) is to mT5: it holds the task
logic and keeps the network plain. `variables` is always the whole dict the
network applies to: {'params': base} for a base or merged model, plus
'adapters' when adapters run unmerged.

Batches (all (batch, length) arrays):
  scoring / training: 'decoder_input_tokens' (targets shifted right),
    'decoder_target_tokens', optional 'decoder_loss_weights' (default:
    targets > 0), 'decoder_input_mask' (real tokens; default all),
    'decoder_positions' and 'decoder_segment_ids' (packing), and
    'decoder_causal_attention' (T5X's name for the prefix that attends
    bidirectionally; default: none, fully causal).
  prediction: 'prompt_tokens', LEFT-padded (`left_pad` converts right-padded
    rows), with 'prompt_mask' (default: tokens != pad_token_id). Every row
    needs at least one real token.

predict_batch prefills the whole prompt into the KV cache, then decodes
with lta.models.decoding: step 0 takes the prefill's last logits (the
prompt's continuation), later steps feed one token per row through the
cache. With `bidirectional_prompt` (T5X's inputs_bidirectional_attention:
the model was trained with DecoderObjective.prefix_attention =
'bidirectional') the prefill lets the prompt attend to itself in both
directions, as 'decoder_causal_attention' does in training; generated
tokens stay causal.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lta.adapters import config as adapter_config
from lta.models import decoding
from lta.models.contract import DecodingConfig
from lta.models.contract import network_token_sums
from lta.models.contract import token_means
from lta.models.decoder.network import DecoderOnly

Array = jax.Array
Variables = Mapping[str, Any]
Batch = Mapping[str, Array]


def left_pad(tokens: Array, mask: Array) -> tuple[Array, Array]:
  """Moves each row's real tokens (mask, contiguous from the left) to the
  right end: right-padded prompts -> left-padded ones."""
  width = tokens.shape[1]
  shift = width - mask.astype(jnp.int32).sum(-1, keepdims=True)
  source = (jnp.arange(width)[None, :] - shift) % width
  return (jnp.take_along_axis(tokens, source, axis=1),
          jnp.take_along_axis(mask, source, axis=1))


class DecoderOnlyModel:
  """Wraps a DecoderOnly network with loss_fn, score_batch and predict_batch."""

  ARCHITECTURE = "decoder_only"  # lta.data.input_pipeline.feature_converter

  def __init__(self, module: DecoderOnly, z_loss: float = 1e-4,
               bidirectional_prompt: bool = False):
    self.module = module
    self.z_loss = z_loss
    self.bidirectional_prompt = bidirectional_prompt

  @property
  def config(self):
    return self.module.config

  def init_variables(self, rng: Array, batch_size: int = 1,
                     length: int = 8) -> dict[str, Any]:
    """Boxed variables (with logical axis names) for the given shapes."""
    tokens = jnp.ones((batch_size, length), jnp.int32)
    variables = self.module.init({"params": rng}, tokens)
    adapter_config.check_targets_matched(
        self.module.adapter, variables,
        "decoder/layers_0/attention/query/kernel")
    return variables

  def init_unboxed(self, rng: Array, **shapes) -> dict[str, Any]:
    return nn.meta.unbox(self.init_variables(rng, **shapes))

  def logits(self, variables: Variables, batch: Batch,
             dropout_rng: Optional[Array] = None) -> Array:
    """Float32 logits (batch, length, vocab) of 'decoder_input_tokens'."""
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    return self.module.apply(
        dict(variables), batch["decoder_input_tokens"],
        **self._network_kwargs(batch), enable_dropout=rngs is not None,
        rngs=rngs)

  @staticmethod
  def _network_kwargs(batch: Batch) -> dict[str, Optional[Array]]:
    return dict(input_mask=batch.get("decoder_input_mask"),
                positions=batch.get("decoder_positions"),
                segment_ids=batch.get("decoder_segment_ids"),
                prefix_mask=batch.get("decoder_causal_attention"))

  def token_sums(self, variables: Variables, batch: Batch,
                 dropout_rng: Optional[Array]
                 ) -> tuple[Array, dict[str, Array]]:
    """(loss, aux) summed over weighted target tokens, as
    EncoderDecoderModel.token_sums. The objectives (lta.data.decoder_only)
    weigh the answer only, never the prompt."""
    targets = batch["decoder_target_tokens"]
    return network_token_sums(
        self.module, variables, (batch["decoder_input_tokens"],),
        self._network_kwargs(batch), targets,
        batch.get("decoder_loss_weights", targets > 0), self.z_loss,
        dropout_rng)

  def loss_fn(self, variables: Variables, batch: Batch,
              dropout_rng: Optional[Array]) -> tuple[Array, dict[str, Array]]:
    """Mean token loss; aux holds the means of cross entropy and accuracy."""
    loss, aux = self.token_sums(variables, batch, dropout_rng)
    means = token_means({"loss": loss, **aux})
    return means.pop("loss"), means

  def score_batch(self, variables: Variables, batch: Batch) -> Array:
    """Sum of target log-likelihoods per example, weighted."""
    logits = self.logits(variables, batch)
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights", targets > 0)
    log_p = jax.nn.log_softmax(logits)
    tok = jnp.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    return (tok * weights).sum(-1)

  @property
  def decoder_start_id(self) -> int:
    """The token before a sequence's first: training batches shift right
    with it (lta.data.input_pipeline), and prompts begin with it."""
    return self.config.bos_token_id

  def prompt_batch(self, rows: Sequence[Any], length: int) -> dict[str, Any]:
    """Token rows (at most `length` each) -> a predict batch: each row
    after decoder_start_id, left-padded to length + 1, with its mask."""
    tokens = np.full((len(rows), length + 1), self.config.pad_token_id,
                     np.int32)
    mask = np.zeros(tokens.shape, bool)
    for i, row in enumerate(rows):
      row = [self.decoder_start_id] + list(row[:length])
      tokens[i, -len(row):] = row
      mask[i, -len(row):] = True
    return {"prompt_tokens": tokens, "prompt_mask": mask}

  def prompt(self, batch: Batch) -> tuple[Array, Array]:
    tokens = jnp.asarray(batch["prompt_tokens"], jnp.int32)
    mask = batch.get("prompt_mask")
    if mask is None:
      mask = tokens != self.config.pad_token_id
    return tokens, jnp.asarray(mask, jnp.bool_)

  def initial_cache(self, variables: Variables, prompt_tokens: Array,
                    prompt_mask: Array, max_decode_length: int) -> Any:
    """The decoding state after the whole prompt, sized for
    max_decode_length new tokens: {'network': the KV cache,
    'next_logits': (batch, vocab) the logits of each row's first new token}.

    With bidirectional_prompt the prompt attends to itself as in training
    (decoder_causal_attention), so the prompt's last token must be in the
    prefill: decoding's step 0 reads 'next_logits' instead of calling the
    network (tokens_to_logits_fn).
    """
    slots = prompt_tokens.shape[1] - 1 + max_decode_length
    hidden, state = self.module.apply(
        dict(variables), prompt_tokens, input_mask=prompt_mask,
        prefix_mask=prompt_mask if self.bidirectional_prompt else None,
        decode=True, max_decode_length=slots, output="hidden",
        mutable=["cache"])
    # The head on the last position only: the prompt's other logits are
    # never read (batch x prompt x vocab of them).
    logits = self.module.apply(dict(variables), hidden[:, -1:, :],
                               method="head")
    return {"network": state["cache"], "next_logits": logits[:, -1, :]}

  def tokens_to_logits_fn(self, variables: Variables):
    """lta.models.decoding's step function over initial_cache's state."""

    def prefilled(ids, cache):
      del ids  # The prompt's last token, already in the cache.
      return cache["next_logits"], cache

    def step_network(ids, cache):
      logits, state = self.module.apply(
          {**variables, "cache": cache["network"]}, ids, decode=True,
          mutable=["cache"])
      return logits[:, -1, :], {**cache, "network": state["cache"]}

    def tokens_to_logits(ids, cache, step):
      # The network's cache tracks its own position; step only says
      # whether the prefill's logits are still unused.
      return jax.lax.cond(step == 0, prefilled, step_network, ids, cache)

    return tokens_to_logits

  def predict_batch(self, variables: Variables, batch: Batch,
                    config: DecodingConfig = DecodingConfig(),
                    rng: Optional[Array] = None,
                    progress_fn=None) -> Array:
    """Generated ids (batch, max_decode_length), prompt excluded, 0 after
    EOS. The caller jits it (config is static)."""
    tokens, mask = self.prompt(batch)
    cache = self.initial_cache(variables, tokens, mask,
                               config.max_decode_length)
    common = dict(
        tokens_to_logits=self.tokens_to_logits_fn(variables),
        initial_cache=cache, batch_size=tokens.shape[0],
        max_decode_len=config.max_decode_length,
        eos_id=self.config.eos_token_id, decoder_start_id=tokens[:, -1],
        progress_fn=progress_fn)
    return decoding.decode_by_method(config, rng, **common)
