"""What a seqio task name says: '<family>.<language>', e.g. 'xlsum.pt'.

The family is the part before the first '.', the language the part after
the last one: 'tydiqa_goldp_dev.fi' is ('tydiqa_goldp_dev', 'fi'), the
mixture 'xlsum_target_lm.en.pt' is ('xlsum_target_lm', 'pt'). A name
without '.' (the mixture 'xlsum_seen') is a family with no language. The
tasks of lta_tasks (tasks/) and lta.data.denoising are named this way.
"""

from __future__ import annotations

from lta import errors


def family_and_language(name: str) -> tuple[str, str]:
  """'xlsum.pt' -> ('xlsum', 'pt'); a name without '.' -> (name, '')."""
  family, dot, rest = name.partition(".")
  return family, rest.rpartition(".")[2] if dot else ""


def family(name: str) -> str:
  """'xlsum.pt' -> 'xlsum'."""
  return family_and_language(name)[0]


def language(name: str) -> str:
  """'xlsum.pt' -> 'pt'; a name without a language is a ConfigError."""
  lang = family_and_language(name)[1]
  if not lang:
    raise errors.ConfigError(f"Task name {name!r} has no '.<lang>' suffix.")
  return lang
