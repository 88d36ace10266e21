"""Writing a course in Telegram: a guided flow for trainers, with a preview.

A trainer (a staff member whose role is in `training.author_roles`) writes in a private chat:

- `/newcourse [code]` opens a draft and asks the course title; `/editcourse <code>` opens a
  draft holding an existing course (new lessons and quizzes are added to it);
- after the title, everything they send goes into the current lesson: text (its formatting
  kept as Telegram HTML, links as links), photos and documents (kept by Telegram file_id);
- the buttons (payloads `trna:<verb>:<draft id>`, parsed as hostile and checked against the
  presser): ➕ New lesson (asks its title), 📝 Add quiz (asks the pass mark, then one question
  per message, see `parse_question`), 👁 Preview, 💾 Save, ✖ Cancel; `/cancel` cancels too.

The draft (`training_drafts`) holds the course as `CourseSpec` data and the step of the flow,
so a restart loses nothing; one open draft per trainer (a partial unique index). Preview
queues the course to the trainer exactly as a dealer receives it (the lesson and quiz
templates `training.content.queue_item` uses, through the outbox and the delivery worker,
media by file_id), with a summary and every problem `training.spec.problems` finds. Save
turns the draft open → saved with a conditional UPDATE (a double tap saves once) and calls
`training.courses.save_course(..., source="telegram")` in the same transaction.
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import insert_for
from core.errors import PermissionDenied
from core.i18n import renderer
from core.models import PRIORITY_INTERACTIVE, utcnow
from core.screens import Screen, button
from core.services.outbox import enqueue
from core.services.staff import require_linked_role
from core.settings import TrainingSection
from training import courses
from training.content import ItemMessage, item_messages
from training.models import AuthoringDraft, Course
from training.spec import (
    KEY_RE,
    MAX_BODY,
    MAX_CAPTION,
    MAX_TITLE,
    AttachmentSpec,
    CourseSpec,
    ItemSpec,
    QuestionSpec,
    problems,
)

PREFIX = "trna:"
VERBS = ("lesson", "quiz", "preview", "save", "cancel", "pv")
MAX_ATTACHMENTS = 10  # per lesson
MAX_ITEMS = 50  # per course
PREVIEW_GAP = dt.timedelta(milliseconds=200)  # keeps the preview's messages in order

# Steps of the flow: what the next message from the trainer is.
TITLE, LESSON_TITLE, CONTENT, PASS_MARK, QUESTION, IDLE = (
    "title", "lesson_title", "content", "pass_mark", "question", "idle")


@dataclass(frozen=True)
class Author:
    """Who is writing: their Telegram user, their private chat and the locale they read."""

    user_id: int
    chat_id: int
    locale: str


@dataclass(frozen=True)
class Incoming:
    """A message the trainer sent, read from Telegram by the adapter.

    `kind`: text | photo | document | other. `text` is the plain text (or caption), `html`
    the same as Telegram HTML (`text_html_urled` / `caption_html_urled`), `file_id` the
    photo's largest size or the document, `file_name` the document's name."""

    kind: str
    text: str = ""
    html: str = ""
    file_id: str = ""
    file_name: str = ""


# --- Parsing what the trainer typed or pressed --------------------------------------------

def payload(verb: str, draft_id: int) -> str:
    """`trna:<verb>:<draft id>` (the id an int: nothing the user typed goes in)."""
    return f"{PREFIX}{verb}:{int(draft_id)}"


def parse_payload(data: str | None) -> tuple[str, int] | None:
    """(verb, draft id) of a `trna:` payload, or None if it is not one we could have sent."""
    if not data or not data.startswith(PREFIX) or len(data) > 64:
        return None
    parts = data[len(PREFIX):].split(":")
    if len(parts) != 2 or parts[0] not in VERBS or not parts[1].isdigit():
        return None
    draft_id = int(parts[1])
    return (parts[0], draft_id) if 0 < draft_id < 2**53 else None


_MARK = ("*", "＊")
_EXPLAIN = ("?", "？")


def parse_question(text: str) -> QuestionSpec:
    """A question typed as: the question on the first line, then one option per line, `*`
    before each correct one (two or more → multiple choice), optionally a last line starting
    with `?` that explains the answer. Full-width ＊ and ？ work too."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    explanation = ""
    if len(lines) > 1 and lines[-1].startswith(_EXPLAIN):
        explanation = lines.pop()[1:].strip()
    question = lines[0] if lines else ""
    options: list[str] = []
    correct: list[int] = []
    for line in lines[1:]:
        if line.startswith(_MARK):
            correct.append(len(options))
            line = line.lstrip("*＊").strip()
        options.append(line)
    return QuestionSpec(text=question, options=options, correct=correct,
                        multi=len(correct) > 1, explanation=explanation)


