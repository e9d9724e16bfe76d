"""`lta prepare-data` end to end on the shipped fixtures, and the trainer's
fail-fast check (`input_pipeline.check_task`) that points at it."""

import json

import pytest
import seqio

from lta import errors
from lta.data import input_pipeline
from lta.train import loop as trainer
from lta.cli import main as cli
from lta.cli import prepare_data
from lta_tasks import mc4_index
from tests.tasks.conftest import FIXTURES
from tests.tasks.conftest import XLSUM_FIXTURE_LANGS


def _argv(tmp_path, spm, *extra):
  return ["--tfds_data_dir", str(tmp_path / "tfds"),
          "--xlsum_manual_dir", str(FIXTURES / "xlsum"),
          "--mc4_dir", str(FIXTURES / "mc4"),
          "--tydiqa", "--tydiqa_dir", str(FIXTURES / "tydiqa"),
          "--vocab", spm, *extra]


@pytest.fixture
def tfds_override():
  def point_at(data_dir):
    seqio.set_tfds_data_dir_override(str(data_dir))
  yield point_at
  seqio.set_tfds_data_dir_override(None)


def _fixture_lines(name):
  return len((FIXTURES / "xlsum" / name).read_text("utf-8").splitlines())


def test_prepares_every_family_and_training_reads_it(
    tmp_path, tiny_spm_path, capsys, tfds_override):
  assert cli.COMMANDS["prepare-data"] == "lta.cli.prepare_data"
  assert prepare_data.main(_argv(tmp_path, tiny_spm_path)) == 0
  out = capsys.readouterr().out
  data_dir = tmp_path / "tfds"
  # What was prepared, where, in one line each.
  for lang, language in XLSUM_FIXTURE_LANGS.items():
    counts = [_fixture_lines(f"{language}_{s}.jsonl")
              for s in ("train", "val", "test")]
    assert (f"XL-Sum {lang}: {counts[0]} train, {counts[1]} validation,"
            f" {counts[2]} test -> {data_dir}/xlsum/{lang}/2.0.0") in out
  assert f"mC4 en: 3 train, 1 validation -> {data_dir}/lta_mc4/en.json" in out
  assert f"mC4 ru: 3 train, 1 validation -> {data_dir}/lta_mc4/ru.json" in out
  assert (f"TyDi QA GoldP: 4 train, 3 validation ->"
          f" {data_dir}/tydi_qa/goldp/3.0.0") in out
  assert f"--tfds_data_dir={data_dir}" in out
  index = json.loads((data_dir / "lta_mc4" / "en.json").read_text())
  assert [s["records"] for s in index["shards"]["train"]] == [2, 1]

  # --tfds_data_dir alone points every task at the prepared data.
  tfds_override(data_dir)
  for name in ("xlsum.zh", "mc4_prefix_lm.ru", "tydiqa_goldp.fi",
               "xlsum_zeroshot", "tydiqa_goldp_zeroshot"):
    input_pipeline.check_task(name)
  lengths = {"inputs": 64, "targets": 64}
  for name, split, count in (("xlsum.ar", "test", 1),
                             ("mc4_prefix_lm.en", "validation", 1),
                             ("tydiqa_goldp.en", "train", 2)):
    examples = list(seqio.get_mixture_or_task(name).get_dataset(
        lengths, split=split, shuffle=False).as_numpy_iterator())
    assert len(examples) == count, name

  # A second run keeps what is there.
  assert prepare_data.main(_argv(tmp_path, tiny_spm_path)) == 0
  assert "already prepared, kept" in capsys.readouterr().out


def test_xquad_flag_prepares_squad_and_xquad_for_the_tasks(
    tmp_path, tiny_spm_path, capsys, tfds_override):
  data_dir = tmp_path / "tfds"
  argv = ["--tfds_data_dir", str(data_dir), "--xquad_dir",
          str(FIXTURES / "xquad"), "--xquad_languages", "en,th",
          "--vocab", tiny_spm_path]
  assert cli.main(["prepare-data", *argv]) == 0
  out = capsys.readouterr().out
  source = FIXTURES / "xquad"
  assert (f"SQuAD v1.1: 2 train, 1 validation -> {data_dir}/squad/v1.1/3.0.0;"
          f" from {source}") in out
  assert f"XQuAD en: 1 test -> {data_dir}/xquad/en/3.0.0" in out
  assert (f"XQuAD th: 1 test, 1 translate-dev -> {data_dir}/xquad/th/3.0.0"
          in out)
  tfds_override(data_dir)
  for name in ("xquad.en", "xquad_eval.th"):  # every split there
    input_pipeline.check_task(name)
  assert list(seqio.get_mixture_or_task("xquad.th").get_dataset(
      {"inputs": 64, "targets": 16}, split="test",
      shuffle=False).as_numpy_iterator())
  assert cli.main(["prepare-data", *argv]) == 0
  assert capsys.readouterr().out.count("already prepared, kept") == 3


