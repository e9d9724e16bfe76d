"""The synthetic world's files: formats, determinism, the task's definition."""

import dataclasses
import gzip
import json
import os
import pathlib
import subprocess
import sys

import pytest

from lta.cli import make_world
from lta.synthetic import grammar
from lta.synthetic import languages
from lta.synthetic import world

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _files(directory) -> dict[str, bytes]:
  root = pathlib.Path(directory)
  return {str(p.relative_to(root)): p.read_bytes()
          for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _mc4_texts(path):
  with gzip.open(path, "rt", encoding="utf-8") as f:
    return [json.loads(line)["text"] for line in f]


def test_writes_every_file_in_the_release_formats(tiny_world):
  files = _files(tiny_world.out_dir)
  config = tiny_world.config
  want = {"corpus.txt", "world.json", "relatedness.tsv"}
  for spec in config.languages:
    want |= {f"xlsum/{spec.release_name}_{s}.jsonl" for s in
             ("train", "val", "test")}
    want |= {f"mc4/c4-{spec.code}.tfrecord-00000-of-00001.json.gz",
             f"mc4/c4-{spec.code}-validation.tfrecord-00000-of-00001.json.gz"}
  assert set(files) == want
  for spec in config.languages:
    sizes = {s: len(_jsonl(tiny_world.xlsum_path(spec.code, s)))
             for s in ("train", "val", "test")}
    train = config.xlsum_train if spec.role == "source" else config.target_train
    assert sizes == {"train": train, "val": config.xlsum_validation,
                     "test": config.xlsum_test}
    record = _jsonl(tiny_world.xlsum_path(spec.code, "val"))[0]
    assert list(record) == ["id", "url", "title", "summary", "text"]
    with gzip.open(tiny_world.mc4_path(spec.code, "train"), "rt") as f:
      assert list(json.loads(f.readline())) == ["text", "timestamp", "url"]
    assert len(_mc4_texts(tiny_world.mc4_path(spec.code, "validation"))) == (
        config.mc4_validation)
  corpus = pathlib.Path(tiny_world.corpus_path).read_text("utf-8").splitlines()
  assert len(corpus) == config.mc4_train * len(config.languages)


def test_same_seed_gives_identical_bytes(tiny_world, tmp_path):
  again = world.generate_world(str(tmp_path / "again"), world.preset("tiny"))
  assert _files(again.out_dir) == _files(tiny_world.out_dir)
  other = world.generate_world(
      str(tmp_path / "other"),
      dataclasses.replace(world.preset("tiny"), seed=1))
  other_files = _files(other.out_dir)
  assert other_files.keys() == _files(tiny_world.out_dir).keys()
  assert other_files["xlsum/english_train.jsonl"] != (
      _files(tiny_world.out_dir)["xlsum/english_train.jsonl"])


@pytest.mark.parametrize("hash_seed", ["0", "4321"])
def test_command_line_output_does_not_depend_on_hash_seed(
    tiny_world, tmp_path, hash_seed):
  env = {**os.environ, "PYTHONHASHSEED": hash_seed,
         "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH",
                                                               "")}
  subprocess.run([sys.executable, "-m", "lta.cli.make_world", "--preset",
                  "tiny", "--out_dir", str(tmp_path / "w")], check=True,
                 env=env, cwd=str(tmp_path), capture_output=True)
  assert _files(tmp_path / "w") == _files(tiny_world.out_dir)


def test_summary_is_the_headline_of_the_first_sentence(tiny_world):
  contents = world.xlsum_documents(tiny_world.config)
  for code, language in tiny_world.languages.items():
    for split in world.XLSUM_SPLITS:
      for i, record in enumerate(_jsonl(tiny_world.xlsum_path(code, split))):
        document = grammar.parse_document(record["text"], language)
        assert document == contents[split][i]
        first = document[0]
        summary = grammar.parse_headline(record["summary"], language)
        assert summary == grammar.Headline(first.subject, first.verb,
                                         first.object)
        assert record["summary"] == grammar.render_headline(summary, language)
        assert record["id"] == f"synthetic-{split}-{i:06d}"