def question_problems(q: QuestionSpec) -> list[str]:
    """What is wrong with one question (the course rules of `training.spec`, applied to it)."""
    probe = CourseSpec(code="q", title="q", items=[ItemSpec(key="q", kind="quiz", title="q",
                                                            questions=[q])])
    where = "item 1 (q) question 1: "
    return [p[len(where):] for p in problems(probe) if p.startswith(where)]


_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)([^>]*)>")
_PLAIN_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
                         "blockquote", "tg-spoiler"})
_HREF = re.compile(r'href="([^"]*)"')
_SAFE_URL = re.compile(r"^(https?://\S+|tg://user\?id=\d+)$")
_LANGUAGE = re.compile(r'class="(language-[\w+-]{1,30})"')


def telegram_html(text: str) -> str:
    """Telegram HTML from a message (`text_html_urled`) restricted to the tags Telegram
    accepts from a bot; links only to http(s) (and user mentions). Other tags (custom emoji)
    are dropped and their text kept."""
    out: list[str] = []
    kept: list[str | None] = []  # the open tags, None where one was dropped
    pos = 0
    for m in _TAG.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            opened = kept.pop() if kept else None
            if opened is not None:
                out.append(f"</{opened}>")
            continue
        tag = _open_tag(name, attrs)
        kept.append(name if tag else None)
        if tag:
            out.append(tag)
    out.append(text[pos:])
    out.extend(f"</{name}>" for name in reversed(kept) if name)
    return "".join(out)


def _open_tag(name: str, attrs: str) -> str | None:
    if name in _PLAIN_TAGS:
        return f"<{name}>"
    if name == "span":
        return "<span class=\"tg-spoiler\">" if 'class="tg-spoiler"' in attrs else None
    if name in ("code", "pre"):
        language = _LANGUAGE.search(attrs) if name == "code" else None
        return f'<code class="{language.group(1)}">' if language else f"<{name}>"
    if name == "a":
        href = _HREF.search(attrs)
        url = html.unescape(href.group(1)) if href else ""
        return f'<a href="{html.escape(url)}">' if _SAFE_URL.match(url) else None
    return None


# --- The draft as data ----------------------------------------------------------------------

def course_spec(data: dict[str, Any]) -> CourseSpec:
    """The `CourseSpec` a draft's `spec` JSON holds."""
    items = [ItemSpec(
        key=i["key"], kind=i["kind"], title=i.get("title", ""), body=i.get("body", ""),
        attachments=[AttachmentSpec(**a) for a in i.get("attachments", [])],
        questions=[QuestionSpec(**q) for q in i.get("questions", [])],
        pass_mark=i.get("pass_mark"), draw=i.get("draw"), max_attempts=i.get("max_attempts"))
        for i in data.get("items", [])]
    return CourseSpec(code=data.get("code", ""), title=data.get("title", ""),
                      description=data.get("description", ""),
                      locale=data.get("locale", "zh-Hans"), items=items)