def test_vocabulary_that_does_not_fit_the_model_stops_before_any_data(
    tmp_path, tiny_spm_path, capsys):
  # models/tiny.gin has 512 embedding rows; the fixture vocabulary more.
  argv = _argv(tmp_path, tiny_spm_path, "--model_gin_file", "models/tiny.gin")
  assert cli.main(["prepare-data", *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err
  assert err.startswith(f"lta prepare-data: vocabulary {tiny_spm_path} has")
  assert "models/tiny.gin) has 512 embedding rows" in err
  assert not (tmp_path / "tfds").exists()


@pytest.mark.parametrize("extra, message", [
    (["--xlsum_languages", "english"],
     "--xlsum_languages: 'english' is not an XL-Sum language code"),
    (["--mc4_languages", "sw"], "mC4 'sw': no train shards match"),
    (["--vocab", "/nowhere/spm.model"],
     "vocabulary '/nowhere/spm.model' does not exist"),
    (["--xquad_dir", str(FIXTURES / "xquad"), "--xquad_languages", "vi"],
     f"XQuAD: {FIXTURES / 'xquad' / 'xquad.vi.json'} is missing"),
    (["--xquad_dir", str(FIXTURES / "tydiqa")],
     "holds no XQuAD test file (xquad.<lang>.json"),
    (["--xquad_languages", "en"], "--xquad_languages needs --xquad_dir"),
    (["--xquad_dir", str(FIXTURES / "xquad"), "--xquad_languages", "zhh"],
     "XQuAD has no language 'zhh' (did you mean 'zh'"),
])
def test_user_mistakes_are_one_line(tmp_path, tiny_spm_path, capsys, extra,
                                    message):
  assert cli.main(["prepare-data", *_argv(tmp_path, tiny_spm_path,
                                          *extra)]) == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and message in err


def test_unknown_task_lists_the_closest_names():
  with pytest.raises(errors.DataError) as error:
    input_pipeline.check_task("xlsum.english")
  assert "MIXTURE_OR_TASK_NAME='xlsum.english'" in str(error.value)
  hint = str(error.value).split("(did you mean ")[1]
  assert "'xlsum.en'" in hint
  with pytest.raises(errors.DataError) as error:
    input_pipeline.check_task("qqqqqqq")
  assert "xlsum.<...>" in str(error.value)
  assert "MIXTURE_OR_TASK_MODULE" in str(error.value)


# seqio's TFDS loaders keep the first data dir they see, so these tests use
# tasks that no other test reads.


def test_unprepared_data_names_the_command(tmp_path, tfds_override):
  tfds_override(tmp_path)
  with pytest.raises(errors.DataError, match=(
      f"xlsum.fr: TFDS dataset xlsum/fr:2.0.0 is not prepared in {tmp_path}"
      ".*; run lta prepare-data")):
    input_pipeline.check_task("xlsum.fr")
  with pytest.raises(errors.DataError, match=(
      f"mC4 'uk' is not prepared in {tmp_path}: no"
      f" {mc4_index.index_path(str(tmp_path), 'uk')} .*lta prepare-data")):
    input_pipeline.check_task("mc4_prefix_lm.uk")


def test_trainer_checks_the_data_before_loading_the_model(tmp_path,
                                                          tfds_override):
  tfds_override(tmp_path)
  # The base checkpoint does not exist either: the data check comes first.
  with pytest.raises(errors.DataError, match="tydiqa_goldp.te: TFDS dataset"):
    trainer.train(model_dir=str(tmp_path / "run"),
                  mixture_or_task_name="tydiqa_goldp.te",
                  task_feature_lengths={"inputs": 8, "targets": 8},
                  train_steps=1,
                  initial_checkpoint_path=str(tmp_path / "no_checkpoint"))
