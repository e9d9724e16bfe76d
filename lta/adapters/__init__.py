"""Adapters: the parameter-efficient layers and their files (lowest layer).

  tree         flatten_tree / unflatten_tree: the one '/'-joined flat view
  config       AdapterConfig: kind (LoRA, KronA), rank, targets, dtype
  trainable    which parameters train: the regex over flat names
  deltas       the leaf table, ΔW of a module, fold into / out of the base
  manifest     Adapter and AdapterManifest: what an adapter is and was made on
  adapter_io   save / load adapter directories (orbax + manifest)
"""
