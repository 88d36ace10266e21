"""Course bundles: a folder of Markdown lessons and YAML quizzes becomes a course.

Format (training/README.md shows an example)::

    product-basics/
      course.yml          code (default: the folder name), title, description (Markdown),
                          locale (zh-Hans | zh-Hant | en), items: the files in order
      01-lineup.md        a lesson: optional YAML front matter between two `---` lines
                          (title, attachments), then the text in Markdown
      04-quiz.yml         a quiz: title, intro (Markdown), pass_mark (percent), draw (questions
                          per attempt, from the pool), max_attempts, questions
      images/… files/…    attachments, referred to by paths inside the folder

- An item's key (what progress is tied to) is its file name without the extension and
  without a leading number: `01-lineup.md` → `lineup`. Renumbering files keeps progress.
- A lesson without `title:` takes its first `# Heading` line as the title.
- Lesson attachments: `{photo: images/x.png, caption: …}` (jpg/png/webp, ≤ 10 MB),
  `{document: files/y.pdf, name: …}` (≤ 50 MB), `{link: https://…, name: …}`. A photo or
  document may also be an https URL (Telegram fetches it).
- A question: `text`, `options` (a list), `answer` and optionally `multi`, `explanation`.
  `answer` marks the correct options by letter — `A`, `AC` or `[A, C]` (A = the first
  option) — or by 0-based index — `0` or `[0, 2]`. `multi` defaults to "more than one
  answer"; say `multi: true` to make a one-answer question multiple choice anyway.
- Markdown becomes Telegram HTML (training/markdown.py). Quiz question texts, options and
  explanations are plain text.

`load(folder)` reads and checks the WHOLE bundle and collects every problem — the course
rules of training/spec.py plus the bundle's own (YAML that does not parse, with its line;
unknown keys such as `pass_mrak`; missing files; paths leaving the folder, symlinks
included; photos that are not jpg/png/webp or too big; files that are not UTF-8). Nothing
is written while there is a problem. `import_bundle` then copies the attachments to
`<data>/<training.files_dir>/<sha256>/<name>` (content-addressed: the same file is stored
once, and a failed save leaves only harmless copies) and saves the course in the caller's
transaction. Importing a bundle identical to the saved course changes nothing (the version
stays), so the sandbox seed can import the demo course on every start.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError
from core.settings import Settings
from training import courses
from training.markdown import to_telegram_html
from training.models import Course
from training.spec import AttachmentSpec, CourseSpec, ItemSpec, QuestionSpec, problems

COURSE_FILE = "course.yml"
COURSE_KEYS = ("code", "title", "description", "locale", "items")
LESSON_KEYS = ("title", "attachments")
QUIZ_KEYS = ("title", "intro", "pass_mark", "draw", "max_attempts", "questions")
QUESTION_KEYS = ("text", "options", "answer", "multi", "explanation")
ATTACHMENT_KEYS = ("photo", "document", "link", "name", "caption")
FILE_KINDS = ("photo", "document")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # Telegram's limit for a photo
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # … and for a document a bot uploads
_URL = re.compile(r"^https?://", re.IGNORECASE)
_NUMBER_PREFIX = re.compile(r"^\d+[-_. ]*")


@dataclass
class BundleFile:
    """An attachment file of the bundle: where it is, which attachment it belongs to (item
    and attachment index in the spec) and the name it is stored (and sent) under."""

    source: Path
    item: int
    attachment: int
    name: str


@dataclass
class Bundle:
    """A loaded bundle: the course (attachment refs still relative to the folder), the files
    to copy, the file behind each item and every problem found (empty: it can be imported)."""

    folder: Path
    spec: CourseSpec
    files: list[BundleFile] = field(default_factory=list)
    item_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way of importing it."""
        return not self.problems


@dataclass
class ImportResult:
    """What `import_bundle` did: the course, and whether it saved a new version (False: the
    saved course already held exactly this content)."""

    course: Course
    bundle: Bundle
    saved: bool


class StorageError(DomainError):
    """The attachments could not be copied to the training files folder."""

    code = "training_files_unwritable"
    template = "error_generic"


def load(folder: Path | str) -> Bundle:
    """Read and check a course folder; every problem is in `Bundle.problems` (never raises
    for what is in the folder)."""
    return _Loader(Path(folder)).run()


