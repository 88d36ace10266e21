"""Post-processing of extracted entities.

* Regex matches (order numbers, SKUs) are exact, so any entity from another extractor
  that overlaps one of them is dropped (DIET sometimes tags half of ``SO20261115-0123``
  or labels an order number as a product).
* Overlapping duplicates are removed (first one wins, i.e. the regex one).
* ``order_id`` values are normalised to the canonical ``SO20261115-0123`` shape, whatever
  the user typed (``so202611150123``, ``so 20261115 0123``); ``start``/``end`` still point
  at the text as typed.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

REGEX_EXTRACTOR = "RegexEntityExtractor"
_ORDER_ID = re.compile(r"(?i)^\s*so[\s_-]*(\d{8})[\s_-]*(\d{4})\s*$")


def canonical_order_id(value: Any) -> Any:
    """``so 20261115 0123`` -> ``SO20261115-0123``; other values unchanged."""
    if not isinstance(value, str):
        return value
    match = _ORDER_ID.match(value)
    return f"SO{match.group(1)}-{match.group(2)}" if match else value


def clean_entities(entities: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    """Drop entities overlapping a regex match or an earlier entity; canonicalise ids."""
    regex_spans = [
        (e["start"], e["end"]) for e in entities if e.get("extractor") == REGEX_EXTRACTOR
    ]
    kept: List[Dict[Text, Any]] = []
    for entity in sorted(
        entities, key=lambda e: (e.get("extractor") != REGEX_EXTRACTOR, e.get("start", 0))
    ):
        start, end = entity.get("start"), entity.get("end")
        if start is None or end is None:
            kept.append(entity)
            continue
        if entity.get("extractor") != REGEX_EXTRACTOR and any(
            start < r_end and r_start < end for r_start, r_end in regex_spans
        ):
            continue
        if any(
            start < k["end"] and k["start"] < end
            for k in kept
            if k.get("start") is not None and k.get("entity") == entity.get("entity")
        ):
            continue
        if entity.get("entity") == "order_id":
            entity = {**entity, "value": canonical_order_id(entity.get("value"))}
        kept.append(entity)
    kept.sort(key=lambda e: e.get("start") if e.get("start") is not None else -1)
    return kept


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class EntityCleaner(GraphComponent):
    """Resolves overlaps between regex and DIET entities; normalises order numbers."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "EntityCleaner":
        return cls()

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return None

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            entities = message.get(ENTITIES)
            if entities:
                message.set(ENTITIES, clean_entities(entities), add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
