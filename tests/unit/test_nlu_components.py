"""The custom Rasa NLU components, run on Rasa Message objects without a server."""
from __future__ import annotations

from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.components import ORIGINAL_TEXT, QuantityNormaliser, TextNormaliser


def test_text_normaliser_normalises_messages_and_keeps_the_original():
    message = Message(data={TEXT: "停息掛帳ＸＹＫ！！！"})
    TextNormaliser().process([message])
    assert message.get(TEXT) == "停息挂帐xyk!  "
    assert message.get(ORIGINAL_TEXT) == "停息掛帳ＸＹＫ！！！"


def test_text_normaliser_keeps_training_entity_offsets_valid():
    entity = {"entity": "amount", "start": 4, "end": 6, "value": "兩萬"}
    message = Message(data={TEXT: "招行欠了兩萬", ENTITIES: [entity]})
    TextNormaliser().process_training_data(TrainingData([message]))
    entity = message.get(ENTITIES)[0]
    assert message.get(TEXT)[entity["start"]:entity["end"]] == "两万"


def test_text_normaliser_tolerates_empty_text():
    message = Message(data={TEXT: ""})
    TextNormaliser().process([message])
    assert message.get(TEXT) == ""


def test_quantity_normaliser_converts_diet_entities_and_adds_missed_ones():
    text = "欠了2w多，逾期三个月"
    message = Message(data={TEXT: text, ENTITIES: [
        {"entity": "amount", "start": 2, "end": 5, "value": "2w多", "extractor": "DIETClassifier"},
        {"entity": "bank", "start": 0, "end": 0, "value": "招商银行"},
    ]})
    QuantityNormaliser().process([message])
    entities = {e["entity"]: e for e in message.get(ENTITIES)}
    assert entities["amount"]["value"] == "20000"
    assert entities["overdue_duration"]["value"] == "90"
    assert entities["overdue_duration"]["extractor"] == "QuantityNormaliser"
    assert entities["bank"]["value"] == "招商银行"
    assert len(message.get(ENTITIES)) == 3


def test_quantity_normaliser_leaves_unreadable_values_alone():
    message = Message(data={TEXT: "欠了好多", ENTITIES: [{"entity": "amount", "start": 2, "end": 4, "value": "好多"}]})
    QuantityNormaliser().process([message])
    assert message.get(ENTITIES)[0]["value"] == "好多"
