"""seqio tasks -> per-host numpy batches of a model's features.

The model's architecture picks the feature converter (`feature_converter`):
encoder-decoder batches are never packed (the mT5 network has no segment
ids); decoder-only ones follow `lta.data.decoder_only.DecoderObjective`.

Deterministic given (task, seed, batch size, host count): seqio shuffles and
preprocesses with `seed`. Each host reads only its own shard (ShardInfo(
index=process_index, num_shards=process_count)) and yields its slice of
every global batch. `TrainBatches` saves and restores the tf.data iterator's
state (shuffle buffer, prefetched batches, source offsets), as T5X does, so
a resumed run continues where the saved one stopped without re-reading the
data it consumed.
"""

from __future__ import annotations

import collections
import importlib
import re
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from lta import errors
from lta import partitioning
from lta.data import decoder_only
from lta.data import language_codes
from lta.data import task_names

# Features lta's EncoderDecoderModel reads; packing (segment ids) is not
# supported by the network, so its batches are never packed.
MODEL_FEATURES = ("encoder_input_tokens", "decoder_input_tokens",
                  "decoder_target_tokens", "decoder_loss_weights")
# ... and those of either architecture (lta.models.decoder_only too).
ALL_MODEL_FEATURES = tuple(dict.fromkeys(MODEL_FEATURES +
                                         decoder_only.MODEL_FEATURES))
ARCHITECTURES = ("encoder_decoder", "decoder_only")


def feature_converter(architecture: str = "encoder_decoder", bos_id: int = 0,
                      pad_id: int = 0) -> seqio.FeatureConverter:
  """The converter from task features to `architecture`'s batches, which
  shift decoder inputs right after `bos_id` (the model's start token) and
  pad encoder-decoder tokens with `pad_id` (mBART / NLLB: 1)."""
  if architecture == "encoder_decoder":
    converter = seqio.EncDecFeatureConverter(pack=False, bos_id=bos_id)
    return converter if pad_id == 0 else _PaddedWith(converter, pad_id)
  if architecture == "decoder_only":
    return decoder_only.DecoderObjective().feature_converter(bos_id)
  raise errors.ConfigError(
      f"unknown model architecture {architecture!r}; expected one of"
      f" {', '.join(map(repr, ARCHITECTURES))}"
      f"{errors.did_you_mean(str(architecture), ARCHITECTURES)}")


class _PaddedWith(seqio.FeatureConverter):
  """An encoder-decoder converter whose token padding is `pad_id`, not 0.

  seqio pads with 0; the fairseq vocabularies of mBART and NLLB give 0 to
  `<s>`, a control piece text never encodes to, so every 0 in the token
  features is padding. Loss weights stay seqio's (targets != 0).
  """

  TASK_FEATURES = seqio.EncDecFeatureConverter.TASK_FEATURES
  MODEL_FEATURES = seqio.EncDecFeatureConverter.MODEL_FEATURES
  PACKING_FEATURE_DTYPES = seqio.EncDecFeatureConverter.PACKING_FEATURE_DTYPES
  _TOKENS = ("encoder_input_tokens", "decoder_input_tokens",
             "decoder_target_tokens")

  def __init__(self, converter: seqio.EncDecFeatureConverter, pad_id: int):
    self._converter = converter
    self._pad_id = pad_id
    super().__init__(pack=converter.pack, bos_id=converter.bos_id)

  def _convert_features(self, ds, task_feature_lengths):
    ds = self._converter(ds, task_feature_lengths)
    weights_key = "decoder_loss_weights"

    def repad(x):
      x = dict(x)
      for key in self._TOKENS:
        x[key] = tf.where(x[key] == 0, tf.cast(self._pad_id, x[key].dtype),
                          x[key])
      x[weights_key] = tf.cast(x["decoder_target_tokens"] != self._pad_id,
                               x[weights_key].dtype)
      return x

    return ds.map(repad, num_parallel_calls=tf.data.AUTOTUNE)

  def get_model_feature_lengths(self, task_feature_lengths):
    return self._converter.get_model_feature_lengths(task_feature_lengths)


def import_task_modules(modules: Optional[Sequence[str] | str],
                        setting: str = "MIXTURE_OR_TASK_MODULE") -> None:
  """Imports the modules that register tasks (T5X's MIXTURE_OR_TASK_MODULE).

  The one way lta imports task modules: lta_tasks (tasks/) or a user's.
  `setting` is the gin setting that named them, for the error message.
  """
  if not modules:
    return
  for name in [modules] if isinstance(modules, str) else modules:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise ImportError(f"{setting} {name!r} cannot be imported ({e})") from e


