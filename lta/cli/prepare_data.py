r"""Prepares XL-Sum, mC4, TyDi QA and XQuAD into a TFDS data dir.

  lta prepare-data --tfds_data_dir=/data/tfds \
    --xlsum_manual_dir=/data/xlsum --xlsum_languages=seen,unseen \
    --mc4_dir=/data/mc4 --mc4_languages=en,pt,uk \
    --tydiqa --tydiqa_dir=/data/tydiqa --xquad_dir=/data/xquad \
    --vocab=/data/mt5/sentencepiece.model --model_gin_file=models/mt5_base.gin

Checks the vocabulary against the model and that every source is there,
then prepares each dataset into the TFDS data dir and prints where. Train
and evaluate with --tfds_data_dir pointing at the same directory. See
docs/experiments.md, "Data".
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from lta.cli import runner

# lta.cli.runner imports TensorFlow quietly (no CUDA probes) before main.
USES_TENSORFLOW = True


def _list(text: str) -> list[str]:
  return [t for t in text.split(",") if t]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="lta prepare-data", description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split("\n", 2)[2])
  parser.add_argument(
      "--tfds_data_dir", default=os.environ.get("TFDS_DATA_DIR"),
      help="where prepared data goes (default: $TFDS_DATA_DIR, else TFDS's"
      " ~/tensorflow_datasets)")
  parser.add_argument("--xlsum_manual_dir", help="XL-Sum v2.0 release files"
                      " <language>_{train,val,test}.jsonl, flat or per"
                      " language; without it TFDS downloads the release")
  parser.add_argument("--xlsum_languages", type=_list, default=[],
                      help="ISO codes, or seen/unseen/all (default: every"
                      " language in --xlsum_manual_dir)")
  parser.add_argument("--mc4_dir", help="mC4 json.gz shards"
                      " (c4-<lang>.tfrecord-XXXXX-of-YYYYY.json.gz)")
  parser.add_argument("--mc4_languages", type=_list, default=[],
                      help="mC4 codes (default: every language in --mc4_dir)")
  parser.add_argument("--tydiqa", action="store_true",
                      help="prepare TyDi QA GoldP (tydi_qa/goldp:3.0.0)")
  parser.add_argument("--tydiqa_dir", help="tydiqa-goldp-v1.1-{train,dev}"
                      ".json, to prepare TyDi QA offline")
  parser.add_argument("--xquad_dir", help="SQuAD v1.1 (train-v1.1.json,"
                      " dev-v1.1.json), XQuAD (xquad.<lang>.json) and"
                      " XTREME's squad.translate.{train,dev}.en-<lang>.json,"
                      " to prepare SQuAD and XQuAD offline")
  parser.add_argument("--xquad_languages", type=_list, default=[],
                      help="XQuAD codes (default: every language with an"
                      " xquad.<lang>.json in --xquad_dir)")
  parser.add_argument("--vocab", default=None,
                      help="SentencePiece model (default: mT5's)")
  parser.add_argument("--model_gin_file", help="gin model file whose"
                      " T5Config the vocabulary must fit, e.g."
                      " models/mt5_base.gin")
  parser.add_argument("--initial_checkpoint_path",
                      help="HF checkpoint directory whose config.json the"
                      " vocabulary must fit")
  parser.add_argument("--skip_malformed", action="store_true",
                      help="skip and count malformed records and corrupt"
                      " mC4 shards instead of stopping at the first")
  parser.add_argument("--overwrite", action="store_true",
                      help="rebuild datasets that are already prepared")
  parser.add_argument("--debug", action="store_true",
                      help="show the traceback of an error")
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  # Imported after parsing: --help needs no TensorFlow.
  from lta.data import vocab  # pylint: disable=g-import-not-at-top
  from lta_tasks import prepare  # pylint: disable=g-import-not-at-top
  from lta_tasks import tfds_dirs  # pylint: disable=g-import-not-at-top

  request = prepare.Request(
      tfds_data_dir=tfds_dirs.tfds_data_dir(args.tfds_data_dir),
      xlsum_manual_dir=args.xlsum_manual_dir,
      xlsum_languages=args.xlsum_languages, mc4_dir=args.mc4_dir,
      mc4_languages=args.mc4_languages, tydiqa=args.tydiqa,
      tydiqa_dir=args.tydiqa_dir, xquad_dir=args.xquad_dir,
      xquad_languages=args.xquad_languages, vocab_path=args.vocab or vocab.MT5_SPM_PATH,
      model_gin_file=args.model_gin_file,
      initial_checkpoint_path=args.initial_checkpoint_path,
      skip_malformed=args.skip_malformed, overwrite=args.overwrite)
  # A mistake (LtaError) is printed in one line by lta.cli.runner.
  plan = prepare.plan(request)
  for line in plan.lines():
    print(line, flush=True)
  for prepared in prepare.run(plan):
    print(prepared.line(), flush=True)
  print(prepare.training_hint(request))
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
