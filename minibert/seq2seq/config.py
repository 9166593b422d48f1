"""EncoderDecoderConfig: an encoder's BertConfig, a decoder's BertConfig, and the ids that start and end a target.

Lecture 2.2 (outputs: a general sequence); notebook notebooks/06_general_sequence.ipynb. The layout of the
config.json that transformers' `EncoderDecoderModel` writes: the two sub-configs under "encoder" and "decoder"
(the decoder's with `is_decoder` and `add_cross_attention`), and `decoder_start_token_id`, `pad_token_id` at the
top, so a folder saved by either library is read by the other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import BertConfig


@dataclass
class EncoderDecoderConfig:
    encoder: BertConfig
    decoder: BertConfig
    decoder_start_token_id: int = 101  # [CLS] of BERT's uncased vocabulary: the first input of the decoder
    pad_token_id: int = 0              # [PAD]: fills a target after its [SEP]
    eos_token_id: int = 102            # [SEP]: the decoder writes it to say the target is complete

    @classmethod
    def from_json(cls, path: str | Path) -> EncoderDecoderConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config.json at {path}: an encoder-decoder folder holds config.json and "
                                    "model.safetensors (as transformers' EncoderDecoderModel.save_pretrained writes).")
        values = json.loads(path.read_text(encoding="utf-8"))
        if values.get("model_type") != "encoder-decoder":
            raise ValueError(f"{path} describes a {values.get('model_type', 'unknown')!r} model, not an "
                             "encoder-decoder (model_type 'encoder-decoder'). For a BERT checkpoint, build the "
                             "encoder-decoder from it with BertEncoderDecoder.from_encoder_pretrained(folder).")
        decoder = values["decoder"]

        def first_set(*candidates, default: int) -> int:  # transformers writes null for an id nobody set
            return next((c for c in candidates if c is not None), default)

        return cls(BertConfig.from_dict(values["encoder"]), BertConfig.from_dict(decoder),
                   decoder_start_token_id=first_set(values.get("decoder_start_token_id"),
                                                    decoder.get("decoder_start_token_id"),
                                                    default=cls.decoder_start_token_id),
                   pad_token_id=first_set(values.get("pad_token_id"), decoder.get("pad_token_id"),
                                          default=cls.pad_token_id),
                   eos_token_id=first_set(values.get("eos_token_id"), decoder.get("eos_token_id"),
                                          default=cls.eos_token_id))

    def to_dict(self) -> dict:
        encoder = {**self.encoder.to_dict(), "is_decoder": False, "add_cross_attention": False}
        decoder = {**self.decoder.to_dict(), "is_decoder": True, "add_cross_attention": True,
                   "eos_token_id": self.eos_token_id}
        return {"model_type": "encoder-decoder", "is_encoder_decoder": True, "encoder": encoder, "decoder": decoder,
                "decoder_start_token_id": self.decoder_start_token_id, "pad_token_id": self.pad_token_id}

    def to_json(self, path: str | Path) -> None:
        values = {"architectures": ["EncoderDecoderModel"], **self.to_dict()}
        Path(path).write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