def _unknown_task_message(name: str) -> str:
  registered = sorted(set(seqio.TaskRegistry.names()) |
                      set(seqio.MixtureRegistry.names()))
  hint = errors.did_you_mean(name, registered, n=5)
  message = (f"MIXTURE_OR_TASK_NAME={name!r} is not a registered seqio task "
             f"or mixture")
  if hint:
    return message + hint
  # The largest families first: a user's typo most likely belongs to one.
  sizes = collections.Counter(
      task_names.family(n) + (".<...>" if "." in n else "") for n in registered)
  families = sorted(sizes, key=lambda f: (-sizes[f], f))
  return (f"{message}; none of the {len(registered)} registered names is "
          f"close (largest families: {', '.join(families[:12])}"
          f"{', ...' if len(families) > 12 else ''}); if another module "
          "registers it, name it in MIXTURE_OR_TASK_MODULE")


def _check_tfds_prepared(task: seqio.Task) -> None:
  loader = task.source.tfds_dataset
  if loader.name is None:  # Splits from several datasets: not checked.
    return
  check_tfds_prepared(task.name, loader.name, loader.data_dir)


def check_tfds_prepared(what: str, tfds_name: str, data_dir: Optional[str],
                        tfds_split: Optional[str] = None) -> None:
  """DataError naming `what` unless TFDS `tfds_name` (and `tfds_split` of
  it, if given) is prepared in `data_dir`."""
  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(
        f"{what}: TFDS dataset {tfds_name} cannot be opened "
        f"({type(e).__name__}: {str(e).splitlines()[0]})") from e
  if not prepared:
    raise errors.DataError(
        f"{what}: TFDS dataset {tfds_name} is not prepared in "
        f"{builder.data_dir}; run lta prepare-data (docs/experiments.md, "
        "Data), or set --tfds_data_dir / TFDS_DATA_DIR to where it was")
  if tfds_split and tfds_split not in builder.info.splits:
    raise errors.DataError(
        f"{what}: TFDS dataset {tfds_name} has no prepared split "
        f"{tfds_split!r} in {builder.data_dir} (it has "
        f"{', '.join(sorted(builder.info.splits))})")


def check_task(name: str, split: str = "train") -> None:
  """Fails fast, before any model loads, when `name` cannot give data.

  Raises:
    DataError: `name` is not registered (the closest registered names are
      listed), or the data of one of its tasks with `split` is not
      prepared: a TFDS dataset not in the data dir, missing or changed
      shards (sources with a `check_prepared(split)` method say which).
  """
  try:
    task_or_mixture = seqio.get_mixture_or_task(name)
  except ValueError:
    raise errors.DataError(_unknown_task_message(name)) from None
  tasks = (task_or_mixture.tasks if isinstance(task_or_mixture, seqio.Mixture)
           else [task_or_mixture])
  for task in tasks:
    if split not in task.splits:
      continue
    check_prepared = getattr(task.source, "check_prepared", None)
    if check_prepared is not None:
      check_prepared(split)
    elif isinstance(task.source, seqio.TfdsDataSource):
      _check_tfds_prepared(task)


