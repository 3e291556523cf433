#!/usr/bin/env python3
"""Writes the image fixtures of tests/unit/test_resize_tf.c and tests/unit/test_image_jpeg.c
into tests/fixtures/images/ (run from the repository root, in a development venv with
tensorflow-cpu, pillow, numpy and h5py; the tests themselves need none of them):

    python3 tests/scripts/make_image_fixtures.py

resize_tf.h5 -- TensorFlow's own outputs:
  /resize/<name>: input uint8 [h, w, c] (random pixels, or a hard-edged pattern that makes the
      cubic overshoot), attributes out_h, out_w, kernel ("keyscubic" | "triangle"), and output
      float32 [out_h, out_w, c] = tf.image.resize(input, (out_h, out_w), method=BICUBIC or
      BILINEAR, antialias=True), on the 0..255 scale, unclamped;
  /lsun/<name>: input uint8 [h, w, c], attribute size, and output float32 [size, size, c]:
      the authors' LSUN resize_op before any conversion to uint8 (Poisson_flow datasets.py):
      size != 128: crop_resize's tf.image.resize(BICUBIC, antialias) of the central square
                   cropped with the slice bounds (h - crop) // 2 : (h + crop) // 2;
      size == 128: resize_small (tf.image.resize(antialias), bilinear, on convert_image_dtype's
                   x / 255) then central_crop, times 255.
  Root attributes: tensorflow and numpy versions.
JPEG fixtures, written and decoded by PIL (which decodes with libjpeg-turbo's default
accurate integer IDCT and fancy upsampling, as pfgm_jpeg_read does):
  <name>.jpg and <name>.png = PIL's decode of <name>.jpg (RGB or L) as a PNG, for
  rgb420 (4:2:0, quality 90), rgb444_progressive (4:4:4, progressive), gray, cmyk (PIL writes
  Adobe-inverted CMYK; the PNG is PIL's convert("RGB")), and rgb420_as_gray.png =
  PIL's convert("L") of rgb420.jpg's RGB decode.
  <name>_tf.png for rgb420, rgb444_progressive, gray: TensorFlow's tf.io.decode_jpeg with its
  default settings, which use libjpeg's fast integer IDCT (what tensorflow_datasets decodes
  the authors' LSUN JPEGs with); it differs from the accurate IDCT by a few levels.
"""
import os

import h5py
import numpy as np
import tensorflow as tf
from PIL import Image

OUT = os.path.join("tests", "fixtures", "images")
rng = np.random.default_rng(20261204)


