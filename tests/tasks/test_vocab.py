"""lta.data.vocab: the lazily resolved vocabulary and the tiny test model."""

import dataclasses

import gin
import pytest
import seqio

from lta import errors
from lta.data import vocab
from tests.tasks.conftest import FIXTURES
from tests.tasks.conftest import fixture_texts


def test_tiny_model_has_mt5_special_ids(tiny_vocabulary):
  sp = tiny_vocabulary.tokenizer
  assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
  assert tiny_vocabulary.vocab_size <= 1000


def test_byte_fallback_encodes_unseen_scripts_without_unk(tiny_vocabulary):
  text = "नमस्ते दुनिया ✓ Ωμέγα"  # Devanagari and Greek: not in the fixtures.
  ids = tiny_vocabulary.encode(text)
  assert vocab.UNK_ID not in ids
  assert tiny_vocabulary.decode(ids) == text


def test_training_is_deterministic(tmp_path):
  texts = fixture_texts()
  first = vocab.train_tiny_sentencepiece(texts, str(tmp_path / "a"), 600)
  second = vocab.train_tiny_sentencepiece(texts, str(tmp_path / "b"), 600)
  # The files differ only in the recorded model_prefix; the pieces agree.
  a, b = (seqio.SentencePieceVocabulary(p).tokenizer for p in (first, second))
  assert a.GetPieceSize() == b.GetPieceSize()
  assert ([(a.IdToPiece(i), a.GetScore(i)) for i in range(a.GetPieceSize())]
          == [(b.IdToPiece(i), b.GetScore(i)) for i in range(b.GetPieceSize())])


def test_vocab_size_must_leave_room_for_pieces(tmp_path):
  with pytest.raises(ValueError, match="at least 260"):
    vocab.train_tiny_sentencepiece(["some text"], str(tmp_path / "m"), 200)


def test_tasks_share_the_lazy_vocabulary_and_follow_gin(tiny_spm_path, tmp_path):
  task = seqio.get_mixture_or_task("xlsum.en")
  assert task.output_features["inputs"].vocabulary is vocab.LAZY_VOCABULARY
  assert vocab.LAZY_VOCABULARY.sentencepiece_model_file == tiny_spm_path

  other = vocab.train_tiny_sentencepiece(
      ["only a little English text here"] * 3, str(tmp_path / "other"), 300)
  with gin.unlock_config():
    gin.bind_parameter("lta.vocab.get_vocabulary.path", other)
  assert vocab.LAZY_VOCABULARY.sentencepiece_model_file == other
  assert vocab.LAZY_VOCABULARY.vocab_size == vocab.get_vocabulary().vocab_size
  assert vocab.LAZY_VOCABULARY.vocab_size != seqio.SentencePieceVocabulary(
      tiny_spm_path).vocab_size


def test_a_vocabulary_passed_in_wins_over_gin_within_its_block(
    tiny_spm_path, tmp_path):
  other = vocab.train_tiny_sentencepiece(
      ["only a little English text here"] * 3, str(tmp_path / "other"), 300)
  task = seqio.get_mixture_or_task("xlsum.en")
  with vocab.use_vocabulary(other) as passed:
    assert passed.sentencepiece_model_file == other
    assert vocab.vocabulary_path() == other
    assert task.output_features["targets"].vocabulary.encode("text here") == \
        seqio.SentencePieceVocabulary(other).encode("text here")
    with vocab.use_vocabulary(tiny_spm_path):  # the innermost wins
      assert vocab.LAZY_VOCABULARY.sentencepiece_model_file == tiny_spm_path
    assert vocab.LAZY_VOCABULARY.sentencepiece_model_file == other
  # gin's binding (the fixture's) again, which the block left as it was.
  assert vocab.vocabulary_path() == tiny_spm_path
  assert gin.query_parameter(vocab.PATH_BINDING) == tiny_spm_path


def test_default_path_is_mt5_and_nothing_is_read_until_used(tmp_path):
  gin.clear_config()
  assert vocab.vocabulary_path() == vocab.MT5_SPM_PATH
  missing = str(tmp_path / "missing.model")
  with gin.unlock_config():
    gin.bind_parameter("lta.vocab.get_vocabulary.path", missing)
  # Registered tasks and their features exist without the file ...
  task = seqio.get_mixture_or_task("mc4_prefix_lm.en")
  assert missing in str(task.output_features["targets"].vocabulary)
  # ... which is only opened when text is encoded.
  with pytest.raises(Exception, match="missing.model"):
    vocab.LAZY_VOCABULARY.encode("hello")


def test_gin_knobs_parse_from_a_config_file(tiny_spm_path):
  gin.clear_config()
  gin.parse_config(f"""
      lta.vocab.get_vocabulary.path = "{tiny_spm_path}"
      lta_tasks.mc4_local_dir.path = "/data/mc4"
      lta_tasks.skip_malformed_records.skip = True
      lta_tasks.xlsum_mixing_rate.maximum = 100
      lta_tasks.xlsum_mixing_rate.temperature = 3.0
  """)
  from lta_tasks import jsonl_records, mc4  # pylint: disable=g-import-not-at-top
  assert vocab.vocabulary_path() == tiny_spm_path
  assert mc4.mc4_local_dir() == "/data/mc4"
  assert jsonl_records.skip_malformed_records()


# ------------------------- the vocabulary and the model -------------------------


def test_model_vocabulary_from_gin_file_checkpoint_or_defaults():
  tiny = vocab.model_vocabulary(gin_file="models/tiny.gin")
  assert (tiny.rows, tiny.eos_id, tiny.pad_id) == (512, 1, 0)
  assert vocab.model_vocabulary(gin_file="models/mt5_xxl.gin").rows == 250112
  hf_dir = str(FIXTURES.parent / "hf" / "mt5_tiny")
  from_hf = vocab.model_vocabulary(checkpoint_path=hf_dir)
  assert from_hf.rows == 128 and from_hf.source.endswith("config.json")
  assert vocab.model_vocabulary().rows == 250112
  with pytest.raises(errors.MissingFileError, match="no_such.gin"):
    vocab.model_vocabulary(gin_file="models/no_such.gin")


def test_vocabulary_must_fit_the_model(tiny_vocabulary):
  size = tiny_vocabulary.vocab_size
  fits = vocab.ModelVocabulary(rows=size, eos_id=1, pad_id=0, source="m")
  vocab.check_fits_model(tiny_vocabulary, fits)
  small = dataclasses.replace(fits, rows=size - 1)
  with pytest.raises(errors.DataError, match=(
      f"has {size:,} ids but the model \\(m\\) has {size - 1:,} embedding")):
    vocab.check_fits_model(tiny_vocabulary, small)
  with pytest.raises(errors.DataError, match="EOS id 1 but the model"):
    vocab.check_fits_model(tiny_vocabulary,
                           dataclasses.replace(fits, eos_id=2))


def test_load_checked_names_a_missing_or_broken_file(tmp_path, tiny_spm_path):
  assert vocab.load_checked(tiny_spm_path).vocab_size > 259
  with pytest.raises(errors.MissingFileError, match="does not exist"):
    vocab.load_checked(str(tmp_path / "missing.model"))
  broken = tmp_path / "broken.model"
  broken.write_bytes(b"not a sentencepiece model")
  with pytest.raises(errors.DataError, match="is not a SentencePiece model"):
    vocab.load_checked(str(broken))