def get_dataset(mixture_or_task_name: str,
                task_feature_lengths: Mapping[str, int],
                host_batch_size: int, *, split: str = "train",
                shuffle: bool = True, seed: Optional[int] = 0,
                num_epochs: Optional[int] = None,
                shard: Optional[tuple[int, int]] = None,
                data_shards: Optional[int] = None,
                architecture: str = "encoder_decoder",
                bos_id: int = 0, pad_id: int = 0,
                language_scheme: Optional[str] = None,
                drop_remainder: bool = True) -> tf.data.Dataset:
  """This host's batches of `architecture`'s features (`feature_converter`).

  `num_epochs=None` repeats forever (training); `shard` defaults to this
  host's (index, count). The data is cut into `data_shards` seqio shards
  (default: one per host); host i of n reads the i-th n-th of them, and
  its batch is their batches side by side. The global batch then depends
  on `data_shards`, not on the host count: one process reading 2 shards
  sees the batches 2 processes see together. `pad_id` and
  `language_scheme` are the model's (`model_data_options`).
  `drop_remainder=False` keeps a last, smaller batch (one shard per host
  only; `pad_batch` completes it).
  """
  check_task(mixture_or_task_name)
  index, count = shard or partitioning.data_shard()
  shards = data_shards or count
  if shards % count or host_batch_size % (shards // count):
    raise errors.ConfigError(
        f"data_shards={shards} must be a multiple of the host count "
        f"({count}), and the host batch ({host_batch_size}) a multiple of "
        "the shards each host reads")
  per_host = shards // count
  if not drop_remainder and per_host != 1:
    raise errors.ConfigError(
        f"data_shards={shards}: partial batches (drop_remainder=False) "
        "need one data shard per host")
  with language_codes.use_scheme(language_scheme):
    datasets = [seqio.get_dataset(
        mixture_or_task_name, dict(task_feature_lengths),
        feature_converter(architecture, bos_id, pad_id), dataset_split=split,
        shuffle=shuffle, num_epochs=num_epochs,
        shard_info=seqio.ShardInfo(index=i, num_shards=shards), seed=seed,
        batch_size=host_batch_size // per_host if drop_remainder else None,
        verbose=False)
                for i in range(index * per_host, (index + 1) * per_host)]
  if not drop_remainder:
    return datasets[0].batch(host_batch_size)
  if per_host == 1:
    return datasets[0]
  return tf.data.Dataset.zip(tuple(datasets)).map(
      lambda *batches: {k: tf.concat([b[k] for b in batches], axis=0)
                        for k in batches[0]})


def model_data_options(model) -> dict[str, Any]:
  """get_dataset's model-dependent arguments for a model contract: its
  architecture, decoder start, pad and language-code scheme."""
  return {"architecture": model.ARCHITECTURE,
          "bos_id": model.decoder_start_id,
          "pad_id": getattr(model.config, "pad_token_id", 0)
                    if model.ARCHITECTURE == "encoder_decoder" else 0,
          "language_scheme": language_codes.scheme_for(model.config)}


def numpy_batches(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  """The model features of each batch as numpy arrays."""
  for batch in ds:
    yield _model_features(batch)


def _model_features(batch) -> dict[str, np.ndarray]:
  return {k: batch[k].numpy() for k in ALL_MODEL_FEATURES if k in batch}


def padding_batch(ds: tf.data.Dataset,
                  batch_size: int) -> dict[str, np.ndarray]:
  """`batch_size` padding examples shaped like `ds`'s batches: all zeros,
  so their decoder_loss_weights leave every loss and accuracy sum as is."""
  spec = ds.element_spec
  if "decoder_loss_weights" not in spec:
    raise ValueError("padding examples need decoder_loss_weights to carry "
                     f"no weight; the batches have only {sorted(spec)}")
  return {k: np.zeros((batch_size, *spec[k].shape[1:]),
                      spec[k].dtype.as_numpy_dtype)
          for k in ALL_MODEL_FEATURES if k in spec}


def pad_batch(batch: Mapping[str, np.ndarray],
              padding: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`batch` completed to `padding`'s size with its padding examples."""
  rows = len(next(iter(batch.values())))
  return {k: np.concatenate([v, padding[k][rows:]]) for k, v in
          batch.items()}


class TrainBatches:
  """This host's training batches (numpy), with a position that can be saved.

  `save(prefix)` writes the tf.data iterator's state with
  tf.train.Checkpoint; `restore(prefix)` puts a fresh iterator of the same
  pipeline there (see `unsaveable_reason` for pipelines that cannot).
  Make one per dataset: each new iterator of a dataset reshuffles.
  """

  def __init__(self, ds: tf.data.Dataset):
    self.unsaveable_reason = unsaveable_reason(ds)
    self._iterator = iter(ds)

  def __iter__(self) -> "TrainBatches":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return _model_features(next(self._iterator))

  def save(self, prefix: str) -> None:
    tf.train.Checkpoint(iterator=self._iterator).write(prefix)

  def restore(self, prefix: str) -> None:
    tf.train.Checkpoint(iterator=self._iterator).read(
        prefix).assert_consumed()


def unsaveable_reason(ds: tf.data.Dataset) -> Optional[str]:
  """Why tf.data cannot save this pipeline's iterators, or None if it can.

  Python state (Dataset.from_generator, py_function) cannot be saved.
  Serialising the dataset graph fails on the same ops as saving an iterator
  does, without reading data (a fresh iterator would not show a
  from_generator source: its Python op appears with the first element).
  """
  try:
    ds._as_serialized_graph(  # pylint: disable=protected-access
        external_state_policy=tf.data.experimental.ExternalStatePolicy.FAIL)
  except tf.errors.FailedPreconditionError as e:
    # '{{function_node ...}} Failed to serialize the input pipeline graph:
    # PyFunc is stateful. [Op:DatasetToGraphV2]'
    return re.sub(r"\{\{.*?\}\}|\[Op:.*|Failed to serialize the input "
                  r"pipeline graph:", "", e.message).strip().rstrip(".")
  return None


def batch_tokens(batch: Mapping[str, np.ndarray]) -> int:
  """Non-padding input plus target tokens, for throughput.

  A decoder-only batch holds prompt and answer in its targets.
  """
  encoder = batch.get("encoder_input_tokens")
  return int((0 if encoder is None else np.count_nonzero(encoder)) +
             np.count_nonzero(batch["decoder_target_tokens"]))
