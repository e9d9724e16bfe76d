"""A tiny config with non-square attention, shared by the tests."""

from lta.models.mt5.config import T5Config

TINY = T5Config(vocab_size=64, d_model=32, d_kv=8, num_heads=3, d_ff=48,
                num_encoder_layers=2, num_decoder_layers=3,
                relative_attention_num_buckets=8,
                relative_attention_max_distance=12, dropout_rate=0.0,
                name="tiny-test")