def files_root(settings: Settings) -> Path:
    """Where imported attachments are kept: `<app.data_dir>/<training.files_dir>`."""
    path = Path(settings.training.files_dir)
    return path if path.is_absolute() else settings.data_path / path


def store_files(bundle: Bundle, root: Path) -> CourseSpec:
    """Copy the bundle's attachment files to `root/<sha256>/<safe name>` (folders mode 0700;
    a file already there is kept) and return a copy of the spec whose refs are those
    absolute paths. Call it only for a bundle without problems."""
    spec = copy.deepcopy(bundle.spec)
    for f in bundle.files:
        spec.items[f.item].attachments[f.attachment].ref = str(_store(f.source, root, f.name))
    return spec


async def import_bundle(s: AsyncSession, folder: Path | str, settings: Settings, *,
                        actor: str) -> ImportResult:
    """Check the bundle, copy its files and save the course in the caller's transaction.

    CourseInvalid (every problem, nothing written) when the bundle breaks a rule;
    StorageError when the files folder is not writable (nothing saved). An unchanged bundle
    saves nothing (`saved` False, the version stays)."""
    bundle = load(folder)
    if bundle.problems:
        raise courses.CourseInvalid(bundle.problems)
    try:
        spec = store_files(bundle, files_root(settings))
    except OSError as exc:
        raise StorageError(f"cannot store the attachments in {files_root(settings)}: {exc}; "
                           "make that folder writable or point app.data_dir elsewhere") from exc
    pass_mark = settings.training.default_pass_mark
    existing = await s.scalar(select(Course).where(Course.code == spec.code))
    if existing is not None and await _unchanged(s, existing, spec, pass_mark):
        return ImportResult(existing, bundle, saved=False)
    course = await courses.save_course(s, spec, actor=actor, source="bundle",
                                       default_pass_mark=pass_mark)
    return ImportResult(course, bundle, saved=True)


def outline(bundle: Bundle) -> str:
    """The course as the CLI shows it: one line per item, with question counts and
    attachments."""
    spec = bundle.spec
    lines = [f"course {spec.code}: {spec.title} ({spec.locale}), {len(spec.items)} item(s)"]
    for n, (item, name) in enumerate(zip(spec.items, bundle.item_files, strict=True), 1):
        if item.kind == "quiz":
            multi = sum(1 for q in item.questions if q.multi or len(q.correct) > 1)
            pass_mark = "default" if item.pass_mark is None else f"{item.pass_mark}%"
            detail = (f"{len(item.questions)} question(s) ({multi} multiple choice), "
                      f"draw {item.draw or 'all'}, pass mark {pass_mark}, "
                      f"attempts {item.max_attempts or 'unlimited'}")
        else:
            detail = f"{len(item.body)} characters"
        lines.append(f"  {n}. {item.kind:<6} {name}  {item.title}  — {detail}")
        for a in item.attachments:
            label = a.name or a.caption
            lines.append(f"       {a.kind}: {a.ref}" + (f" ({label})" if label else ""))
    size = sum(f.source.stat().st_size for f in bundle.files)
    lines.append(f"  {len(bundle.files)} attachment file(s), {size / 1024:.1f} KB")
    return "\n".join(lines)


# --- reading ----------------------------------------------------------------------------

