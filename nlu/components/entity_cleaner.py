"""Rasa graph component applying :mod:`entity_rules` to every parsed message."""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from .entity_rules import clean_entities


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class EntityCleaner(GraphComponent):
    """Resolves overlaps between regex and DIET entities; normalises order numbers."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EntityCleaner:
        return cls()

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @staticmethod
    def supported_languages() -> list[str] | None:
        return None

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            entities = message.get(ENTITIES)
            if entities:
                message.set(
                    ENTITIES, clean_entities(entities, message.get(TEXT)), add_to_output=True
                )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
