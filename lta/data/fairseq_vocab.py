r"""mBART-50 / NLLB-200 vocabularies with fairseq ids, for seqio.

The HF checkpoints ship `sentencepiece.bpe.model` with SentencePiece's own
ids (unk 0, bos 1, eos 2, then the pieces) and let the tokenizer shift
every piece by one and add the rest: fairseq's bos 0, pad 1, eos 2, unk 3,
the pieces from 4, then the language codes and `<mask>` as added tokens
(tokenizer_config.json's `added_tokens_decoder`). `convert` writes one
SentencePiece model with exactly those ids, so a seqio vocabulary over it
gives the ids MBart50Tokenizer / NllbTokenizer give, and the codes are
control pieces (`lta.data.language_codes` looks them up; text never
encodes to them and decoding drops them, where the HF tokenizers would
also split a code written in the text out as its token).

  python -m lta.data.fairseq_vocab /data/mbart-large-50 \
    /data/mbart50/spm.fairseq.model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import tensorflow as tf

from lta import errors
from lta.data.vocab import FAIRSEQ_IDS

MODEL_FILE = "sentencepiece.bpe.model"
CONFIG_FILE = "tokenizer_config.json"
ADDED_TOKENS_FILE = "added_tokens.json"  # older saves
# fairseq's reserved pieces, by id.
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
# What the published model files have at SentencePiece ids 0, 1, 2.
SPM_SPECIALS = ("<unk>", "<s>", "</s>")


def _read_json(path: str) -> dict:
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise errors.CheckpointError(f"{path}: not JSON ({e})") from None


def added_tokens(hf_dir: str) -> dict[int, str]:
  """{id: token} of the tokenizer's added tokens (specials, codes, mask)."""
  config_path = os.path.join(hf_dir, CONFIG_FILE)
  if tf.io.gfile.exists(config_path):
    decoder = _read_json(config_path).get("added_tokens_decoder")
    if decoder:
      return {int(i): token["content"] for i, token in decoder.items()}
  added_path = os.path.join(hf_dir, ADDED_TOKENS_FILE)
  if tf.io.gfile.exists(added_path):
    found = {int(i): t for t, i in _read_json(added_path).items()}
    return {**dict(enumerate(FAIRSEQ_SPECIALS)), **found}
  raise errors.MissingFileError(
      f"{hf_dir}: no {CONFIG_FILE} with added_tokens_decoder (nor"
      f" {ADDED_TOKENS_FILE}): save the tokenizer with transformers"
      " (save_pretrained) to record its language codes' ids")


def convert(hf_dir: str, out_path: str) -> dict[str, int]:
  """Writes the fairseq-id SentencePiece model of the HF tokenizer in
  `hf_dir` to `out_path`; returns {added token: id}.

  Raises:
    MissingFileError: no sentencepiece.bpe.model or no record of the
      added tokens.
    CheckpointError: a model file or token layout other than mBART-50's /
      NLLB-200's (named).
  """
  # Imported on use: only this conversion edits model protos.
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  model_path = os.path.join(hf_dir, MODEL_FILE)
  if not tf.io.gfile.exists(model_path):
    raise errors.MissingFileError(
        f"{model_path} does not exist (an HF mBART-50 or NLLB-200"
        " checkpoint or tokenizer directory has it)")
  proto = sentencepiece_model_pb2.ModelProto()
  with tf.io.gfile.GFile(model_path, "rb") as f:
    proto.ParseFromString(f.read())
  found = tuple(p.piece for p in proto.pieces[:len(SPM_SPECIALS)])
  if found != SPM_SPECIALS:
    raise errors.CheckpointError(
        f"{model_path}: pieces 0-2 are {found}, not {SPM_SPECIALS}: not the"
        " fairseq-aligned model mBART-50 / NLLB-200 ship")
  added = added_tokens(hf_dir)
  specials = tuple(added.get(i) for i in range(len(FAIRSEQ_SPECIALS)))
  if specials != FAIRSEQ_SPECIALS:
    raise errors.CheckpointError(
        f"{hf_dir}: added tokens 0-3 are {specials}, not fairseq's"
        f" {FAIRSEQ_SPECIALS}")
  # The pieces after SentencePiece's 3 specials keep their order, shifted
  # by one; the other added tokens must follow them without a gap.
  first = len(proto.pieces) + 1
  rest = sorted(i for i in added if i >= len(FAIRSEQ_SPECIALS))
  if rest != list(range(first, first + len(rest))):
    raise errors.CheckpointError(
        f"{hf_dir}: added token ids {rest[:3]}...{rest[-1:]} do not follow"
        f" the model's {len(proto.pieces)} pieces (expected {first} on)")
  pieces = list(proto.pieces[len(SPM_SPECIALS):])
  del proto.pieces[:]
  kinds = sentencepiece_model_pb2.ModelProto.SentencePiece
  for piece in FAIRSEQ_SPECIALS:
    proto.pieces.add(piece=piece, score=0.0, type=(
        kinds.UNKNOWN if piece == "<unk>" else kinds.CONTROL))
  proto.pieces.extend(pieces)
  for i in rest:
    proto.pieces.add(piece=added[i], score=0.0, type=kinds.CONTROL)
  spec = proto.trainer_spec
  for name, value in FAIRSEQ_IDS.items():
    setattr(spec, name, value)
  spec.bos_piece, spec.pad_piece, spec.eos_piece, spec.unk_piece = (
      FAIRSEQ_SPECIALS)
  tf.io.gfile.makedirs(os.path.dirname(out_path) or ".")
  with tf.io.gfile.GFile(out_path, "wb") as f:
    f.write(proto.SerializeToString())
  return {added[i]: i for i in rest}


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m lta.data.fairseq_vocab",
      description=__doc__.split("\n\n")[0])
  parser.add_argument("hf_dir", help="HF mBART-50 / NLLB-200 directory")
  parser.add_argument("out_path", help="where the .model file goes")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    added = convert(args.hf_dir, args.out_path)
  except errors.LtaError as e:
    print(f"{parser.prog}: {e}", file=sys.stderr)
    return 2
  print(f"{args.out_path}: fairseq ids, {len(added)} added tokens"
        f" ({min(added.values())}-{max(added.values())}); bind"
        f" --gin.lta.vocab.get_vocabulary.path=\\\"{args.out_path}\\\"")
  return 0


if __name__ == "__main__":
  sys.exit(main())