def _spec_data(spec: CourseSpec, edit: bool, rev: int = 0) -> dict[str, Any]:
    data = asdict(spec)
    data["flow"] = {"edit": edit, "rev": rev}
    return data


def _changed(draft: AuthoringDraft, data: dict[str, Any], step: str | None = None) -> None:
    data["flow"]["rev"] = int(data["flow"].get("rev", 0)) + 1
    draft.spec = data  # a new object: the JSON column sees the change
    if step is not None:
        draft.step = step
    draft.updated_at = utcnow()


def _new_key(data: dict[str, Any], kind: str) -> str:
    used = {i["key"] for i in data["items"]}
    n = sum(1 for i in data["items"] if i["kind"] == kind) + 1
    while f"{kind}-{n}" in used:
        n += 1
    return f"{kind}-{n}"


def controls(draft_id: int) -> list[dict[str, Any]]:
    """The flow's buttons: new lesson, add quiz, preview, save, cancel."""
    return [button("training_author_btn_lesson", payload("lesson", draft_id)),
            button("training_author_btn_quiz", payload("quiz", draft_id)),
            button("training_author_btn_preview", payload("preview", draft_id)),
            button("training_author_btn_save", payload("save", draft_id)),
            button("training_author_btn_cancel", payload("cancel", draft_id))]


def _cancel_only(draft_id: int) -> list[dict[str, Any]]:
    return [button("training_author_btn_cancel", payload("cancel", draft_id))]


def _screen(template: str, draft: AuthoringDraft, *, only_cancel: bool = False,
            **variables: Any) -> Screen:
    buttons = _cancel_only(draft.id) if only_cancel else controls(draft.id)
    return Screen(template, variables, buttons)


# --- Who may write --------------------------------------------------------------------------

async def author_role(s: AsyncSession, user_id: int, cfg: TrainingSection) -> str | None:
    """The sender's staff role if it may write courses (`training.author_roles`), else None
    (and an audit row of the refusal is added to `s`)."""
    try:
        return await require_linked_role(s, user_id, cfg.author_roles, action="training.author")
    except PermissionDenied:
        return None


def _refused() -> Screen:
    return Screen("training_author_only")


async def open_draft(s: AsyncSession, user_id: int, *, lock: bool = False
                     ) -> AuthoringDraft | None:
    """The trainer's open draft, if any (`lock`: row-locked until the transaction ends)."""
    query = select(AuthoringDraft).where(AuthoringDraft.telegram_user_id == user_id,
                                         AuthoringDraft.status == "open")
    return await s.scalar(query.with_for_update() if lock else query)


# --- Starting ------------------------------------------------------------------------------

async def new_course(s: AsyncSession, who: Author, code: str | None, *,
                     cfg: TrainingSection) -> Screen:
    """/newcourse [code]: open a draft (one per trainer) and ask the course title."""
    if await author_role(s, who.user_id, cfg) is None:
        return _refused()
    code = (code or "").strip()
    if code:
        if not KEY_RE.match(code):
            return Screen("training_author_code_bad", {"code": code[:80]})
        if await s.scalar(select(Course.id).where(Course.code == code)) is not None:
            return Screen("training_author_code_taken", {"code": code})
    spec = CourseSpec(code=code, title="", locale=who.locale)
    draft = await _create(s, who, _spec_data(spec, edit=False), TITLE)
    if isinstance(draft, Screen):
        return draft
    if not code:  # a code of its own: the draft's number, made unique
        code = f"course-{draft.id}"
        while await s.scalar(select(Course.id).where(Course.code == code)) is not None:
            code += "x"
        data = copy.deepcopy(draft.spec)
        data["code"] = code
        _changed(draft, data)
    return _screen("training_author_ask_title", draft, only_cancel=True, code=code)


