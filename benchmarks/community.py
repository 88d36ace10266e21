"""Dealer community benchmark → benchmarks/results/community.json + .md (`make bench-community`).

On a fresh SQLite database (or --database-url, e.g. PostgreSQL) with 1,000 imported dealers:
* join_requests: eligible and ineligible (unlinked, wrong tier/region, inactive) requests plus
  redeliveries, each decided in its own unit of work as the gateway does; every decision is
  checked against an independent expectation (join_decisions_correct must equal join_requests);
* group messages: the gateway's per-message work (group lookup, verified-dealer check, flood,
  blocklist and link rules, the participation upsert, points for the first message of a day);
* a re-import of dealers.csv that downgrades 100 key dealers: the importer's hook removes them
  from the key-only groups (kick rows queued) — sync_removed must equal sync_expected.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from community import groups, membership, moderation, participation  # noqa: E402
from community.models import CommunityGroup  # noqa: E402
from core.db import Database  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import OutboxMessage, TelegramIdentity  # noqa: E402
from core.services.importer import import_paths  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TIERS = ("key", "potential", "advantage", "general")
REGIONS = ("华东", "华南", "西南", "华北")
GROUPS = [  # chat id, tiers, regions
    (-2001, ["key"], ["华东"]), (-2002, ["key"], ["华南"]), (-2003, ["key", "potential"], []),
    (-2004, [], ["西南"]), (-2005, [], []), (-2006, ["general"], ["华北"]),
]


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=100)[94], 2) if len(values) > 1 else 0.0


def dealers_csv(dealers: list[tuple[str, str, str, bool]]) -> str:
    lines = ["code,name,phone,region,tier,active"]
    lines += [f"{c},{c} Trading Co,1,{r},{t},{'yes' if a else 'no'}" for c, t, r, a in dealers]
    return "\n".join(lines) + "\n"


def expected(tiers: list[str], regions: list[str], dealer) -> bool:  # type: ignore[no-untyped-def]
    if dealer is None:
        return False
    _, tier, region, active = dealer
    return active and (not tiers or tier in tiers) and (not regions or region in regions)


async def run(url: str | None, n_dealers: int, n_requests: int, n_messages: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-community-"))
    db = Database(url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await upgrade(db.engine)
    rng = random.Random(7)
    dealers = [(f"B{i:05d}", TIERS[i % 4], REGIONS[(i // 4) % 4], i % 23 != 0)
               for i in range(n_dealers)]
    csv_path = tmp / "dealers.csv"
    csv_path.write_text(dealers_csv(dealers), encoding="utf-8")
    await import_paths(db, [csv_path])
    users = {100_000 + i: d for i, d in enumerate(dealers)}
    async with db.transaction() as s:
        ids = dict((await s.execute(select(
            __import__("core.models", fromlist=["Customer"]).Customer.code,
            __import__("core.models", fromlist=["Customer"]).Customer.id))).all())
        s.add_all(TelegramIdentity(telegram_user_id=uid, first_name="d", customer_id=ids[d[0]])
                  for uid, d in users.items())
        for chat, tiers, regions in GROUPS:
            await groups.register(s, chat, f"G{chat}", actor="bench",
                                  options={"tiers": ",".join(tiers) or "all",
                                           "regions": ",".join(regions) or "all"})
    strangers = list(range(900_000, 900_000 + n_requests // 5))

    # ---- join requests
    requests = []
    for i in range(n_requests):
        chat, tiers, regions = rng.choice(GROUPS)
        uid = rng.choice(strangers) if i % 5 == 0 else rng.choice(list(users))
        requests.append((chat, tiers, regions, uid, 1_700_000_000 + i))
    requests += [requests[i] for i in range(0, n_requests, 10)]  # redelivered: same decision
    rng.shuffle(requests)
    latencies, correct, first = [], 0, {}
    t0 = time.perf_counter()
    for chat, tiers, regions, uid, date in requests:
        t = time.perf_counter()
        async with db.transaction() as s:
            out = await membership.decide_join(s, chat, uid, date)
        latencies.append((time.perf_counter() - t) * 1000)
        want = first.setdefault((chat, uid, date), expected(tiers, regions, users.get(uid)))
        if out is not None and out.approved == want:
            correct += 1
    join_s = time.perf_counter() - t0

    # ---- group messages (moderation + participation)
    async with db.transaction() as s:
        await groups.change_settings(s, -2005, actor="bench", blocklist_add="违禁词,假货")
        members = [(chat, uid) for chat, uid in (await s.execute(select(
            CommunityGroup.chat_id, __import__("community.models", fromlist=["GroupMember"])
            .GroupMember.telegram_user_id).join(
            __import__("community.models", fromlist=["GroupMember"]).GroupMember,
            __import__("community.models", fromlist=["GroupMember"]).GroupMember.group_id
            == CommunityGroup.id))).all()]
    flood = moderation.FloodTracker()
    texts = ["今天到货了吗", "新品什么时候上", "see https://spam.example", "这是假貨", "收到"]
    msg_lat, actions = [], 0
    day = participation.local_day("Asia/Shanghai")
    t0 = time.perf_counter()
    for i in range(n_messages):
        chat, uid = members[i % len(members)]
        text = texts[i % len(texts)]
        t = time.perf_counter()
        async with db.transaction() as s:
            group = await groups.by_chat(s, chat)
            assert group is not None
            customer_id = await moderation.verified_dealer(s, uid)
            flooding = flood.hit(chat, uid, group.flood_messages, group.flood_seconds)
            verdict = moderation.judge(group, text=text, has_link=False, forwarded=False,
                                       verified=customer_id is not None, exempt=False,
                                       flooding=flooding)
            if verdict.action is None:
                await participation.count_message(s, group.id, uid, customer_id, day)
            else:
                actions += 1
                await moderation.record(s, group, verdict, uid, done=True)
        msg_lat.append((time.perf_counter() - t) * 1000)
    msg_s = time.perf_counter() - t0

    # ---- membership sync after an import that downgrades 100 key dealers
    downgraded = [d for d in dealers if d[1] == "key" and d[3]][:100]
    codes = {d[0] for d in downgraded}
    uid_of = {d[0]: uid for uid, d in users.items()}
    for d in downgraded:  # every one of them is in each group it fits before the import
        for chat, tiers, regions in GROUPS:
            if expected(tiers, regions, d):
                async with db.transaction() as s:
                    await membership.decide_join(s, chat, uid_of[d[0]], 1)
    async with db.transaction() as s:
        gm = __import__("community.models", fromlist=["GroupMember"]).GroupMember
        member_set = set((await s.execute(select(CommunityGroup.chat_id, gm.telegram_user_id)
                                          .join(gm, gm.group_id == CommunityGroup.id)
                                          .where(gm.status == "member"))).all())
    rules = {chat: (tiers, regions) for chat, tiers, regions in GROUPS}
    sync_expected = sum(1 for d in downgraded for chat in rules
                        if (chat, uid_of[d[0]]) in member_set
                        and not expected(*rules[chat], (d[0], "general", d[2], d[3])))
    new = [(c, "general" if c in codes else t, r, a) for c, t, r, a in dealers]
    csv_path.write_text(dealers_csv(new), encoding="utf-8")
    async with db.transaction() as s:
        kicks_before = await s.scalar(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.kind == "kick"))
    t = time.perf_counter()
    await import_paths(db, [csv_path])
    sync_s = time.perf_counter() - t
    async with db.transaction() as s:
        kicks = await s.scalar(select(func.count()).select_from(OutboxMessage)
                               .where(OutboxMessage.kind == "kick")) - kicks_before
    await db.dispose()
    return {
        "database": "postgresql" if url and url.startswith("postgresql") else "sqlite",
        "dealers": n_dealers, "groups": len(GROUPS),
        "join_requests": len(requests), "join_decisions_correct": correct,
        "join_p95_ms": p95(latencies), "join_per_s": round(len(requests) / join_s, 1),
        "group_messages": n_messages, "group_msgs_per_s": round(n_messages / msg_s, 1),
        "group_msg_p95_ms": p95(msg_lat), "moderation_actions": actions,
        "sync_expected": sync_expected, "sync_removed": kicks, "sync_s": round(sync_s, 3),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", help="default: a fresh SQLite file")
    p.add_argument("--dealers", type=int, default=1000)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--messages", type=int, default=3000)
    args = p.parse_args()
    result = asyncio.run(run(args.database_url, args.dealers, args.requests, args.messages))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "community.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                            + "\n", encoding="utf-8")
    md = ["# Community benchmark", "", "| metric | value |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in result.items()]
    (RESULTS / "community.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    ok = result["join_decisions_correct"] == result["join_requests"] and \
        result["sync_removed"] == result["sync_expected"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
