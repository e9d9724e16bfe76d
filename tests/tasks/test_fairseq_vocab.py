"""lta.data.fairseq_vocab: the converted vocabularies give the ids of
transformers' MBart50Tokenizer and NllbTokenizer.

tests/fixtures/hf/fairseq_vocab (make_fairseq_vocab_fixtures.py, the HF
peer env) holds a tiny SentencePiece BPE model saved by each tokenizer and
the ids they give on multilingual text with source and target codes.
"""

import json
import pathlib

import pytest
import seqio

from lta.data import fairseq_vocab
from lta.data import language_codes

FIXTURES = (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "hf" /
            "fairseq_vocab")
REFERENCE = json.loads((FIXTURES / "reference.json").read_text("utf-8"))


@pytest.fixture(scope="module", params=["mbart50", "nllb200"])
def converted(request, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("vocab") / f"{request.param}.model")
  added = fairseq_vocab.convert(str(FIXTURES / request.param), path)
  return (request.param, added,
          seqio.SentencePieceVocabulary(path, extra_ids=0))


def test_ids_equal_the_hf_tokenizers_with_language_codes(converted):
  scheme, added, vocabulary = converted
  reference = REFERENCE[scheme]
  tokenizer = vocabulary.tokenizer
  assert vocabulary.vocab_size == reference["vocab_size"]
  assert {t: tokenizer.piece_to_id(t) for t in reference["special_ids"]} == (
      reference["special_ids"])
  assert {c: tokenizer.piece_to_id(c) for c in reference["code_ids"]} == (
      reference["code_ids"])
  assert added == {**reference["code_ids"],
                   "<mask>": reference["special_ids"]["<mask>"]}
  assert (vocabulary.eos_id, tokenizer.pad_id(), vocabulary.unk_id) == (
      2, 1, 3)
  for code, rows in (*reference["inputs"].items(),
                     *reference["targets"].items()):
    ours = [[tokenizer.piece_to_id(code), *vocabulary.encode(text),
             vocabulary.eos_id] for text in reference["texts"]]
    assert ours == rows, code


def test_the_tasks_find_the_codes_at_the_models_ids(converted):
  scheme, _, vocabulary = converted
  reference = REFERENCE[scheme]
  for lang in ("en", "ru", "hi", "sw"):
    code = language_codes.code(scheme, lang)
    assert language_codes.code_id(vocabulary, scheme, lang) == (
        reference["code_ids"][code])
    assert vocabulary.encode(code) != [reference["code_ids"][code]]
    assert vocabulary.decode([reference["code_ids"][code], 4]) == (
        vocabulary.decode([4]))  # a control piece: decoding drops it


def test_a_directory_without_the_files_is_one_line(tmp_path, capsys):
  assert fairseq_vocab.main([str(tmp_path), str(tmp_path / "x.model")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and (
      f"{tmp_path}/sentencepiece.bpe.model does not exist" in err)
  (tmp_path / "sentencepiece.bpe.model").write_bytes(
      (FIXTURES / "mbart50" / "sentencepiece.bpe.model").read_bytes())
  assert fairseq_vocab.main([str(tmp_path), str(tmp_path / "x.model")]) == 2
  assert "no tokenizer_config.json with added_tokens_decoder" in (
      capsys.readouterr().err)
