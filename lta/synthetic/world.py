"""A synthetic multilingual world: languages, a summarization task, raw text.

Every language renders the same underlying content (events: an entity does
something to an object, maybe somewhere, with optional adjectives) with its
own pseudo-words, word order, adjective and adposition placement, verb
suffixes and script. Related languages borrow part of their lexicon from
their relatives. The task is headline generation: the summary of a document
is its first event without adjectives and place, verb in the present tense.

`generate_world` writes the files in the real formats (XL-Sum release jsonl,
mC4 json.gz shards), a SentencePiece training corpus, `world.json` and a
relatedness table readable by `lta.languages.related.load_table`. Everything comes
from seeded numpy generators and fixed iteration orders, so a config gives
byte-identical files in any process (nothing depends on `hash()`).

The languages borrow real XL-Sum codes so the real loaders and task names
apply; their surface forms are synthetic. See docs/synthetic_world.md.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

from lta.synthetic import grammar
from lta.synthetic import languages as languages_lib

FORMAT_VERSION = 1
_TIMESTAMP = "2019-01-01T00:00:00Z"


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """Sizes and seed of a world; the defaults are the `mini` preset."""
  seed: int = 0
  languages: tuple[languages_lib.LanguageSpec, ...] = (
      languages_lib.DEFAULT_LANGUAGES)
  # Vocabulary: concepts per category.
  num_entities: int = 24
  num_verbs: int = 12
  num_objects: int = 24
  num_adjectives: int = 10
  num_places: int = 10
  # Documents.
  min_sentences: int = 3
  max_sentences: int = 5
  p_adjective: float = 0.4
  p_place: float = 0.6
  p_present: float = 0.3
  # XL-Sum examples per split (parallel across languages). Targets get
  # `target_train` training examples only because the TFDS builder needs a
  # train file; they are a placeholder (or an oracle), never a zero-shot input.
  xlsum_train: int = 1000
  xlsum_validation: int = 64
  xlsum_test: int = 128
  target_train: int = 32
  # mC4 documents per language and split (not parallel).
  mc4_train: int = 1500
  mc4_validation: int = 64

  def __post_init__(self):
    codes = [s.code for s in self.languages]
    if not codes or len(set(codes)) != len(codes):
      raise ValueError(f"WorldConfig.languages: codes must be unique and "
                       f"non-empty, got {codes}")
    for i, spec in enumerate(self.languages):
      for relative, _ in spec.borrows:
        if relative not in codes[:i]:
          raise ValueError(f"WorldConfig.languages: {spec.code!r} borrows "
                           f"from {relative!r}, which must come earlier in "
                           f"{codes}")
    if not any(s.role == "source" for s in self.languages):
      raise ValueError("WorldConfig.languages: no source language")
    for name in ("num_entities", "num_verbs", "num_objects", "num_adjectives",
                 "num_places", "min_sentences", "xlsum_train",
                 "xlsum_validation", "xlsum_test", "target_train",
                 "mc4_train", "mc4_validation"):
      if getattr(self, name) < 1:
        raise ValueError(f"WorldConfig.{name} must be >= 1, got "
                         f"{getattr(self, name)}")
    if self.max_sentences < self.min_sentences:
      raise ValueError(f"WorldConfig: max_sentences={self.max_sentences} < "
                       f"min_sentences={self.min_sentences}")
    for name in ("p_adjective", "p_place", "p_present"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"WorldConfig.{name} must be in [0, 1]")

  def concept_keys(self) -> list[str]:
    return languages_lib.concept_keys({
        "entity": self.num_entities, "verb": self.num_verbs,
        "object": self.num_objects, "adjective": self.num_adjectives,
        "place": self.num_places})

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out["languages"] = [dataclasses.asdict(s) for s in self.languages]
    return out

  @classmethod
  def from_json(cls, data: Mapping) -> "WorldConfig":
    data = dict(data)
    data["languages"] = tuple(
        languages_lib.LanguageSpec(
            **{**s, "borrows": tuple(tuple(b) for b in s["borrows"])})
        for s in data["languages"])
    return cls(**data)

  def with_languages(self, codes: Sequence[str]) -> "WorldConfig":
    """The same world restricted to `codes` (relatives must be included)."""
    unknown = [c for c in codes if c not in {s.code for s in self.languages}]
    if unknown:
      raise ValueError(f"Unknown languages {unknown}; this config has "
                       f"{[s.code for s in self.languages]}")
    keep = tuple(s for s in self.languages if s.code in codes)
    return dataclasses.replace(self, languages=keep)


PRESETS = {
    # A few dozen examples: unit tests.
    "tiny": WorldConfig(
        num_entities=8, num_verbs=5, num_objects=8, num_adjectives=4,
        num_places=4, min_sentences=2, max_sentences=3, xlsum_train=24,
        xlsum_validation=8, xlsum_test=8, target_train=4, mc4_train=32,
        mc4_validation=8),
    # `make demo`: big enough that a task vector learns the task in a few
    # hundred steps, small enough to generate and tokenize in seconds.
    "demo": WorldConfig(
        num_entities=12, num_verbs=6, num_objects=12, num_adjectives=6,
        num_places=6, min_sentences=2, max_sentences=4, xlsum_train=500,
        xlsum_validation=32, xlsum_test=32, target_train=8, mc4_train=500,
        mc4_validation=16),
    # The miniature reproduction (sized for a ~15 minute run on 2 CPU cores).
    "mini": WorldConfig(),
    # The larger miniature (experiments/miniature_large.gin): 256 test
    # documents per target, for paired intervals over examples.
    "mini_large": WorldConfig(xlsum_test=256),
}


def preset(name: str) -> WorldConfig:
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; choose from {sorted(PRESETS)}")
  return PRESETS[name]


# ----------------------------------------------------------------------------
# Content.
# ----------------------------------------------------------------------------


def sample_event(rng: np.random.Generator, config: WorldConfig
                 ) -> grammar.Event:
  def maybe(p, n):
    return int(rng.integers(n)) if rng.random() < p else None

  return grammar.Event(
      subject=int(rng.integers(config.num_entities)),
      verb=int(rng.integers(config.num_verbs)),
      object=int(rng.integers(config.num_objects)),
      subject_adjective=maybe(config.p_adjective, config.num_adjectives),
      object_adjective=maybe(config.p_adjective, config.num_adjectives),
      place=maybe(config.p_place, config.num_places),
      present=bool(rng.random() < config.p_present),
  )


def sample_document(rng: np.random.Generator, config: WorldConfig
                    ) -> grammar.Document:
  n = int(rng.integers(config.min_sentences, config.max_sentences + 1))
  return tuple(sample_event(rng, config) for _ in range(n))


# ----------------------------------------------------------------------------
# Writing the world.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorldInfo:
  """A generated world: its config, languages and files."""
  out_dir: str
  config: WorldConfig
  languages: Mapping[str, languages_lib.Language]

  @property
  def sources(self) -> list[str]:
    return [s.code for s in self.config.languages if s.role == "source"]

  @property
  def targets(self) -> list[str]:
    return [s.code for s in self.config.languages if s.role == "target"]

  @property
  def xlsum_dir(self) -> str:
    return os.path.join(self.out_dir, "xlsum")

  @property
  def mc4_dir(self) -> str:
    return os.path.join(self.out_dir, "mc4")

  @property
  def corpus_path(self) -> str:
    return os.path.join(self.out_dir, "corpus.txt")

  @property
  def relatedness_path(self) -> str:
    return os.path.join(self.out_dir, "relatedness.tsv")

  def xlsum_path(self, code: str, split: str) -> str:
    """split: 'train', 'val' or 'test' (the release's file suffixes)."""
    return os.path.join(self.xlsum_dir, xlsum_file_name(code, split))

  def mc4_path(self, code: str, split: str) -> str:
    """split: 'train' or 'validation'."""
    return os.path.join(self.mc4_dir, mc4_file_name(code, split))

  def related_sources(self, target: str, **kwargs) -> list[str]:
    return languages_lib.related_sources(self.languages, target, **kwargs)

  def to_json(self) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "config": self.config.to_json(),
        "sources": self.sources,
        "targets": self.targets,
        "languages": {c: l.to_json() for c, l in self.languages.items()},
        "distances": [
            {"a": a, "b": b, "syntactic": syn, "lexical": lex}
            for (a, b), (syn, lex)
            in languages_lib.distance_pairs(self.languages).items()],
        "related_sources": {
            "syntactic_max": languages_lib.SYNTACTIC_MAX,
            "lexical_max": languages_lib.LEXICAL_MAX,
            "by_target": {t: self.related_sources(t) for t in self.targets}},
        "summary_rule": ("headline of the first sentence: subject, verb in "
                         "the present tense, object; no adjectives or place"),
    }


