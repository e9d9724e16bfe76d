"""Language-code tokens of mBART-50 and NLLB-200, added by seqio preprocessors.

Both models read `<code> text </s>` and write `<code> text </s>`: the
source language's code first in the encoder input, the target language's
first in the labels (forced as the first generated token when decoding,
DecodingConfig.forced_first_id). mT5 and the decoder-only families use no
codes. The tasks of lta_tasks carry `add_language_codes` in their
preprocessors; it does nothing unless a scheme is active, and the jobs make
the scheme of their model active (`use_scheme(scheme_for(config))`) around
the code that builds datasets, as `vocab.use_vocabulary` does for the
vocabulary. The code is looked up as a piece of the task's SentencePiece
vocabulary, which must hold every code at the model's id (a control
symbol: text never encodes to it and decoding drops it).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, Optional

import seqio
import tensorflow as tf

from lta import errors

# transformers' MBart50Tokenizer FAIRSEQ_LANGUAGE_CODES, in its order.
MBART50_CODES = (
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX",
    "gu_IN", "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV",
    "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN",
    "zh_CN", "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID",
    "ka_GE", "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF",
    "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA",
    "ur_PK", "xh_ZA", "gl_ES", "sl_SI")

# Task language (lta_tasks' codes: XL-Sum, TyDi QA, XQuAD) -> NLLB-200 code.
# Individual languages as XL-Sum's text is written: Modern Standard Arabic,
# Simplified / Traditional Chinese, Western Persian, Swahili (swh), etc.
NLLB200_CODES = {
    "am": "amh_Ethi", "ar": "arb_Arab", "az": "azj_Latn", "bn": "ben_Beng",
    "cy": "cym_Latn", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn",
    "es": "spa_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fr": "fra_Latn",
    "gd": "gla_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "hi": "hin_Deva",
    "id": "ind_Latn", "ig": "ibo_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "ky": "kir_Cyrl", "mr": "mar_Deva", "my": "mya_Mymr", "ne": "npi_Deva",
    "om": "gaz_Latn", "pa": "pan_Guru", "ps": "pbt_Arab", "pt": "por_Latn",
    "rn": "run_Latn", "ru": "rus_Cyrl", "si": "sin_Sinh", "so": "som_Latn",
    "sr_cyrl": "srp_Cyrl", "sw": "swh_Latn", "ta": "tam_Taml",
    "te": "tel_Telu", "th": "tha_Thai", "ti": "tir_Ethi", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn",
    "yo": "yor_Latn", "zh": "zho_Hans", "zh_tw": "zho_Hant"}

SCHEMES: dict[str, Mapping[str, str]] = {
    "mbart50": {code.split("_")[0]: code for code in MBART50_CODES},
    "nllb200": NLLB200_CODES,
}
# BartConfig.model_type -> its scheme.
MODEL_TYPE_SCHEMES = {"mbart": "mbart50", "m2m_100": "nllb200"}

_ACTIVE: list[Optional[str]] = []


def scheme_for(model_config) -> Optional[str]:
  """The scheme of a model config: mBART -> 'mbart50', NLLB -> 'nllb200',
  any other family (mT5, decoder-only) -> None."""
  return MODEL_TYPE_SCHEMES.get(getattr(model_config, "model_type", None))


@contextlib.contextmanager
def use_scheme(scheme: Optional[str]) -> Iterator[None]:
  """Within the block, datasets built carry `scheme`'s codes (None: none)."""
  if scheme is not None and scheme not in SCHEMES:
    raise errors.ConfigError(
        f"unknown language-code scheme {scheme!r}"
        f"{errors.did_you_mean(str(scheme), SCHEMES)}")
  _ACTIVE.append(scheme)
  try:
    yield
  finally:
    _ACTIVE.pop()


def active_scheme() -> Optional[str]:
  return _ACTIVE[-1] if _ACTIVE else None


def tokens_added() -> int:
  """Tokens `add_language_codes` puts before each feature now (0 or 1), for
  preprocessors that fill a sequence to its length before it runs."""
  return 0 if active_scheme() is None else 1


def code(scheme: str, lang: str) -> str:
  codes = SCHEMES[scheme]
  if lang not in codes:
    raise errors.DataError(
        f"{scheme} has no language code for {lang!r}"
        f"{errors.did_you_mean(lang, codes)}; the model was not trained on"
        " it")
  return codes[lang]


def code_id(vocabulary: seqio.Vocabulary, scheme: str, lang: str) -> int:
  """The id of `lang`'s code piece in `vocabulary` (DataError if absent)."""
  piece = code(scheme, lang)
  tokenizer = vocabulary.tokenizer
  token = tokenizer.piece_to_id(piece)
  if tokenizer.id_to_piece(token) != piece:
    name = getattr(vocabulary, "sentencepiece_model_file", str(vocabulary))
    raise errors.DataError(
        f"vocabulary {name} has no piece {piece!r} ({scheme}'s code of"
        f" {lang!r}); use the model's own vocabulary, with its language"
        " codes")
  return token


def forced_first_id(vocabulary: seqio.Vocabulary, lang: str) -> Optional[int]:
  """The target-language code to force when decoding, or None (no scheme)."""
  scheme = active_scheme()
  return None if scheme is None else code_id(vocabulary, scheme, lang)


def add_language_codes(dataset: tf.data.Dataset,
                       output_features: Mapping[str, seqio.Feature],
                       *, lang: str) -> tf.data.Dataset:
  """Puts the active scheme's code of `lang` before the tokens of `inputs`
  (source language) and `targets` (target language); a no-op without a
  scheme. After tokenize, before append_eos_after_trim."""
  scheme = active_scheme()
  if scheme is None:
    return dataset
  ids = {key: code_id(output_features[key].vocabulary, scheme, lang)
         for key in ("inputs", "targets") if key in output_features}

  def prepend(x):
    x = dict(x)
    for key, token in ids.items():
      if key in x:
        x[key] = tf.concat([tf.constant([token], x[key].dtype), x[key]], 0)
    return x

  return dataset.map(prepend, num_parallel_calls=tf.data.AUTOTUNE)
