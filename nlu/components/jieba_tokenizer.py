"""Jieba tokenizer that never emits blank tokens.

Rasa 3.6's ``JiebaTokenizer`` turns every space of the input into a token of its own
("iced tea" -> "iced", " ", "tea"; "so 20261115 0123" -> five tokens). Blank tokens carry
no information, give empty feature rows and misalign entity spans (RasaHQ/rasa#7910).
This subclass drops them and is otherwise identical (custom dictionaries included).
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True
)
class BlankDroppingJiebaTokenizer(JiebaTokenizer):
    """``JiebaTokenizer`` without whitespace-only tokens."""

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokenize with Jieba, then drop tokens that are only whitespace."""
        tokens = super().tokenize(message, attribute)
        kept = [token for token in tokens if token.text.strip()]
        if kept or not tokens:
            return kept
        # A whitespace-only text: keep one token so downstream featurizers see something.
        return tokens[:1]