async def edit_course(s: AsyncSession, who: Author, code: str, *,
                      cfg: TrainingSection) -> Screen:
    """/editcourse <code>: open a draft holding that course; new lessons and quizzes are
    added to it and Save replaces the course (a new version, progress kept)."""
    if await author_role(s, who.user_id, cfg) is None:
        return _refused()
    course = await s.scalar(select(Course).where(Course.code == code.strip()))
    if course is None:
        return Screen("training_author_no_course", {"code": code.strip()[:80]})
    items = []
    for item in await courses.items(s, course.id):
        questions = [QuestionSpec(q.text, list(q.options), list(q.correct), q.multi,
                                  q.explanation) for q in await courses.questions(s, item.id)]
        items.append(ItemSpec(key=item.key, kind=item.kind, title=item.title, body=item.body,
                              attachments=[AttachmentSpec(**a) for a in item.attachments or []],
                              questions=questions, pass_mark=item.pass_mark, draw=item.draw,
                              max_attempts=item.max_attempts))
    spec = CourseSpec(code=course.code, title=course.title, description=course.description,
                      locale=course.locale, items=items)
    draft = await _create(s, who, _spec_data(spec, edit=True), IDLE)
    if isinstance(draft, Screen):
        return draft
    return _screen("training_author_editing", draft, title=course.title, code=course.code,
                   version=course.version, items=len(items))


async def _create(s: AsyncSession, who: Author, data: dict[str, Any],
                  step: str) -> AuthoringDraft | Screen:
    now = utcnow()
    draft_id = await s.scalar(
        insert_for(s, AuthoringDraft)
        .values(telegram_user_id=who.user_id, chat_id=who.chat_id, status="open", step=step,
                spec=data, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["telegram_user_id"],
                                index_where=AuthoringDraft.status == "open")
        .returning(AuthoringDraft.id))
    if draft_id is None:  # the one open draft exists already
        existing = await open_draft(s, who.user_id)
        assert existing is not None
        return _screen("training_author_has_draft", existing,
                       title=existing.spec.get("title") or existing.spec.get("code", ""))
    draft = await s.get(AuthoringDraft, draft_id)
    assert draft is not None
    return draft


# --- Messages while a draft is open ---------------------------------------------------------

async def receive(s: AsyncSession, who: Author, message: Incoming, *,
                  cfg: TrainingSection) -> Screen | None:
    """A message from a trainer: into their open draft at its step. None when they have no
    open draft (the message is not the flow's: the assistant answers it as before)."""
    draft = await open_draft(s, who.user_id, lock=True)
    if draft is None:
        return None
    if await author_role(s, who.user_id, cfg) is None:
        return _refused()
    data = copy.deepcopy(draft.spec)
    if message.kind == "other":
        return _screen("training_author_unsupported", draft)
    if draft.step in (TITLE, LESSON_TITLE, PASS_MARK, QUESTION) and message.kind != "text":
        return _screen("training_author_text_expected", draft, only_cancel=draft.step != QUESTION)
    text = message.text.strip()
    if draft.step == TITLE:
        return _set_title(draft, data, text)
    if draft.step == LESSON_TITLE:
        return _add_lesson(draft, data, text)
    if draft.step == PASS_MARK:
        return _set_pass_mark(draft, data, text)
    if draft.step == QUESTION:
        return _add_question(draft, data, text)
    if draft.step == CONTENT:
        return _add_content(draft, data, message)
    return _screen("training_author_idle", draft)


def _title_problem(text: str) -> bool:
    return not text or len(text) > MAX_TITLE or "\n" in text


def _set_title(draft: AuthoringDraft, data: dict[str, Any], text: str) -> Screen:
    if _title_problem(text):
        return _screen("training_author_title_bad", draft, only_cancel=True, limit=MAX_TITLE)
    data["title"] = text
    # The first lesson is named after the course; ➕ New lesson asks the next ones' titles.
    data["items"].append(asdict(ItemSpec(key=_new_key(data, "lesson"), kind="lesson",
                                         title=text)))
    _changed(draft, data, CONTENT)
    return _screen("training_author_title_set", draft, title=text, code=data["code"])