class _Loader:
    """Reads one bundle, collecting problems instead of stopping at the first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = folder.resolve()
        self.problems: list[str] = []
        self.files: list[BundleFile] = []
        self.index = 0  # the item being read (its place in spec.items)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def run(self) -> Bundle:
        spec = CourseSpec(code=self.folder.resolve().name, title="")
        bundle = Bundle(folder=self.folder, spec=spec)
        if not self.root.is_dir():
            self.problem(f"{self.folder}: no such folder (give the course folder, the one "
                         f"holding {COURSE_FILE})")
            return self._done(bundle, run_rules=False)
        data = self.read_yaml(COURSE_FILE)
        if data is None:
            return self._done(bundle, run_rules=False)
        self.keys(data, COURSE_KEYS, COURSE_FILE)
        spec.code = self.text(data, "code", COURSE_FILE) or spec.code
        spec.title = self.text(data, "title", COURSE_FILE)
        spec.description = to_telegram_html(self.text(data, "description", COURSE_FILE,
                                                      strip=False))
        spec.locale = self.text(data, "locale", COURSE_FILE) or spec.locale
        entries = data.get("items")
        if not isinstance(entries, list) or not entries:
            self.problem(f"{COURSE_FILE}: `items:` must list the lesson (.md) and quiz (.yml) "
                         "files in order, one per line starting with '- '")
            return self._done(bundle, run_rules=True)
        broken: set[int] = set()
        for n, entry in enumerate(entries):
            self.index = n
            item = self.item(entry, n)
            if item is None:
                broken.add(n)
                item = ItemSpec(key=f"item{n + 1}", kind="lesson", title="?", body="?")
            spec.items.append(item)
            bundle.item_files.append(str(entry))
        return self._done(bundle, run_rules=True, broken=broken)

    def _done(self, bundle: Bundle, *, run_rules: bool, broken: set[int] | None = None
              ) -> Bundle:
        bundle.files = self.files
        bundle.problems = self.problems
        if run_rules:
            bundle.problems.extend(self.rules(bundle, broken or set()))
        return bundle

    @staticmethod
    def rules(bundle: Bundle, broken: set[int]) -> list[str]:
        """spec.problems(), each told by file name; none for items that did not even load."""
        out: list[str] = []
        for p in problems(bundle.spec):
            for n, (item, name) in enumerate(zip(bundle.spec.items, bundle.item_files,
                                                 strict=True)):
                prefix = f"item {n + 1} ({item.key or '?'})"
                if p.startswith(prefix):
                    p = "" if n in broken else f"{name}{p[len(prefix):]}"
                    break
            else:
                if not bundle.spec.items and p.endswith("has no lessons or quizzes"):
                    continue  # already said: `items:` is missing
                p = p.replace("course:", f"{COURSE_FILE}:", 1)
            if p:
                out.append(p)
        return out

    # --- files and YAML ---

    def path(self, rel: Any, where: str) -> Path | None:
        """The file `rel` names, if it is a regular file inside the folder."""
        if not isinstance(rel, str) or not rel.strip():
            self.problem(f"{where}: give a file name inside the folder (like 01-intro.md or "
                         "images/photo.png)")
            return None
        pure = PurePosixPath(rel.strip().replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or re.match(r"^(~|[A-Za-z]:)", str(pure)):
            self.problem(f"{where}: {rel} is outside the course folder (use a path inside it, "
                         "like images/photo.png)")
            return None
        try:
            real = (self.root / pure).resolve(strict=True)
        except (OSError, RuntimeError):
            self.problem(f"{where}: {rel} does not exist in {self.folder} (check the name, "
                         "or add the file)")
            return None
        if not real.is_relative_to(self.root):
            self.problem(f"{where}: {rel} is a link to a file outside the course folder (copy "
                         "the file into the folder instead)")
            return None
        if not real.is_file():
            self.problem(f"{where}: {rel} is not a file")
            return None
        return real

    def read_text(self, path: Path, where: str) -> str | None:
        try:
            return path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problem(f"{where}: not UTF-8 text (byte {exc.start}); save the file as UTF-8")
        except OSError as exc:
            self.problem(f"{where}: cannot be read ({exc.strerror})")
        return None

    def read_yaml(self, rel: str) -> dict[str, Any] | None:
        path = self.path(rel, rel)
        text = None if path is None else self.read_text(path, rel)
        return None if text is None else self.parse_yaml(text, rel)

    def parse_yaml(self, text: str, where: str, first_line: int = 1) -> dict[str, Any] | None:
        """A YAML mapping, or None (with the problem and its line recorded)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            context = getattr(exc, "context_mark", None)
            line = f" at line {mark.line + first_line}" if mark is not None else ""
            if context is not None and mark is not None and context.line != mark.line:
                line += f" (in what starts at line {context.line + first_line})"
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.problem(f"{where}: not valid YAML{line}: {reason}")
            return None
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(f"{where}: expected `key: value` lines (like `title: …`), found "
                         f"a {type(data).__name__}")
            return None
        return data

    def keys(self, data: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
        """An unknown key is a problem (a typo would otherwise be silently ignored)."""
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else \
                    f"known keys: {', '.join(allowed)}"
                self.problem(f"{where}: unknown key {key!r} ({hint})")

    def text(self, data: dict[str, Any], key: str, where: str, *, strip: bool = True) -> str:
        value = data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(f"{where}: {key} must be text (put it in quotes)")
            return ""
        value = str(value)
        return value.strip() if strip else value

    def number(self, data: dict[str, Any], key: str, where: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*%?\s*", value):
            return int(value.strip().rstrip("%"))
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{where}: {key} must be a whole number, like {key}: 3")
            return None
        return value

    # --- items ---

    def item(self, entry: Any, n: int) -> ItemSpec | None:
        where = f"{COURSE_FILE} item {n + 1}"
        path = self.path(entry, where)
        if path is None:
            return None
        rel = str(entry).strip()
        stem, suffix = Path(rel).stem, Path(rel).suffix.lower()
        key = _NUMBER_PREFIX.sub("", stem) or stem
        if suffix not in (".md", ".yml", ".yaml"):
            self.problem(f"{where}: {rel} is neither a lesson (.md) nor a quiz (.yml)")
            return None
        text = self.read_text(path, rel)
        if text is None:
            return None
        return self.lesson(rel, key, text) if suffix == ".md" else self.quiz(rel, key, text)

    def lesson(self, rel: str, key: str, text: str) -> ItemSpec | None:
        meta: dict[str, Any] | None = {}
        body = text
        lines = text.splitlines(keepends=True)
        if lines and lines[0].strip() == "---":
            end = next((i for i, line in enumerate(lines[1:], 1)
                        if line.strip() in ("---", "...")), None)
            if end is None:
                self.problem(f"{rel}: the front matter starts with --- but never ends (add a "
                             "line with --- after it)")
                return None
            meta = self.parse_yaml("".join(lines[1:end]), f"{rel} front matter", first_line=2)
            body = "".join(lines[end + 1:])
        if meta is None:
            return None
        self.keys(meta, LESSON_KEYS, f"{rel} front matter")
        title = self.text(meta, "title", rel)
        if not title:
            heading = re.match(r"\s*#\s+(.+?)\s*#*\s*(?:\n|$)", body)
            if heading:
                title, body = heading.group(1), body[heading.end():]
        item = ItemSpec(key=key, kind="lesson", title=title, body=to_telegram_html(body))
        attachments = meta.get("attachments") or []
        if not isinstance(attachments, list):
            self.problem(f"{rel}: attachments must be a list, each line starting with '- '")
            attachments = []
        for entry in attachments:
            self.attachment(item, entry, f"{rel} attachment {len(item.attachments) + 1}")
        return item

    def attachment(self, item: ItemSpec, entry: Any, where: str) -> None:
        if not isinstance(entry, dict):
            self.problem(f"{where}: write it as `- photo: images/x.png` (or document:, link:)")
            return
        self.keys(entry, ATTACHMENT_KEYS, where)
        kinds = [k for k in ("photo", "document", "link") if k in entry]
        if len(kinds) != 1:
            self.problem(f"{where}: give exactly one of photo:, document: or link:")
            return
        kind = kinds[0]
        ref = self.text(entry, kind, where)
        attachment = AttachmentSpec(kind=kind, ref=ref, name=self.text(entry, "name", where),
                                    caption=self.text(entry, "caption", where))
        if kind in FILE_KINDS and not _URL.match(ref):
            path = self.path(ref, where)
            if path is None or not self.fits(kind, path, ref, where):
                return
            stored = path.name
            if kind == "document":  # Telegram shows the file's name: make it the given one
                attachment.name = attachment.name or path.name
                stored = attachment.name if attachment.name.lower().endswith(
                    path.suffix.lower()) else attachment.name + path.suffix
            self.files.append(BundleFile(path, self.index, len(item.attachments), stored))
        item.attachments.append(attachment)

    def fits(self, kind: str, path: Path, rel: str, where: str) -> bool:
        size = path.stat().st_size
        if kind == "photo":
            if path.suffix.lower() not in PHOTO_SUFFIXES or not _is_image(path):
                self.problem(f"{where}: {rel} is not a JPEG, PNG or WebP picture (send other "
                             "files as document:)")
                return False
            if size > MAX_PHOTO_BYTES:
                self.problem(f"{where}: {rel} is {size / 2**20:.1f} MB; a photo may be at most "
                             "10 MB (make it smaller)")
                return False
        elif size > MAX_DOCUMENT_BYTES:
            self.problem(f"{where}: {rel} is {size / 2**20:.1f} MB; a document may be at most "
                         "50 MB (split it or link to it)")
            return False
        return True

    def quiz(self, rel: str, key: str, text: str) -> ItemSpec | None:
        data = self.parse_yaml(text, rel)
        if data is None:
            return None
        self.keys(data, QUIZ_KEYS, rel)
        item = ItemSpec(key=key, kind="quiz", title=self.text(data, "title", rel),
                        body=to_telegram_html(self.text(data, "intro", rel, strip=False)),
                        pass_mark=self.number(data, "pass_mark", rel),
                        draw=self.number(data, "draw", rel),
                        max_attempts=self.number(data, "max_attempts", rel))
        entries = data.get("questions") or []
        if not isinstance(entries, list):
            self.problem(f"{rel}: questions must be a list, each question starting with "
                         "'- text: …'")
            entries = []
        for n, entry in enumerate(entries, 1):
            question = self.question(entry, f"{rel} question {n}")
            if question is not None:
                item.questions.append(question)
        return item

    def question(self, entry: Any, where: str) -> QuestionSpec | None:
        if not isinstance(entry, dict):
            self.problem(f"{where}: write it as `- text: …` with options: and answer:")
            return None
        self.keys(entry, QUESTION_KEYS, where)
        options_raw = entry.get("options") or []
        if not isinstance(options_raw, list):
            self.problem(f"{where}: options must be a list, each option starting with '- '")
            options_raw = []
        options = []
        for n, option in enumerate(options_raw, 1):
            if isinstance(option, bool) or not isinstance(option, str | int | float):
                self.problem(f"{where}: option {n} must be text (put it in quotes)")
            options.append(str(option).strip())
        multi = entry.get("multi")
        if multi is not None and not isinstance(multi, bool):
            self.problem(f"{where}: multi must be true or false")
            multi = None
        correct = self.answer(entry.get("answer"), where)
        return QuestionSpec(text=self.text(entry, "text", where), options=options,
                            correct=correct, multi=bool(multi) or len(correct) > 1,
                            explanation=self.text(entry, "explanation", where))

    def answer(self, value: Any, where: str) -> list[int]:
        """`A`, `AC`, `[A, C]` (letters) or `0`, `[0, 2]` (0-based indexes)."""
        out: list[int] = []
        for v in value if isinstance(value, list) else ([] if value is None else [value]):
            if isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
            elif isinstance(v, str) and re.fullmatch(r"\s*[A-Za-z]+\s*", v):
                out.extend(ord(c) - ord("A") for c in v.strip().upper())
            elif isinstance(v, str) and re.fullmatch(r"\s*\d+\s*", v):
                out.append(int(v))
            else:
                self.problem(f"{where}: answer {v!r} is neither a letter (A = the first "
                             "option) nor an option index (0 = the first option)")
        return out


def _is_image(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(12)
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP")


# --- storing ------------------------------------------------------------------------------

def safe_name(name: str) -> str:
    """A file name that is safe on any disk and in Telegram: letters (any script), digits,
    '.', '-', '_'; at most about 100 characters, the extension kept."""
    stem, suffix = os.path.splitext(name)
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "file"
    suffix = re.sub(r"[^\w.]+", "", suffix)[:10]
    return stem[:90] + suffix


def _store(source: Path, root: Path, name: str) -> Path:
    digest = hashlib.sha256()
    with source.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    folder = root / digest.hexdigest()
    for d in (root, folder):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.chmod(0o700)
    target = folder / safe_name(name)
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --- unchanged? ---------------------------------------------------------------------------

async def _unchanged(s: AsyncSession, course: Course, spec: CourseSpec,
                     default_pass_mark: int) -> bool:
    """True when the saved course already is exactly `spec` (as save_course would store
    it), so saving again would only bump the version."""
    if (course.title, course.description, course.locale, course.status, course.source) != (
            spec.title, spec.description, spec.locale, "published", "bundle"):
        return False
    saved = await courses.items(s, course.id)
    if [i.key for i in saved] != [i.key for i in spec.items]:
        return False
    for row, item in zip(saved, spec.items, strict=True):
        quiz = item.kind == "quiz"
        want = (item.kind, item.title, item.body, [a.as_dict() for a in item.attachments],
                (default_pass_mark if item.pass_mark is None else item.pass_mark) if quiz
                else None, item.draw if quiz else None, item.max_attempts if quiz else None)
        if (row.kind, row.title, row.body, row.attachments, row.pass_mark, row.draw,
                row.max_attempts) != want:
            return False
        questions = [(q.text, q.options, q.correct, q.multi, q.explanation)
                     for q in await courses.questions(s, row.id)]
        if questions != [(q.text, list(q.options), sorted(q.correct),
                          q.multi or len(q.correct) > 1, q.explanation)
                         for q in item.questions]:
            return False
    return True
