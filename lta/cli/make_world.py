r"""Writes a synthetic multilingual world (see docs/synthetic_world.md).

  python -m lta.cli.make_world --out_dir /tmp/world --preset mini
  python -m lta.cli.make_world --out_dir /tmp/w --preset tiny \
      --languages en,pt,ru,uk --seed 3
"""

import argparse
import dataclasses
from typing import Optional, Sequence

from lta.synthetic import world


def main(argv: Optional[Sequence[str]] = None) -> world.WorldInfo:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--preset", default="mini", choices=sorted(world.PRESETS))
  parser.add_argument("--seed", type=int, help="override the preset's seed")
  parser.add_argument("--languages",
                      help="comma-separated subset of the preset's languages")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a world already in --out_dir")
  args = parser.parse_args(argv)
  config = world.preset(args.preset)
  if args.seed is not None:
    config = dataclasses.replace(config, seed=args.seed)
  if args.languages:
    config = config.with_languages(args.languages.split(","))
  info = world.generate_world(args.out_dir, config, overwrite=args.overwrite)
  print(f"Wrote {args.preset} world to {info.out_dir}: sources "
        f"{','.join(info.sources)}, targets {','.join(info.targets)}")
  return info


if __name__ == "__main__":
  main()
