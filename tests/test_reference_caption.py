"""tools/reference-caption (numpy, torch and Pillow, written from the README)
against `caption --beam 1 --json --attention`: the same captions, finished
flags, logprob within 1e-4, alpha and beta within 1e-5.

  python3 tests/test_reference_caption.py CAPTION_EXECUTABLE

Inputs: the bundled examples as they are (four PNGs, one JPEG: captions
only, since Pillow's JPEG decoder and stb_image's differ by a few levels),
then PNGs made here that both read to the same pixels: the JPEG's pixels as
Pillow decodes them, an image with alpha, an enlargement, a 96 x 96 image
(no scaling, still filtered), one enlarged one way and shrunk the other; two
captions cut by --max-length; and the fixture models of the tied output
layer, the grid encoder and residual CNN blocks on two photos. Exits 77 (skipped) without numpy, torch
or Pillow.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch  # noqa: F401 (the reference script needs it)
    from PIL import Image
except ImportError as missing:
    print(f"skipped: {missing} (Debian: apt install python3-numpy python3-torch python3-pil)")
    sys.exit(77)

TESTS = os.environ.get("CAPTION_TEST_DATA", os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(TESTS, "..")
MODEL = os.path.join(ROOT, "assets", "lstm-model.safetensors")
REFERENCE = os.path.join(ROOT, "tools", "reference-caption")
EXAMPLES = os.path.join(ROOT, "assets", "examples")


def make_pngs(folder):
    """PNGs that exercise the other preprocessing paths."""
    chelsea = Image.open(os.path.join(EXAMPLES, "chelsea.png")).convert("RGB")
    rocket = Image.open(os.path.join(EXAMPLES, "rocket.jpg")).convert("RGB")
    alpha = np.tile(np.linspace(0, 255, chelsea.width).astype(np.uint8), (chelsea.height, 1))
    translucent = chelsea.copy()
    translucent.putalpha(Image.fromarray(alpha))
    made = {
        "rocket-as-decoded.png": rocket,
        "chelsea-alpha.png": translucent,
        "chelsea-small.png": chelsea.resize((61, 40), Image.NEAREST),
        "chelsea-96.png": chelsea.resize((96, 96), Image.NEAREST),
        "chelsea-narrow.png": chelsea.resize((50, 300), Image.NEAREST),
    }
    for name, image in made.items():
        image.save(os.path.join(folder, name))
    return [os.path.join(folder, name) for name in made]


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines()]


def largest_difference(a, b):
    return float(np.max(np.abs(np.array(a, dtype=float) - np.array(b, dtype=float)))) if a else 0.0


def compare(c, p, maps):
    """Problems (empty if none) between one image's two JSON objects."""
    name = os.path.basename(c["path"])
    if c["caption"] != p["caption"] or c["finished"] != p["finished"]:
        return [f"{name}: caption \"{c['caption']}\" (finished {c['finished']}) vs reference "
                f"\"{p['caption']}\" (finished {p['finished']})"]
    if not maps:
        return []
    gaps = {"logprob": abs(c["logprob"] - p["logprob"]),
            "alpha": largest_difference(c["attention"]["alpha"], p["attention"]["alpha"]),
            "beta": largest_difference(c["attention"]["beta"], p["attention"]["beta"])}
    limits = {"logprob": 1e-4, "alpha": 1e-5, "beta": 1e-5}
    print(f"  {name}: \"{c['caption']}\"; |d logprob| {gaps['logprob']:.1e}, |d alpha| {gaps['alpha']:.1e}, "
          f"|d beta| {gaps['beta']:.1e}")
    return [f"{name}: {key} differs by {gaps[key]:.2e} (limit {limits[key]:.0e})"
            for key in gaps if gaps[key] > limits[key]]


def check(caption_exe, images, extra, maps, model=MODEL):
    common = ["--model", model, "--json"] + extra
    ours = run([caption_exe, "--beam", "1", "--attention"] + common + images)
    reference = run([sys.executable, REFERENCE] + common + images)
    if len(ours) != len(images) or len(reference) != len(images):
        return [f"expected {len(images)} results, got {len(ours)} and {len(reference)}"]
    return [problem for c, p in zip(ours, reference) for problem in compare(c, p, maps)]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: test_reference_caption.py CAPTION_EXECUTABLE")
    caption_exe = sys.argv[1]
    examples = sorted(os.path.join(EXAMPLES, f) for f in os.listdir(EXAMPLES) if f.endswith((".png", ".jpg")))
    pngs = [path for path in examples if path.endswith(".png")]
    with tempfile.TemporaryDirectory() as folder:
        made = make_pngs(folder)
        problems = check(caption_exe, [p for p in examples if p not in pngs], [], maps=False)
        problems += check(caption_exe, pngs + made, [], maps=True)
        problems += check(caption_exe, pngs[:2], ["--max-length", "4"], maps=True)
        # The architectures the bundled model lacks, with the PyTorch fixtures' random weights:
        # a tied output layer, a grid encoder in front of the LSTM, residual CNN blocks.
        for variant in ("tied", "grid", "residual"):
            print(f"fixture model {variant}:")
            fixture = os.path.join(TESTS, "fixtures", f"sat_{variant}_model.safetensors")
            problems += check(caption_exe, pngs[:2], ["--max-length", "8"], maps=True, model=fixture)
    for problem in problems:
        print("FAIL:", problem)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