def _add_lesson(draft: AuthoringDraft, data: dict[str, Any], text: str) -> Screen:
    if _title_problem(text):
        return _screen("training_author_title_bad", draft, only_cancel=True, limit=MAX_TITLE)
    data["items"].append(asdict(ItemSpec(key=_new_key(data, "lesson"), kind="lesson",
                                         title=text)))
    _changed(draft, data, CONTENT)
    return _screen("training_author_lesson_started", draft, title=text,
                   position=len(data["items"]))


def _set_pass_mark(draft: AuthoringDraft, data: dict[str, Any], text: str) -> Screen:
    digits = text.rstrip("%％").strip()
    if not digits.isdigit() or not 0 <= int(digits) <= 100:
        return _screen("training_author_pass_mark_bad", draft, only_cancel=True)
    quiz = data["items"][-1]
    quiz["pass_mark"] = int(digits)
    _changed(draft, data, QUESTION)
    return _screen("training_author_ask_questions", draft, pass_mark=int(digits),
                   position=len(data["items"]))


def _add_question(draft: AuthoringDraft, data: dict[str, Any], text: str) -> Screen:
    question = parse_question(text)
    found = question_problems(question)
    if found:
        return _screen("training_author_question_bad", draft,
                       problems="\n".join(f"• {p}" for p in found))
    quiz = data["items"][-1]
    quiz["questions"].append(asdict(question))
    _changed(draft, data)
    return _screen("training_author_question_added", draft, number=len(quiz["questions"]),
                   text=question.text, multi=question.multi, explanation=question.explanation,
                   options=[(o, n in question.correct) for n, o in enumerate(question.options)])


def _add_content(draft: AuthoringDraft, data: dict[str, Any], message: Incoming) -> Screen:
    lesson = data["items"][-1]
    position = len(data["items"])
    added = ""
    if message.kind == "text":
        part = telegram_html(message.html or html.escape(message.text)).strip()
        body = f"{lesson['body']}\n\n{part}" if lesson["body"] else part
        if len(body) > MAX_BODY:
            return _screen("training_author_too_long", draft, length=len(body), limit=MAX_BODY,
                           position=position)
        lesson["body"] = body
        added = "text"
    else:
        if len(lesson["attachments"]) >= MAX_ATTACHMENTS:
            return _screen("training_author_too_many_files", draft, limit=MAX_ATTACHMENTS,
                           position=position)
        if not message.file_id:
            return _screen("training_author_unsupported", draft)
        caption = message.text.strip()
        if len(caption) > MAX_CAPTION:
            return _screen("training_author_caption_long", draft, limit=MAX_CAPTION)
        lesson["attachments"].append(AttachmentSpec(
            kind=message.kind, ref=message.file_id,
            name=message.file_name[:200] if message.kind == "document" else "",
            caption=caption).as_dict())
        added = message.kind
    _changed(draft, data)
    return _screen("training_author_added", draft, added=added, position=position,
                   title=lesson["title"], chars=len(lesson["body"]),
                   files=len(lesson["attachments"]), name=message.file_name)


async def cancel_open(s: AsyncSession, who: Author) -> Screen | None:
    """/cancel: close the trainer's open draft (nothing is saved). None when they have none
    (then /cancel is someone else's: the hand-off's)."""
    draft = await open_draft(s, who.user_id, lock=True)
    if draft is None:
        return None
    return await _cancel(s, draft)


async def _cancel(s: AsyncSession, draft: AuthoringDraft) -> Screen:
    done = await s.execute(update(AuthoringDraft)
                           .where(AuthoringDraft.id == draft.id, AuthoringDraft.status == "open")
                           .values(status="cancelled", updated_at=utcnow()))
    if not done.rowcount:
        return Screen("training_author_closed")
    return Screen("training_author_cancelled", {"title": draft.spec.get("title") or ""})


