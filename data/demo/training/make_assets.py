"""Re-creates the demo course's two binary attachments (committed; run only to change them).

    .venv/bin/python data/demo/training/make_assets.py

images/noodle-lineup.png (Pillow, Latin labels: no CJK font is needed) and
files/product-sheet.pdf (reportlab, the built-in STSong-Light CID font: nothing embedded).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw
from reportlab.lib.pagesizes import A5
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

BUNDLE = Path(__file__).parent / "product-basics"
NOODLES = [("NO-2001", "Braised Beef (bag)", "24/case", (196, 40, 28)),
           ("NO-2002", "Braised Beef (cup)", "12/case", (214, 84, 42)),
           ("NO-2003", "Braised Beef 5-pack", "6/case", (160, 30, 20)),
           ("NO-2011", "Pickled Cabbage (bag)", "24/case", (70, 130, 60)),
           ("NO-2021", "Spicy Beef (bag)", "24/case", (200, 120, 20))]
DRINKS = [("BV-4001", "冰红茶 500ml", "箱(15瓶)", "45.00"),
          ("BV-4004", "低糖冰红茶 500ml", "箱(15瓶)", "48.00"),
          ("BV-4011", "绿茶 500ml", "箱(15瓶)", "45.00"),
          ("BV-4021", "茉莉清茶 500ml", "箱(15瓶)", "45.00"),
          ("BV-4031", "天然矿泉水 550ml", "箱(24瓶)", "36.00"),
          ("BV-4042", "饮用纯净水 5L", "箱(4桶)", "26.00")]


def lineup_png(path: Path) -> None:
    """A shelf-style card of the five best-selling noodles."""
    img = Image.new("RGB", (640, 360), (250, 246, 238))
    d = ImageDraw.Draw(img)
    d.text((24, 18), "Noodle line-up: the five best sellers", fill=(40, 40, 40))
    for n, (sku, name, pack, colour) in enumerate(NOODLES):
        x = 24 + n * 122
        d.rounded_rectangle((x, 60, x + 110, 300), radius=12, fill=colour)
        d.ellipse((x + 25, 90, x + 85, 150), fill=(255, 236, 200))
        d.text((x + 10, 180), sku, fill="white")
        for k, word in enumerate(name.split(" ", 1)):
            d.text((x + 10, 205 + 18 * k), word, fill="white")
        d.text((x + 10, 270), pack, fill="white")
    d.text((24, 320), "Eye level: best sellers. Cups above bags. Keep one brand block.",
           fill=(90, 90, 90))
    img.quantize(colors=32).save(path, optimize=True)


def sheet_pdf(path: Path) -> None:
    """A one-page drinks sheet: code, name, pack, list price."""
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path), pagesize=A5, invariant=True)
    c.setTitle("饮料产品资料卡")
    width, height = A5
    c.setFont("STSong-Light", 16)
    c.drawString(40, height - 60, "饮料与包装水 · 产品资料卡")
    c.setFont("STSong-Light", 10)
    y = height - 100
    for row in [("编码", "品名", "包装", "箱价(元)"), *DRINKS]:
        for x, cell in zip((40, 110, 230, 320), row, strict=True):
            c.drawString(x, y, cell)
        y -= 22
    c.drawString(40, y - 20, "冰红茶系列参加“买十送一”活动，以当期活动为准。")
    c.showPage()
    c.save()


if __name__ == "__main__":
    lineup_png(BUNDLE / "images" / "noodle-lineup.png")
    sheet_pdf(BUNDLE / "files" / "product-sheet.pdf")
