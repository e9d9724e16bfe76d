"""A tiny multilingual SentencePiece model, trained once per test session."""

import pytest
import sentencepiece as spm

from metrics_fixtures import read_jsonl


@pytest.fixture(scope="session")
def spm_model_path(tmp_path_factory):
  """Unigram model over every fixture text; unseen characters fall back to
  UTF-8 bytes, as in the mT5 vocabulary."""
  tmp = tmp_path_factory.mktemp("spm")
  lines = [r["text"] for r in read_jsonl("sentences.jsonl")]
  for r in read_jsonl("summaries.jsonl"):
    lines += [r["target"], r["prediction"]]
  corpus = tmp / "corpus.txt"
  corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
  spm.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=str(tmp / "tiny"), vocab_size=1500,
      model_type="unigram", character_coverage=0.98, byte_fallback=True,
      hard_vocab_limit=False, num_threads=1, minloglevel=2)
  return str(tmp / "tiny.model")