# --- Buttons ------------------------------------------------------------------------------

async def press(s: AsyncSession, who: Author, data: str | None, *,
                cfg: TrainingSection) -> Screen:
    """A `trna:` button: parsed, and only for the presser's own open draft."""
    parsed = parse_payload(data)
    if parsed is None:
        return Screen("button_expired")
    verb, draft_id = parsed
    if verb == "pv":  # a dealer's button shown in a preview: it does nothing here
        return Screen("training_author_preview_button")
    draft = await s.scalar(select(AuthoringDraft).where(AuthoringDraft.id == draft_id)
                           .with_for_update())
    if draft is None or draft.telegram_user_id != who.user_id:
        return Screen("training_author_not_yours")
    if await author_role(s, who.user_id, cfg) is None:
        return _refused()
    if draft.status == "saved" and verb == "save":
        return Screen("training_author_already_saved", {"code": draft.spec.get("code", "")})
    if draft.status != "open":
        return Screen("training_author_closed")
    if verb == "cancel":
        return await _cancel(s, draft)
    if verb == "save":
        return await save(s, who, draft, cfg=cfg)
    if verb == "preview":
        return await preview(s, who, draft, cfg=cfg)
    spec = copy.deepcopy(draft.spec)
    if draft.step == TITLE:
        return _screen("training_author_ask_title", draft, only_cancel=True, code=spec["code"])
    if len(spec["items"]) >= MAX_ITEMS:
        return _screen("training_author_too_many_items", draft, limit=MAX_ITEMS)
    if verb == "lesson":
        draft.step, draft.updated_at = LESSON_TITLE, utcnow()
        return _screen("training_author_ask_lesson_title", draft, only_cancel=True,
                       position=len(spec["items"]) + 1)
    # verb == "quiz"
    n = sum(1 for i in spec["items"] if i["kind"] == "quiz") + 1
    spec["items"].append(asdict(ItemSpec(key=_new_key(spec, "quiz"), kind="quiz",
                                         title=_quiz_title(who.locale, n))))
    _changed(draft, spec, PASS_MARK)
    return _screen("training_author_ask_pass_mark", draft, only_cancel=True,
                   position=len(spec["items"]), default=cfg.default_pass_mark)


def _quiz_title(locale: str, n: int) -> str:
    return renderer().render("training_author_quiz_title", locale, n=n).strip()


def _save_problems(spec: CourseSpec, edit: bool, taken: bool) -> list[str]:
    found = problems(spec)
    if len(spec.items) > MAX_ITEMS:
        found.append(f"course: {len(spec.items)} items; at most {MAX_ITEMS}")
    for n, item in enumerate(spec.items, 1):
        if len(item.attachments) > MAX_ATTACHMENTS:
            found.append(f"item {n} ({item.key}): {len(item.attachments)} attachments; "
                         f"at most {MAX_ATTACHMENTS}")
    if taken and not edit:
        found.append(f"course code {spec.code!r} is already used by another course "
                     f"(/editcourse {spec.code} changes that one)")
    return found


async def save(s: AsyncSession, who: Author, draft: AuthoringDraft, *,
               cfg: TrainingSection) -> Screen:
    """Save the draft as a course (once: open → saved by a conditional UPDATE). With problems
    nothing is saved, every problem is shown and the draft stays open."""
    claimed = await s.execute(update(AuthoringDraft)
                              .where(AuthoringDraft.id == draft.id,
                                     AuthoringDraft.status == "open")
                              .values(status="saved", updated_at=utcnow()))
    spec = course_spec(draft.spec)
    if not claimed.rowcount:
        return Screen("training_author_already_saved", {"code": spec.code})
    edit = bool(draft.spec.get("flow", {}).get("edit"))
    taken = await s.scalar(select(Course.id).where(Course.code == spec.code)) is not None
    found = _save_problems(spec, edit, taken)
    if found:  # not saved: the draft stays open (in this same transaction)
        await s.execute(update(AuthoringDraft).where(AuthoringDraft.id == draft.id)
                        .values(status="open"))
        return _screen("training_course_invalid", draft,
                       problems="\n".join(f"• {p}" for p in found[:20]))
    course = await courses.save_course(s, spec, actor=f"tg:{who.user_id}", source="telegram",
                                       default_pass_mark=cfg.default_pass_mark)
    await s.execute(update(AuthoringDraft).where(AuthoringDraft.id == draft.id)
                    .values(course_id=course.id))
    lessons = sum(1 for i in spec.items if i.kind == "lesson")
    return Screen("training_author_saved", {
        "title": course.title, "code": course.code, "version": course.version,
        "lessons": lessons, "quizzes": len(spec.items) - lessons})


