"""Writes the JPEG test fixtures of Tests/PAGFormatsTests/Fixtures (run with Pillow from PyPI,
outside the repo: python scripts/jpeg_fixture.py). Each JPEG comes with the PNG of the same
pixels, so the tests compare pag's JPEG decoder with the lossless original."""
import os
from PIL import Image

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "PAGFormatsTests", "Fixtures")
os.makedirs(out, exist_ok=True)
w, h = 48, 40
rgb = Image.new("RGB", (w, h))
rgb.putdata([(int(255 * x / (w - 1)), int(255 * y / (h - 1)), 128) for y in range(h) for x in range(w)])
rgb.save(os.path.join(out, "ramp.png"))
rgb.save(os.path.join(out, "ramp.jpg"), quality=95)
gray = rgb.convert("L")
gray.save(os.path.join(out, "ramp-gray.png"))
gray.save(os.path.join(out, "ramp-gray-progressive.jpg"), quality=95, progressive=True)
