"""A course as plain data, and every rule a course must satisfy before it is saved.

Both ways of authoring end here: the bundle importer (training/bundle.py: a folder of
Markdown/YAML plus attachments) and the guided flow in Telegram (training/authoring.py) build
a `CourseSpec`, call `problems(spec)`, and only when that list is empty call
`training.courses.save_course` — in one transaction, so a rejected course leaves nothing
behind. Lesson bodies here are Telegram HTML already (the bundle converts its Markdown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from training.models import ATTACHMENT_KINDS

MAX_TITLE = 200
MAX_BODY = 3800  # one Telegram message (4096) with room for the title line and the footer
MAX_CAPTION = 1024
MAX_OPTIONS = 8  # buttons a question shows, one per row
MAX_OPTION_LABEL = 60
MAX_QUESTION = 900
MAX_EXPLANATION = 900
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class AttachmentSpec:
    """A photo, a document (PDF, slides …) or a link shown with a lesson.

    `ref`: for photo/document a file path (absolute, inside the training files folder), a
    Telegram file_id, or an https URL; for link an http(s) URL."""

    kind: str
    ref: str
    name: str = ""
    caption: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON stored in `training_items.attachments`."""
        return {"kind": self.kind, "ref": self.ref, "name": self.name, "caption": self.caption}


@dataclass
class QuestionSpec:
    """One question: options in order, the 0-based indexes of the correct ones."""

    text: str
    options: list[str]
    correct: list[int]
    multi: bool = False
    explanation: str = ""


@dataclass
class ItemSpec:
    """A lesson (`body`, `attachments`) or a quiz (`questions`, `pass_mark` …)."""

    key: str
    kind: str  # lesson | quiz
    title: str
    body: str = ""
    attachments: list[AttachmentSpec] = field(default_factory=list)
    questions: list[QuestionSpec] = field(default_factory=list)
    pass_mark: int | None = None  # percent; None → training.default_pass_mark
    draw: int | None = None  # questions per attempt drawn from the pool; None → all
    max_attempts: int | None = None  # None → unlimited retries; 1 → no retry


@dataclass
class CourseSpec:
    """A course: a code (stable name), a title, and items in order."""

    code: str
    title: str
    description: str = ""
    locale: str = "zh-Hans"
    items: list[ItemSpec] = field(default_factory=list)


def problems(spec: CourseSpec) -> list[str]:
    """Every reason the course cannot be saved (empty: it can). Each names where and what."""
    out: list[str] = []
    if not KEY_RE.match(spec.code or ""):
        out.append(f"course code {spec.code!r}: use letters, digits, '-', '_' or '.' (≤ 64)")
    if not (spec.title or "").strip():
        out.append("course: the title is missing")
    elif len(spec.title) > MAX_TITLE:
        out.append(f"course: the title is longer than {MAX_TITLE} characters")
    if spec.locale not in ("zh-Hans", "zh-Hant", "en"):
        out.append(f"course: locale {spec.locale!r} is not zh-Hans, zh-Hant or en")
    if not spec.items:
        out.append("course: it has no lessons or quizzes")
    seen: set[str] = set()
    for n, item in enumerate(spec.items, 1):
        where = f"item {n} ({item.key or '?'})"
        if not KEY_RE.match(item.key or ""):
            out.append(f"{where}: bad key {item.key!r}")
        elif item.key in seen:
            out.append(f"{where}: the key {item.key!r} is used twice")
        seen.add(item.key)
        if not (item.title or "").strip():
            out.append(f"{where}: the title is missing")
        elif len(item.title) > MAX_TITLE:
            out.append(f"{where}: the title is longer than {MAX_TITLE} characters")
        if item.kind == "lesson":
            out.extend(_lesson_problems(where, item))
        elif item.kind == "quiz":
            out.extend(_quiz_problems(where, item))
        else:
            out.append(f"{where}: kind {item.kind!r} is neither lesson nor quiz")
    return out


def _lesson_problems(where: str, item: ItemSpec) -> list[str]:
    out: list[str] = []
    if not item.body.strip() and not item.attachments:
        out.append(f"{where}: the lesson is empty (no text, no attachment)")
    if len(item.body) > MAX_BODY:
        out.append(f"{where}: the text is {len(item.body)} characters; at most {MAX_BODY} "
                   "(split it into two lessons)")
    for a in item.attachments:
        if a.kind not in ATTACHMENT_KINDS:
            out.append(f"{where}: attachment kind {a.kind!r} is not one of {ATTACHMENT_KINDS}")
        elif a.kind == "link" and not re.match(r"^https?://\S+$", a.ref or ""):
            out.append(f"{where}: link {a.ref!r} is not an http(s) address")
        elif not (a.ref or "").strip():
            out.append(f"{where}: a {a.kind} attachment has no file")
        if len(a.caption) > MAX_CAPTION:
            out.append(f"{where}: a caption is longer than {MAX_CAPTION} characters")
    if item.questions:
        out.append(f"{where}: a lesson cannot have questions (make it a quiz)")
    return out


def _quiz_problems(where: str, item: ItemSpec) -> list[str]:
    out: list[str] = []
    if not item.questions:
        out.append(f"{where}: the quiz has no questions")
    if item.pass_mark is not None and not 0 <= item.pass_mark <= 100:
        out.append(f"{where}: pass mark {item.pass_mark}% is not between 0 and 100")
    if item.draw is not None and not 1 <= item.draw <= max(1, len(item.questions)):
        out.append(f"{where}: draw {item.draw} questions, but the pool has "
                   f"{len(item.questions)}")
    if item.max_attempts is not None and item.max_attempts < 1:
        out.append(f"{where}: max_attempts must be at least 1 (1 = no retry)")
    for q_no, q in enumerate(item.questions, 1):
        qw = f"{where} question {q_no}"
        if not q.text.strip():
            out.append(f"{qw}: the question text is missing")
        elif len(q.text) > MAX_QUESTION:
            out.append(f"{qw}: the question is longer than {MAX_QUESTION} characters")
        if len(q.options) < 2:
            out.append(f"{qw}: it needs at least two options")
        if len(q.options) > MAX_OPTIONS:
            out.append(f"{qw}: at most {MAX_OPTIONS} options")
        if any(not o.strip() for o in q.options):
            out.append(f"{qw}: an option is empty")
        if any(len(o) > MAX_OPTION_LABEL for o in q.options):
            out.append(f"{qw}: an option is longer than {MAX_OPTION_LABEL} characters "
                       "(it is a button)")
        if len(set(q.options)) != len(q.options):
            out.append(f"{qw}: two options are the same")
        if not q.correct:
            out.append(f"{qw}: no correct answer is marked")
        elif any(not 0 <= c < len(q.options) for c in q.correct):
            out.append(f"{qw}: a correct answer points at no option")
        elif len(set(q.correct)) != len(q.correct):
            out.append(f"{qw}: a correct answer is listed twice")
        elif not q.multi and len(q.correct) > 1:
            out.append(f"{qw}: single choice with {len(q.correct)} correct answers "
                       "(set multi: true)")
        if len(q.explanation) > MAX_EXPLANATION:
            out.append(f"{qw}: the explanation is longer than {MAX_EXPLANATION} characters")
    return out