# --- Preview ------------------------------------------------------------------------------

async def preview(s: AsyncSession, who: Author, draft: AuthoringDraft, *,
                  cfg: TrainingSection) -> Screen:
    """Queue the course to the trainer as a dealer receives it (the same templates and media
    as `training.content.queue_item`, through the outbox), then the flow's buttons; returns
    the summary with every problem. The same version of the draft is sent once."""
    spec = course_spec(draft.spec)
    rev = int(draft.spec.get("flow", {}).get("rev", 0))
    taken = await s.scalar(select(Course.id).where(Course.code == spec.code)) is not None
    found = _save_problems(spec, bool(draft.spec.get("flow", {}).get("edit")), taken)
    summary = [{"position": n, "kind": i.kind, "title": i.title, "chars": len(i.body),
                "files": len([a for a in i.attachments if a.kind != "link"]),
                "questions": [(q.text, [q.options[c] for c in q.correct if c < len(q.options)])
                              for q in i.questions],
                "pass_mark": cfg.default_pass_mark if i.pass_mark is None else i.pass_mark}
               for n, i in enumerate(spec.items, 1)]
    summary_vars = {"title": spec.title, "code": spec.code, "items": summary,
                    "problems": "\n".join(f"• {p}" for p in found[:20])}
    when = utcnow()
    sent = 0
    common = dict(locale=who.locale, priority=PRIORITY_INTERACTIVE,
                  ref=f"training:preview:{draft.id}")
    for position, item in enumerate(spec.items, 1):
        for m in _item_messages(draft.id, spec, item, position, cfg.default_pass_mark):
            queued = await enqueue(
                s, who.chat_id, template=m.template, variables=m.variables, buttons=m.buttons,
                media_kind=m.media["kind"] if m.media else None,
                media_ref=m.media["ref"] if m.media else None,
                dedupe_key=f"trna:pv:{draft.id}:{rev}:{sent}", not_before=when + PREVIEW_GAP * sent,
                **common)
            if queued is None:  # this version was previewed already: it is above
                return Screen("training_author_preview_again", {}, controls(draft.id))
            sent += 1
    await enqueue(s, who.chat_id, template="training_author_preview_end",
                  variables={"title": spec.title}, buttons=controls(draft.id),
                  dedupe_key=f"trna:pv:{draft.id}:{rev}:end",
                  not_before=when + PREVIEW_GAP * sent, **common)
    return Screen("training_author_preview", summary_vars)  # its buttons follow the preview


def _item_messages(draft_id: int, course: CourseSpec, item: ItemSpec, position: int,
                   default_pass_mark: int) -> list[ItemMessage]:
    """The messages `training.content.queue_item` queues for this item, the dealer's buttons
    inert (`trna:pv:`)."""
    return item_messages(
        course_title=course.title, kind=item.kind, title=item.title, body=item.body,
        attachments=[a.as_dict() for a in item.attachments], position=position,
        total=len(course.items),
        pass_mark=default_pass_mark if item.pass_mark is None else item.pass_mark,
        draw=item.draw, action=payload("pv", draft_id))
