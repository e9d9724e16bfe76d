"""Task logic around the network: loss, scoring and decoding (the T5X contract)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np

from lta.adapters import config as adapter_config
from lta.models import decoding
from lta import errors

Array = jax.Array
Variables = Mapping[str, Any]
Batch = Mapping[str, Array]


DECODING_METHODS = ("greedy", "beam", "sample")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecodingConfig:
  """How predict_batch decodes: 'greedy', 'beam' or 'sample'.

  beam_size, alpha and finish_at_max_length apply to 'beam';
  temperature, topk and topp to 'sample'. finish_at_max_length=False is
  T5X's rule (only EOS finishes a hypothesis); see lta.models.decoding.
  forced_first_id: a token every output starts with, as HF's
  forced_bos_token_id (mBART-50 and NLLB-200's target-language code).
  """
  method: str = "greedy"
  max_decode_length: int = 64
  beam_size: int = 4
  alpha: float = 0.6
  finish_at_max_length: bool = True
  temperature: float = 1.0
  topk: int = 0
  topp: float = 0.0
  forced_first_id: Optional[int] = None

  def __post_init__(self):
    if self.method not in DECODING_METHODS:
      raise errors.ConfigError(
          f"DecodingConfig.method={self.method!r}; expected one of "
          f"{', '.join(map(repr, DECODING_METHODS))}"
          f"{errors.did_you_mean(str(self.method), DECODING_METHODS)}")
    bounds = [("max_decode_length", self.max_decode_length >= 1, ">= 1"),
              ("beam_size", self.beam_size >= 1, ">= 1"),
              ("alpha", self.alpha >= 0, ">= 0"),
              ("temperature", self.temperature >= 0, ">= 0"),
              ("topk", self.topk >= 0, ">= 0"),
              ("topp", 0 <= self.topp <= 1, "in [0, 1]"),
              ("forced_first_id", (self.forced_first_id is None or
                                   self.forced_first_id >= 0),
               "None or a token id >= 0")]
    for field, ok, want in bounds:
      if not ok:
        raise errors.ConfigError(
            f"DecodingConfig.{field}={getattr(self, field)!r}; expected "
            f"{want}")


def _token_terms(logits: Array, targets: Array
                 ) -> tuple[Array, Array, Array]:
  """Per-token (nll, log_z, correct) of float32 logits."""
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logits = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
  correct = decoding.is_first_argmax(logits, targets).astype(jnp.float32)
  return log_z - target_logits, log_z, correct


def _weighted_sums(nll: Array, log_z: Array, correct: Array, weights: Array,
                   z_loss: float) -> tuple[Array, dict[str, Array]]:
  weights = weights.astype(jnp.float32)
  per_token = nll + z_loss * jnp.square(log_z)
  aux = {
      "cross_entropy": (nll * weights).sum(),
      "accuracy": (correct * weights).sum(),
      "num_tokens": weights.sum(),
  }
  return (per_token * weights).sum(), aux


def cross_entropy_with_z_loss(logits: Array, targets: Array, weights: Array,
                              z_loss: float) -> tuple[Array, dict[str, Array]]:
  """Cross entropy plus T5X's z-loss, summed over target tokens, in float32.

  Returns (loss, aux): the weighted sum of the per-token loss, and the sums
  of cross entropy ('cross_entropy') and of correct tokens ('accuracy') with
  the token count ('num_tokens'). Sums add up exactly over microbatches and
  batches; `token_means` divides by the count once.
  """
  return _weighted_sums(*_token_terms(logits, targets), weights, z_loss)


def chunked_cross_entropy_with_z_loss(
    logits_fn, hidden: Array, targets: Array, weights: Array, z_loss: float,
    chunk_length: int, dropout_rng: Optional[Array] = None
) -> tuple[Array, dict[str, Array]]:
  """cross_entropy_with_z_loss of logits_fn(hidden), `chunk_length` target
  positions at a time.

  logits_fn(hidden_chunk, rng) -> float32 logits is the output layer. Each
  chunk is rematerialised (jax.checkpoint) in the backward pass, so only one
  chunk's (batch, chunk_length, vocab) logits and gradient exist at a time;
  the forward keeps the per-token terms. Chunks run over the length axis so
  the batch axis keeps its sharding. `dropout_rng` (if any) is folded with
  the chunk index, so chunks draw independent masks.
  """
  batch, length = targets.shape
  if length % chunk_length:
    raise errors.ConfigError(
        f"ExecutionConfig.loss_chunk_length={chunk_length} does not divide "
        f"the target length {length}")
  n = length // chunk_length

  def chunks(x):  # (batch, length, ...) -> (n, batch, chunk_length, ...)
    x = x.reshape((batch, n, chunk_length) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0)

  @jax.checkpoint
  def chunk_terms(h, t, i):
    rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
    return _token_terms(logits_fn(h, rng), t)

  def body(_, xs):
    return None, chunk_terms(*xs)

  _, terms = jax.lax.scan(body, None,
                          (chunks(hidden), chunks(targets), jnp.arange(n)))
  nll, log_z, correct = (jnp.moveaxis(x, 0, 1).reshape(batch, length)
                         for x in terms)
  return _weighted_sums(nll, log_z, correct, weights, z_loss)


def network_token_sums(module: nn.Module, variables: Variables,
                       inputs: tuple[Array, ...], kwargs: Mapping[str, Any],
                       targets: Array, weights: Array, z_loss: float,
                       dropout_rng: Optional[Array]
                       ) -> tuple[Array, dict[str, Array]]:
  """(loss, aux) of module.apply(variables, *inputs, **kwargs)'s logits, as
  cross_entropy_with_z_loss sums them; every family's contract calls it.

  Dropout is on when dropout_rng is given. With the module's
  ExecutionConfig.loss_chunk_length the network returns its final hidden
  states (output='hidden') and its `head` method runs inside the chunked
  loss (chunked_cross_entropy_with_z_loss), with the same dropout key below
  the head as the plain path.
  """
  rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
  execution = getattr(module, "execution", None)
  chunk_length = execution.loss_chunk_length if execution else 0
  apply = functools.partial(module.apply, dict(variables), *inputs,
                            enable_dropout=rngs is not None, rngs=rngs,
                            **kwargs)
  if not chunk_length:
    return cross_entropy_with_z_loss(apply(), targets, weights, z_loss)

  def logits_fn(h, rng):
    return module.apply(dict(variables), h, enable_dropout=rng is not None,
                        rngs=None if rng is None else {"dropout": rng},
                        method="head")

  return chunked_cross_entropy_with_z_loss(
      logits_fn, apply(output="hidden"), targets, weights, z_loss,
      chunk_length, dropout_rng)


def token_means(sums: Mapping[str, Array]) -> dict[str, Array]:
  """Token sums -> means per target token; 'num_tokens' stays the count."""
  denom = jnp.maximum(sums["num_tokens"], 1.0)
  return {k: v if k == "num_tokens" else v / denom for k, v in sums.items()}


def force_first_token(logits: Array, step: Array, token_id: int) -> Array:
  """At step 0 every token but `token_id` gets decoding.NEG_INF (HF's
  ForcedBOSTokenLogitsProcessor, with a finite minus infinity)."""
  forced = jnp.where(jnp.arange(logits.shape[-1]) == token_id, 0.0,
                     decoding.NEG_INF).astype(logits.dtype)
  return jnp.where(step == 0, jnp.broadcast_to(forced, logits.shape), logits)


def pad_after_eos(ids: Array, eos_id: int, pad_id: int) -> Array:
  """Replaces every id after a row's first EOS with `pad_id`."""
  is_eos = (ids == eos_id).astype(jnp.int32)
  after = jnp.cumsum(is_eos, axis=-1) - is_eos > 0
  return jnp.where(after, pad_id, ids)


class EncoderDecoderModel:
  """Wraps an encoder-decoder network with loss_fn, score_batch and
  predict_batch.

  The network is mT5's (lta.models.mt5) or mBART / NLLB's (lta.models.bart):
  both have encode, decode(..., decode=True, max_decode_length) with a
  'cache' collection, and a config with pad, eos and decoder start ids.
  `variables` is always the whole dict the network applies to:
  {'params': base} for a base or merged model, plus 'adapters' when
  adapters run unmerged.
  """

  ARCHITECTURE = "encoder_decoder"  # lta.data.input_pipeline.feature_converter

  def __init__(self, module: nn.Module, z_loss: float = 1e-4):
    self.module = module
    self.z_loss = z_loss

  @property
  def config(self):
    return self.module.config

  def init_variables(self, rng: Array, batch_size: int = 1,
                     encoder_length: int = 8,
                     decoder_length: int = 8) -> dict[str, Any]:
    """Boxed variables (with logical axis names) for the given shapes."""
    enc = jnp.ones((batch_size, encoder_length), jnp.int32)
    dec = jnp.ones((batch_size, decoder_length), jnp.int32)
    variables = self.module.init({"params": rng}, enc, dec)
    adapter_config.check_targets_matched(
        self.module.adapter, variables,
        "encoder/layers_0/attention/query/kernel")
    return variables

  def init_unboxed(self, rng: Array, **shapes) -> dict[str, Any]:
    return nn.meta.unbox(self.init_variables(rng, **shapes))

  def token_sums(self, variables: Variables, batch: Batch,
                 dropout_rng: Optional[Array]
                 ) -> tuple[Array, dict[str, Array]]:
    """(loss, aux) summed over target tokens: see cross_entropy_with_z_loss.

    Dropout is on when dropout_rng is given. With
    ExecutionConfig.loss_chunk_length the output layer runs inside the
    chunked loss (see chunked_cross_entropy_with_z_loss).
    """
    return network_token_sums(
        self.module, variables,
        (batch["encoder_input_tokens"], batch["decoder_input_tokens"]), {},
        batch["decoder_target_tokens"], self._target_weights(batch),
        self.z_loss, dropout_rng)

  def _target_weights(self, batch: Batch) -> Array:
    """decoder_loss_weights, or every non-pad target."""
    targets = batch["decoder_target_tokens"]
    pad = self.config.pad_token_id
    return batch.get("decoder_loss_weights",
                     targets > 0 if pad == 0 else targets != pad)

  def loss_fn(self, variables: Variables, batch: Batch,
              dropout_rng: Optional[Array]) -> tuple[Array, dict[str, Array]]:
    """Mean token loss; aux holds the means of cross entropy and accuracy."""
    loss, aux = self.token_sums(variables, batch, dropout_rng)
    means = token_means({"loss": loss, **aux})
    return means.pop("loss"), means

  def score_batch(self, variables: Variables, batch: Batch) -> Array:
    """Sum of target log-likelihoods per example."""
    logits = self.module.apply(dict(variables), batch["encoder_input_tokens"],
                               batch["decoder_input_tokens"])
    targets = batch["decoder_target_tokens"]
    weights = self._target_weights(batch)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32))
    tok = jnp.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    return (tok * weights).sum(-1)

  @property
  def decoder_start_id(self) -> int:
    return self.config.decoder_start_token_id

  def prompt_batch(self, rows: Sequence[Any], length: int) -> dict[str, Any]:
    """Token rows -> a predict batch: right-padded (cut) to `length`."""
    tokens = np.full((len(rows), length), self.config.pad_token_id, np.int32)
    for i, row in enumerate(rows):
      row = row[:length]
      tokens[i, :len(row)] = row
    return {"encoder_input_tokens": tokens}

  def encode(self, variables: Variables, batch: Batch) -> Array:
    """The encoder's output for a predict batch ('encoder_input_tokens')."""
    return self.module.apply(dict(variables), batch["encoder_input_tokens"],
                             method="encode")

  def initial_cache(self, variables: Variables, encoder_tokens: Array,
                    max_decode_length: int,
                    encoded: Optional[Array] = None) -> Any:
    """Encodes once (unless given `encoded`) and prefills the decoder cache
    (cross-attention k/v)."""
    if encoded is None:
      encoded = self.encode(variables, {"encoder_input_tokens":
                                        encoder_tokens})
    start = jnp.full((encoder_tokens.shape[0], 1),
                     self.config.decoder_start_token_id, jnp.int32)
    _, state = self.module.apply(
        dict(variables), encoded, encoder_tokens, start, decode=True,
        max_decode_length=max_decode_length, mutable=["cache"],
        method="decode")
    return state["cache"]

  def tokens_to_logits_fn(self, variables: Variables,
                          forced_first_id: Optional[int] = None):
    """The decoders' step function; the cache tracks its own position, and
    `step` only decides when `forced_first_id` applies."""

    def tokens_to_logits(ids, cache, step):
      logits, state = self.module.apply(
          {**variables, "cache": cache}, None, None, ids, decode=True,
          mutable=["cache"], method="decode")
      logits = logits[:, -1, :]
      if forced_first_id is not None:
        logits = force_first_token(logits, step, forced_first_id)
      return logits, state["cache"]

    return tokens_to_logits

  def predict_batch(self, variables: Variables, batch: Batch,
                    config: DecodingConfig = DecodingConfig(),
                    rng: Optional[Array] = None,
                    progress_fn=None) -> Array:
    """Decoded ids (batch, max_decode_length), pad after EOS.

    The pad is 0 for mT5; mBART / NLLB's is config.pad_token_id (1).
    batch['encoded'], when present, is the encoder's output for these
    inputs (`encode`), computed earlier with the same encoder weights: the
    program then runs the decoder only (lta.eval.scoring.EncoderReuse).
    """
    c = self.config
    if (config.forced_first_id is not None and
        config.forced_first_id >= c.vocab_size):
      raise errors.ConfigError(
          f"DecodingConfig.forced_first_id={config.forced_first_id} is not "
          f"a token of {c.name} (vocab_size {c.vocab_size})")
    ids = self._decode(variables, batch, config, rng, progress_fn)
    return ids if c.pad_token_id == 0 else pad_after_eos(
        ids, c.eos_token_id, c.pad_token_id)

  def _decode(self, variables, batch, config, rng, progress_fn) -> Array:
    enc = batch["encoder_input_tokens"]
    cache = self.initial_cache(variables, enc, config.max_decode_length,
                               batch.get("encoded"))
    common = dict(
        tokens_to_logits=self.tokens_to_logits_fn(variables,
                                                  config.forced_first_id),
        initial_cache=cache, batch_size=enc.shape[0],
        max_decode_len=config.max_decode_length,
        eos_id=self.config.eos_token_id,
        decoder_start_id=self.config.decoder_start_token_id,
        progress_fn=progress_fn)
    return decoding.decode_by_method(config, rng, **common)