def test_documents_and_summaries_are_parallel_across_languages(tiny_world):
  by_id = {}
  for code, language in tiny_world.languages.items():
    for record in _jsonl(tiny_world.xlsum_path(code, "test")):
      content = (grammar.parse_document(record["text"], language),
                 grammar.parse_headline(record["summary"], language))
      by_id.setdefault(record["id"], {})[code] = content
  assert len(by_id) == tiny_world.config.xlsum_test
  for contents in by_id.values():
    assert len(contents) == len(tiny_world.languages)
    assert len(set(contents.values())) == 1


def test_unlabelled_text_parses_and_holds_no_evaluation_document(tiny_world):
  contents = world.xlsum_documents(tiny_world.config)
  held_out = set(contents["val"] + contents["test"])
  texts = {}
  for code, language in tiny_world.languages.items():
    for split in world.MC4_SPLITS:
      texts[code, split] = _mc4_texts(tiny_world.mc4_path(code, split))
      for text in texts[code, split]:
        assert grammar.parse_document(text, language) not in held_out
  # Each language has its own stream: unlabelled text is not parallel.
  pt = [grammar.parse_document(t, tiny_world.languages["pt"])
        for t in texts["pt", "train"]]
  en = [grammar.parse_document(t, tiny_world.languages["en"])
        for t in texts["en", "train"]]
  assert pt != en


def test_load_world_round_trip(tiny_world, tmp_path):
  loaded = world.load_world(tiny_world.out_dir)
  assert loaded.config == tiny_world.config
  assert loaded.languages == tiny_world.languages
  meta = json.loads(pathlib.Path(tiny_world.out_dir, "world.json").read_text())
  entry = meta["languages"]["en"]
  token = next(iter(entry["surface"]))
  entry["surface"][token + "x"] = entry["surface"].pop(token)
  (tmp_path / "world.json").write_text(json.dumps(meta), "utf-8")
  with pytest.raises(ValueError, match="'en'"):
    world.load_world(str(tmp_path / "world.json"))
  with pytest.raises(FileNotFoundError, match="No synthetic world"):
    world.load_world(str(tmp_path / "missing"))


def test_bad_configs_are_named():
  with pytest.raises(ValueError, match="'pt' borrows from 'en', which must "
                     "come earlier"):
    world.WorldConfig(languages=(
        languages.LanguageSpec("pt", "target", borrows=(("en", 0.5),)),
        languages.LanguageSpec("en", "source")))
  with pytest.raises(ValueError, match="num_verbs must be >= 1"):
    world.WorldConfig(num_verbs=0)
  with pytest.raises(ValueError, match="Unknown preset 'huge'"):
    world.preset("huge")


def test_existing_world_is_not_overwritten_silently(tmp_path):
  config = world.preset("tiny").with_languages(["en", "ru", "uk"])
  world.generate_world(str(tmp_path), config)
  with pytest.raises(FileExistsError, match="overwrite=True"):
    world.generate_world(str(tmp_path), config)
  (tmp_path / "notes.txt").write_text("mine")
  smaller = config.with_languages(["en"])
  info = world.generate_world(str(tmp_path), smaller, overwrite=True)
  assert info.sources == ["en"] and info.targets == []
  assert sorted(os.listdir(tmp_path / "xlsum")) == [
      "english_test.jsonl", "english_train.jsonl", "english_val.jsonl"]
  assert (tmp_path / "notes.txt").read_text() == "mine"


def test_command_line_language_subset(tmp_path, capsys):
  info = make_world.main(["--out_dir", str(tmp_path / "w"), "--preset", "tiny",
                          "--languages", "en,ru,uk", "--seed", "3"])
  assert list(info.languages) == ["en", "ru", "uk"]
  assert info.config.seed == 3
  assert "targets uk" in capsys.readouterr().out
  with pytest.raises(ValueError, match="'pt' borrows from 'ru'"):
    make_world.main(["--out_dir", str(tmp_path / "x"), "--preset", "tiny",
                     "--languages", "en,pt"])