XLSUM_SPLITS = ("train", "val", "test")
MC4_SPLITS = ("train", "validation")


def xlsum_file_name(code: str, split: str) -> str:
  if split not in XLSUM_SPLITS:
    raise ValueError(f"XL-Sum split {split!r}; expected one of {XLSUM_SPLITS}")
  return f"{languages_lib.XLSUM_RELEASE_NAMES[code]}_{split}.jsonl"


def mc4_file_name(code: str, split: str) -> str:
  if split not in MC4_SPLITS:
    raise ValueError(f"mC4 split {split!r}; expected one of {MC4_SPLITS}")
  stem = f"c4-{code}" if split == "train" else f"c4-{code}-validation"
  return f"{stem}.tfrecord-00000-of-00001.json.gz"


def xlsum_documents(config: WorldConfig) -> dict[str, list[grammar.Document]]:
  """Contents of the XL-Sum splits, shared by all languages.

  Test first, then val, then train, each without documents of the splits
  before it: the evaluation sets do not change when `xlsum_train` does.
  """
  sizes = {"test": config.xlsum_test, "val": config.xlsum_validation,
           "train": max(config.xlsum_train, config.target_train)}
  seen: set[grammar.Document] = set()
  out = {}
  for split in ("test", "val", "train"):
    rng = languages_lib.seeded_rng(config.seed, "xlsum", split)
    docs = []
    while len(docs) < sizes[split]:
      doc = sample_document(rng, config)
      if doc not in seen:
        seen.add(doc)
        docs.append(doc)
    out[split] = docs
  return {s: out[s] for s in XLSUM_SPLITS}