def pattern(h, w, c):
    """Hard edges (black/white blocks of 3 pixels): bicubic overshoots below 0 and above 255."""
    y, x = np.mgrid[0:h, 0:w]
    p = (((y // 3) + (x // 3)) % 2 * 255).astype(np.uint8)
    return np.repeat(p[:, :, None], c, axis=2)


def tf_resize(img, out_h, out_w, kernel):
    method = tf.image.ResizeMethod.BICUBIC if kernel == "keyscubic" else tf.image.ResizeMethod.BILINEAR
    return tf.image.resize(img, (out_h, out_w), method=method, antialias=True).numpy().astype(np.float32)


def lsun_resize_op(img, size):
    h, w = img.shape[0], img.shape[1]
    if size != 128:
        crop = min(h, w)
        sq = img[(h - crop) // 2:(h + crop) // 2, (w - crop) // 2:(w + crop) // 2]
        return tf.image.resize(sq, (size, size), antialias=True,
                               method=tf.image.ResizeMethod.BICUBIC).numpy().astype(np.float32)
    x = tf.image.convert_image_dtype(img, tf.float32)
    ratio = size / min(h, w)
    nh, nw = int(np.round(h * ratio)), int(np.round(w * ratio))  # tf.round: half to even
    x = tf.image.resize(x, [nh, nw], antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = tf.image.crop_to_bounding_box(x, top, left, size, size)
    return (x.numpy() * 255.0).astype(np.float32)


def write_resize(f):
    g = f.create_group("resize")
    cases = [  # name, input, out_h, out_w, kernel
        ("rgb_down_keys", rng.integers(0, 256, (29, 37, 3), dtype=np.uint8), 16, 16, "keyscubic"),
        ("gray_down_keys", rng.integers(0, 256, (20, 20, 1), dtype=np.uint8), 7, 7, "keyscubic"),
        ("rgb_up_keys", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), 17, 23, "keyscubic"),
        ("edges_keys", pattern(32, 32, 1), 9, 9, "keyscubic"),
        ("edges_up_keys", pattern(9, 9, 1), 16, 16, "keyscubic"),
        ("rgb_down_triangle", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), 11, 13, "triangle"),
    ]
    for name, img, oh, ow, kernel in cases:
        d = g.create_group(name)
        d.create_dataset("input", data=img)
        d.create_dataset("output", data=tf_resize(img, oh, ow, kernel))
        d.attrs["out_h"], d.attrs["out_w"], d.attrs["kernel"] = oh, ow, kernel
    g = f.create_group("lsun")
    cases = [  # name, input, size
        ("rgb_wide_16", rng.integers(0, 256, (37, 45, 3), dtype=np.uint8), 16),
        ("rgb_tall_odd_8", rng.integers(0, 256, (30, 21, 3), dtype=np.uint8), 8),
        ("edges_12", pattern(40, 33, 3), 12),
        ("gray_128", rng.integers(0, 256, (133, 150, 1), dtype=np.uint8), 128),
    ]
    for name, img, size in cases:
        d = g.create_group(name)
        d.create_dataset("input", data=img)
        d.create_dataset("output", data=lsun_resize_op(img, size))
        d.attrs["size"] = size


def smooth_rgb(h, w):
    """A smooth colour image with some noise: what JPEG is made for."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 128 + 90 * np.cos((x + y) / 9.0)
    b = 60 + 3 * x + 2 * y
    img = np.stack([r, g, b], axis=2) + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_jpegs():
    rgb = Image.fromarray(smooth_rgb(21, 26), "RGB")
    rgb.save(os.path.join(OUT, "rgb420.jpg"), quality=90, subsampling=2)
    rgb.save(os.path.join(OUT, "rgb444_progressive.jpg"), quality=90, subsampling=0, progressive=True)
    rgb.convert("L").save(os.path.join(OUT, "gray.jpg"), quality=85)
    rgb.convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=90)
    for name in ("rgb420", "rgb444_progressive", "cmyk"):
        with Image.open(os.path.join(OUT, name + ".jpg")) as im:
            im.convert("RGB").save(os.path.join(OUT, name + ".png"))
    with Image.open(os.path.join(OUT, "gray.jpg")) as im:
        assert im.mode == "L"
        im.save(os.path.join(OUT, "gray.png"))
    with Image.open(os.path.join(OUT, "rgb420.jpg")) as im:
        im.convert("RGB").convert("L").save(os.path.join(OUT, "rgb420_as_gray.png"))
    with Image.open(os.path.join(OUT, "cmyk.jpg")) as im:
        assert im.mode == "CMYK"
    for name, ch in (("rgb420", 3), ("rgb444_progressive", 3), ("gray", 1)):
        px = tf.io.decode_jpeg(tf.io.read_file(os.path.join(OUT, name + ".jpg")), channels=ch).numpy()
        Image.fromarray(px[:, :, 0] if ch == 1 else px).save(os.path.join(OUT, name + "_tf.png"))


def main():
    os.makedirs(OUT, exist_ok=True)
    with h5py.File(os.path.join(OUT, "resize_tf.h5"), "w") as f:
        f.attrs["tensorflow"], f.attrs["numpy"] = tf.__version__, np.__version__
        write_resize(f)
    write_jpegs()


if __name__ == "__main__":
    main()
