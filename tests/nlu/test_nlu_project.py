"""Consistency of the Rasa project in nlu/ — fast, no trained model needed."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from jinja2 import Environment
from opencc import OpenCC

from benchmarks.nlu_eval import iter_examples, load_test_split, nearest_training, parse_markup
from nlu.components.entity_rules import canonical_order_id

REPO = Path(__file__).resolve().parents[2]
NLU = REPO / "nlu"
LOCALES = REPO / "core" / "locales"
LOCALE_NAMES = ("en", "zh-Hans", "zh-Hant")

CONTRACT_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "ask_capabilities", "bot_challenge",
    "order_status", "stock_query", "promotion_query", "faq", "human_handoff", "complaint",
    "link_account", "points_balance", "redeem_points", "my_courses", "out_of_scope",
    "my_groups",  # community/
    "next_lesson",  # training/
}
FAQ_KEYS = {"business_hours", "delivery_time", "delivery_area", "payment_methods",
            "return_policy", "min_order"}
CUSTOM_ACTIONS = {"action_order_status", "action_stock_query", "action_promotion_query",
                  "action_human_handoff", "action_default_ask_affirmation",
                  "action_my_groups",
                  "action_points_balance", "action_redeem_points",
                  "action_my_courses", "action_next_lesson"}
MIN_TRAINING_EXAMPLES = 25
MIN_TEST_EXAMPLES = 15
MIN_TEST_PER_SCRIPT = 4
ALLOWED_TAGS = {"b", "i", "code"}

_t2s = OpenCC("t2s")


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def domain() -> dict:
    return _yaml(NLU / "domain.yml")


@pytest.fixture(scope="module")
def training() -> dict[str, list[str]]:
    """Intent (faq/<key> for retrieval intents) → raw training examples."""
    out: dict[str, list[str]] = {}
    for path in sorted((NLU / "data" / "nlu").glob("*.yml")):
        for block in _yaml(path).get("nlu") or []:
            if "intent" in block:
                out.setdefault(block["intent"], []).extend(iter_examples(block["examples"]))
    return out


@pytest.fixture(scope="module")
def regexes() -> dict[str, list[re.Pattern]]:
    out: dict[str, list[re.Pattern]] = {}
    for path in sorted((NLU / "data" / "nlu").glob("*.yml")):
        for block in _yaml(path).get("nlu") or []:
            if "regex" in block:
                out.setdefault(block["regex"], []).extend(
                    re.compile(p, re.IGNORECASE) for p in iter_examples(block["examples"]))
    return out


@pytest.fixture(scope="module")
def locale_texts() -> dict[str, dict[str, str]]:
    return {loc: _yaml(LOCALES / loc / "dialogue.yml") for loc in LOCALE_NAMES}


def _norm(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", _t2s.convert(text).lower())


# ------------------------------------------------------------------------- domain
def test_domain_declares_exactly_the_contract_intents(domain):
    assert set(domain["intents"]) == CONTRACT_INTENTS


def test_domain_custom_actions_and_slots(domain):
    assert set(domain["actions"]) == CUSTOM_ACTIONS
    assert set(domain["entities"]) >= {"order_id", "product", "quantity"}
    for slot in ("order_id", "product"):
        mappings = domain["slots"][slot]["mappings"]
        assert {"type": "from_entity", "entity": slot} in mappings


def test_every_response_is_a_custom_template_payload(domain):
    for name, variants in domain["responses"].items():
        for variant in variants:
            assert set(variant) == {"custom"}, f"{name}: only custom payloads, no literal text"
            assert isinstance(variant["custom"].get("template"), str), name
            for button in variant["custom"].get("buttons") or []:
                assert button.get("payload", "").startswith("/"), (name, button)
                assert ("label_key" in button) != ("label" in button), (name, button)


def test_responses_cover_every_faq_key_and_single_turn_intent(domain):
    responses = set(domain["responses"])
    assert {f"utter_faq/{key}" for key in FAQ_KEYS} <= responses
    assert {"utter_link_account", "utter_ask_rephrase", "utter_default"} <= responses


# ----------------------------------------------------------------------- templates
def _template_keys(domain: dict) -> set[str]:
    keys = set()
    for variants in domain["responses"].values():
        for variant in variants:
            keys.add(variant["custom"]["template"])
            keys |= {b["label_key"] for b in variant["custom"].get("buttons") or []
                     if "label_key" in b}
    return keys


@pytest.mark.parametrize("locale", LOCALE_NAMES)
def test_every_template_key_exists_in_each_locale(domain, locale_texts, locale):
    missing = _template_keys(domain) - set(locale_texts[locale])
    assert not missing, f"core/locales/{locale}/dialogue.yml lacks {sorted(missing)}"


def test_locales_define_the_same_keys(locale_texts):
    keys = {loc: set(texts) for loc, texts in locale_texts.items()}
    assert keys["en"] == keys["zh-Hans"] == keys["zh-Hant"]


@pytest.mark.parametrize("locale", LOCALE_NAMES)
def test_templates_are_valid_jinja_and_telegram_html(locale_texts, locale):
    env = Environment(autoescape=True)
    for key, text in locale_texts[locale].items():
        assert isinstance(text, str) and text.strip(), key
        env.from_string(text).render()  # static texts: no variables needed
        for tag in re.findall(r"</?([a-zA-Z]+)[^>]*>", text):
            assert tag in ALLOWED_TAGS, f"{locale}:{key} uses <{tag}>"
        stripped = re.sub(r"</?(?:b|i|code)>", "", text)
        assert "<" not in stripped and ">" not in stripped, f"{locale}:{key} has a bare < or >"
        assert not re.search(r"&(?!amp;|lt;|gt;|quot;)", stripped), f"{locale}:{key} bare &"


def test_zh_hant_texts_are_traditional(locale_texts):
    for key, text in locale_texts["zh-Hant"].items():
        if re.search(r"[\u4e00-\u9fff]", text):
            assert _t2s.convert(text) != text or text == locale_texts["zh-Hans"][key], key


# -------------------------------------------------------------------- training data
def test_every_intent_has_enough_training_examples(training):
    counts = {intent: len(examples) for intent, examples in training.items()}
    expected = (CONTRACT_INTENTS - {"faq"}) | {f"faq/{key}" for key in FAQ_KEYS}
    assert set(counts) == expected
    thin = {i: n for i, n in counts.items() if n < MIN_TRAINING_EXAMPLES}
    assert not thin, f"fewer than {MIN_TRAINING_EXAMPLES} examples: {thin}"


def test_training_mixes_chinese_and_english(training):
    for intent, examples in training.items():
        texts = [parse_markup(e)[0] for e in examples]
        zh = sum(bool(re.search(r"[\u4e00-\u9fff]", t)) for t in texts)
        en = sum(bool(re.fullmatch(r"[\x00-\x7f]+", t)) for t in texts)
        assert zh >= 8 and en >= 8, f"{intent}: {zh} Chinese, {en} English examples"


def test_training_annotations_parse_and_entities_are_declared(training, domain):
    entities = Counter()
    for examples in training.values():
        for raw in examples:
            text, ents = parse_markup(raw)
            assert "[" not in text and "](" not in text, raw
            for start, end, name, _ in ents:
                assert text[start:end].strip() == text[start:end], f"padded span in {raw!r}"
                entities[name] += 1
    assert set(entities) <= set(domain["entities"])
    assert entities["order_id"] >= 20 and entities["product"] >= 60


def test_product_annotations_are_varied(training):
    names = {parse_markup(raw)[1][i][3].lower()
             for examples in training.values() for raw in examples
             for i, ent in enumerate(parse_markup(raw)[1]) if ent[2] == "product"}
    assert len(names) >= 60, f"only {len(names)} distinct product names annotated"


def test_no_duplicate_training_examples(training):
    """Any repeat after normalisation (t2s, case, blanks, punctuation) fails, whether the
    two copies share an intent or not: a repeat only re-weights the data silently."""
    seen: dict[str, tuple[str, str]] = {}
    duplicates = []
    for intent, examples in training.items():
        for raw in examples:
            key = _norm(parse_markup(raw)[0])
            if key in seen:
                duplicates.append((raw, intent, seen[key]))
            else:
                seen[key] = (raw, intent)
    assert not duplicates, f"duplicate training examples (text, intent, first copy): {duplicates}"


# ----------------------------------------------------------------------- regexes
ORDER_SHAPES = ["SO20261115-0123", "so202611150123", "so 20261115 0123", "SO-20261115-0123",
                "so20261115 0123"]


def test_order_id_regex_matches_every_shape_inside_chinese_text(regexes):
    (pattern,) = regexes["order_id"]
    for shape in ORDER_SHAPES:
        match = pattern.search(f"订单{shape}到哪了")
        assert match and match.group(0) == shape, shape
        assert canonical_order_id(shape) == "SO20261115-0123"


def test_sku_regex_matches_skus_but_not_order_ids(regexes):
    (pattern,) = regexes["product"]
    for sku in ("BV-4001", "bv4001", "NF-2103", "sn7710"):
        assert pattern.search(f"{sku}还有货吗").group(0) == sku
    for shape in ORDER_SHAPES:
        assert not pattern.search(shape), shape
    assert not pattern.search("500ml冰红茶")


# -------------------------------------------------------------------- test split
@pytest.fixture(scope="module")
def test_split():
    return load_test_split()


def test_test_split_covers_every_intent_in_every_script(test_split):
    labels = (CONTRACT_INTENTS - {"faq"}) | {f"faq/{key}" for key in FAQ_KEYS}
    per_label = Counter(ex.intent for ex in test_split)
    assert set(per_label) == labels
    assert min(per_label.values()) >= MIN_TEST_EXAMPLES
    per_script = Counter((ex.intent, ex.script) for ex in test_split)
    for label in labels:
        for script in ("zh-Hans", "zh-Hant", "en"):
            assert per_script[(label, script)] >= MIN_TEST_PER_SCRIPT, (label, script)


def test_test_split_scripts_are_what_they_claim(test_split):
    hant = [ex for ex in test_split if ex.script == "zh-Hant"]
    for ex in test_split:
        has_cjk = bool(re.search(r"[\u4e00-\u9fff]", ex.text))
        if ex.script == "en":
            assert not has_cjk, ex.text
        else:
            assert has_cjk, ex.text
        if ex.script == "zh-Hans":
            assert _t2s.convert(ex.text) == ex.text, f"not Simplified: {ex.text}"
    # A few short Traditional phrases use only characters common to both scripts (午安).
    traditional = sum(ex.parse_text != ex.text for ex in hant)
    assert traditional >= 0.85 * len(hant), f"only {traditional}/{len(hant)} look Traditional"


def test_test_split_entities_survive_t2s(test_split):
    for ex in test_split:
        assert len(ex.parse_entities) == len(ex.entities), ex.text


def test_test_split_has_order_numbers_in_several_shapes(test_split):
    shapes = Counter()
    for ex in test_split:
        for start, end, name in ex.entities:
            if name == "order_id":
                value = ex.text[start:end]
                shapes["lower" if value.islower() else "upper"] += 1
                shapes["spaces" if " " in value else "dash" if "-" in value else "plain"] += 1
    assert shapes["lower"] >= 3 and shapes["spaces"] >= 3 and shapes["plain"] >= 3 \
        and shapes["dash"] >= 3, shapes


def test_test_split_never_overlaps_training_data(test_split, training):
    trained = {_norm(parse_markup(raw)[0]) for examples in training.values() for raw in examples}
    overlap = [ex.text for ex in test_split if _norm(ex.text) in trained]
    assert not overlap, f"test utterances also in training data: {overlap}"


def test_test_split_has_no_near_duplicate_of_training_data(test_split):
    """No test utterance within NEAR_DUP_EDITS edits of any training example (after t2s and
    normalising case, blanks and punctuation): a near-copy measures memory, not NLU."""
    from benchmarks.nlu_eval import NEAR_DUP_EDITS, training_texts

    training = [text for _, text in training_texts()]
    near = nearest_training([ex.text for ex in test_split], training)
    found = [(ex.text, n) for ex, n in zip(test_split, near, strict=True) if n is not None]
    assert not found, f"near-duplicates (<= {NEAR_DUP_EDITS} edits) of training data: {found}"


def test_near_duplicate_check_catches_a_near_copy():
    """The check itself: Traditional, punctuation and one changed character are caught."""
    near = nearest_training(["請問，冰紅茶還有貨嗎？", "完全不同的一句话"], ["请问冰红茶还有吗"])
    assert near[0] is not None and near[0][0] <= 2
    assert near[1] is None


def test_test_split_is_not_a_training_input():
    from nlu.train import input_files

    inputs = {p.resolve() for p in input_files()}
    assert (NLU / "eval" / "test_split.yml").resolve() not in inputs
    assert not any("eval" in p.relative_to(NLU).parts[:1] for p in inputs)
    assert not any(p.relative_to(NLU).parts[0] == "tests" for p in inputs)


# ------------------------------------------------------------------- rules/stories
def test_rules_and_stories_use_declared_names(domain):
    actions = set(domain["actions"]) | set(domain["responses"]) | {
        "utter_faq", "action_two_stage_fallback", "action_deactivate_loop", "action_listen"}
    intents = CONTRACT_INTENTS | {"nlu_fallback"}
    files = [NLU / "data" / "rules.yml", NLU / "data" / "stories.yml",
             NLU / "tests" / "test_stories.yml"]
    for path in files:
        data = _yaml(path)
        for block in (data.get("rules") or []) + (data.get("stories") or []):
            for step in (block.get("condition") or []) + block["steps"]:
                if "action" in step:
                    assert step["action"] in actions, (path.name, step)
                if "intent" in step:
                    assert step["intent"].split("/")[0] in intents, (path.name, step)


def test_custom_actions_are_used(domain):
    text = (NLU / "data" / "rules.yml").read_text(encoding="utf-8")
    for action in CUSTOM_ACTIONS - {"action_default_ask_affirmation"}:
        assert f"action: {action}" in text, action
    assert "action: action_two_stage_fallback" in text
    complaint = re.search(r"- intent: complaint\n\s+- action: (\S+)", text)
    assert complaint and complaint.group(1) == "action_human_handoff"


@pytest.mark.parametrize("locale", LOCALE_NAMES)
def test_gateway_renderer_renders_every_dialogue_template(domain, locale):
    from core.i18n import Renderer

    renderer = Renderer()
    for key in sorted(_template_keys(domain)):
        text = renderer.render(key, locale)
        assert text and "{{" not in text, (locale, key)