def mc4_documents(config: WorldConfig, code: str,
                  exclude: Iterable[grammar.Document] = ()
                  ) -> dict[str, list[grammar.Document]]:
  """Unlabelled documents of one language (its own stream, not parallel)."""
  excluded = set(exclude)
  out = {}
  for split, size in (("train", config.mc4_train),
                      ("validation", config.mc4_validation)):
    rng = languages_lib.seeded_rng(config.seed, "mc4", code, split)
    docs = []
    while len(docs) < size:
      doc = sample_document(rng, config)
      if doc not in excluded:
        docs.append(doc)
    out[split] = docs
  return out


def xlsum_record(document: grammar.Document,
                 language: languages_lib.Language, split: str,
                 index: int) -> dict:
  return {
      "id": f"synthetic-{split}-{index:06d}",
      "url": f"https://synthetic.invalid/{language.code}/xlsum/{split}/{index}",
      "title": grammar.render_title(document, language),
      "summary": grammar.render_headline(grammar.headline(document), language),
      "text": grammar.render_document(document, language),
  }


def mc4_record(document: grammar.Document, language: languages_lib.Language,
               split: str, index: int) -> dict:
  return {
      "text": grammar.render_document(document, language),
      "timestamp": _TIMESTAMP,
      "url": f"https://synthetic.invalid/{language.code}/mc4/{split}/{index}",
  }


def _json_line(record: Mapping) -> str:
  return json.dumps(record, ensure_ascii=False) + "\n"


def _write_text(path: str, text: str) -> None:
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)


def _write_gzip(path: str, text: str) -> None:
  # No file name and mtime 0 in the header: the bytes depend on text only.
  with open(path, "wb") as raw:
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
      f.write(text.encode("utf-8"))


def write_corpus(path: str, texts: Mapping[str, Sequence[str]]) -> None:
  """One document per line, languages interleaved (a SentencePiece corpus)."""
  codes = list(texts)
  depth = max((len(v) for v in texts.values()), default=0)
  lines = [texts[c][i] for i in range(depth) for c in codes
           if i < len(texts[c])]
  _write_text(path, "".join(line + "\n" for line in lines))


