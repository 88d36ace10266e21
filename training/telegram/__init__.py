"""Training in Telegram: one adapter module per kind of user, registered in this order.

- `authoring`: a trainer writes a course in a guided flow with a preview (/newcourse …);
- `pushes`:    a trainer pushes a lesson or course to a segment, now or on a schedule (/push …);
- `reports`:   progress per course, group or dealer in chat and as CSV (/progress …),
               and certificate verification for anyone (/verify <code>);
- `learning`:  a dealer's /courses, /next and every `trn:` button (lessons, quizzes).

Each stays thin: parse → one unit of work calling training/ services → render the Screen.
"""

from __future__ import annotations

from telegram.ext import Application

from training.telegram import authoring, learning, pushes, reports


def register(app: Application) -> None:
    """Every training handler (bot/gateway/app.py calls this before the assistant's catch-all)."""
    authoring.register(app)
    pushes.register(app)
    reports.register(app)
    learning.register(app)
