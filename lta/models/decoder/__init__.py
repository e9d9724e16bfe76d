"""Decoder-only LMs (Llama, Qwen2/3, Gemma 2/3): DecoderConfig (config) and the network (network)."""