def _owned_paths(out_dir: str) -> list[str]:
  paths = [os.path.join(out_dir, n)
           for n in ("corpus.txt", "world.json", "relatedness.tsv")]
  for sub, suffix in (("xlsum", ".jsonl"), ("mc4", ".json.gz")):
    directory = os.path.join(out_dir, sub)
    if os.path.isdir(directory):
      paths += [os.path.join(directory, n)
                for n in sorted(os.listdir(directory)) if n.endswith(suffix)]
  return [p for p in paths if os.path.exists(p)]


def generate_world(out_dir: str, config: WorldConfig = WorldConfig(),
                   overwrite: bool = False) -> WorldInfo:
  """Writes a world under `out_dir` and returns its description.

    out_dir/xlsum/<release>_{train,val,test}.jsonl   TFDS manual_dir files
    out_dir/mc4/c4-<code>[-validation].tfrecord-00000-of-00001.json.gz
    out_dir/corpus.txt       mC4 train text of every language (SentencePiece)
    out_dir/world.json       config, lexicons, distances, related sources
    out_dir/relatedness.tsv  for lta.languages.related.load_table

  Sources get `xlsum_train` training examples, targets `target_train`; all
  get the same validation and test documents (parallel across languages).

  Args:
    out_dir: directory to write; created if missing.
    config: the world.
    overwrite: replace an existing world's files (others are left alone).

  Raises:
    FileExistsError: `out_dir` already holds world files and not overwrite.
  """
  out_dir = os.fspath(out_dir)
  existing = _owned_paths(out_dir) if os.path.isdir(out_dir) else []
  if existing and not overwrite:
    raise FileExistsError(f"{out_dir} already holds a world ({existing[0]}, "
                          f"...); pass overwrite=True to replace it")
  for path in existing:
    os.remove(path)
  languages = languages_lib.build_languages(
      config.languages, config.concept_keys(), config.seed)
  info = WorldInfo(out_dir, config, languages)
  os.makedirs(info.xlsum_dir, exist_ok=True)
  os.makedirs(info.mc4_dir, exist_ok=True)

  documents = xlsum_documents(config)
  held_out = documents["val"] + documents["test"]
  corpus = {}
  for code, language in languages.items():
    for split, docs in documents.items():
      if split == "train":
        size = (config.xlsum_train if language.spec.role == "source"
                else config.target_train)
        docs = docs[:size]
      _write_text(info.xlsum_path(code, split), "".join(
          _json_line(xlsum_record(d, language, split, i))
          for i, d in enumerate(docs)))
    for split, docs in mc4_documents(config, code, held_out).items():
      records = [mc4_record(d, language, split, i) for i, d in enumerate(docs)]
      _write_gzip(info.mc4_path(code, split),
                  "".join(_json_line(r) for r in records))
      if split == "train":
        corpus[code] = [r["text"] for r in records]
  write_corpus(info.corpus_path, corpus)
  languages_lib.write_relatedness_tsv(info.relatedness_path, languages)
  _write_text(os.path.join(out_dir, "world.json"),
              json.dumps(info.to_json(), ensure_ascii=False, indent=1) + "\n")
  return info


def load_world(path: str) -> WorldInfo:
  """Reads a world from its directory or its world.json."""
  path = os.fspath(path)
  json_path = os.path.join(path, "world.json") if os.path.isdir(path) else path
  try:
    with open(json_path, encoding="utf-8") as f:
      data = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"No synthetic world at {json_path}") from None
  if data.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{json_path}: format_version "
                     f"{data.get('format_version')!r}, expected "
                     f"{FORMAT_VERSION}")
  config = WorldConfig.from_json(data["config"])
  languages = {}
  for spec in config.languages:
    entry = data["languages"][spec.code]
    language = languages_lib.Language(
        spec, dict(entry["roman"]), entry["adposition"], entry["past_suffix"],
        entry["present_suffix"])
    stored = {t: tuple(m) for t, m in entry["surface"].items()}
    if stored != language.token_meanings():
      raise ValueError(f"{json_path}: the stored surface forms of "
                       f"{spec.code!r} differ from this version's "
                       f"transliteration")
    languages[spec.code] = language
  return WorldInfo(os.path.dirname(os.path.abspath(json_path)), config,
                   languages)


WorldLike = Union[WorldInfo, str, os.PathLike]


def as_world(world: WorldLike) -> WorldInfo:
  """A WorldInfo as is, or the world at a path (directory or world.json)."""
  if isinstance(world, WorldInfo):
    return world
  return load_world(os.fspath(world))
