"""A small synthetic multilingual world for the CPU demo and the miniature.

`languages` (lexicons, scripts, distances), `grammar` (content, rendering,
parsing), `world` (config, presets, the files in XL-Sum and mC4 formats),
`lexicon_lid` (language identification) and `scoring` (task scores). See
docs/synthetic_world.md.
"""
