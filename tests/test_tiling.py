"""Tiled inference: halos, alignment and windows against a whole-image run of the same model.

The oracle is the model itself: the numpy backend with fixed random weights (no torch), and
torch modules in float64. Hand-computed values: a stack of ``L`` 3x3 convolutions with
padding 1 has a field of ``2L + 1`` pixels, so an exact tile needs ``L`` pixels on each side;
three valid 3x3 convolutions of stride 2 have a field of 15 pixels and a jump of 8, so
``c`` output units need ``8 (c - 1) + 15`` input pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa

# a two-level U-Net with free channel counts: max-pool down, transposed convolution up, concat
UNET = (
    "conv3p1*2,cat(id|maxpool2s2,conv3p1*2,cat(id|maxpool2s2,conv3p1*2,tconv2s2),conv3p1,"
    "tconv2s2),conv3p1,conv1"
)


def stitched_equals_whole(net, image, tile, in_channels=1):
    """Run the windows by hand: every output unit written once, each equal to the whole run."""
    rn = rfa.RandomNetwork(net, rng=3, in_channels=in_channels)
    x = np.random.default_rng(5).standard_normal((2, in_channels, *image))
    whole = rn(x)
    t = rfa.tiling(net, tile)
    out = np.full(whole.shape, np.nan)
    written = np.zeros(whole.shape[2:], dtype=int)
    for in_sl, out_sl, keep_sl in t.windows(image):
        size = tuple(s.stop - s.start for s in in_sl)
        assert all(n <= max(tl, m) for n, tl, m in zip(size, t.tile, image))
        y = rn(x[(..., *in_sl)])
        out[(..., *out_sl)] = y[(..., *keep_sl)]
        written[out_sl] += 1
    assert (written == 1).all()
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-11)
    np.testing.assert_allclose(rfa.tiled(rn, x, tile), whole, rtol=0, atol=1e-11)
    return t


def test_hand_computed_halo_and_step():
    t = rfa.tiling("conv3p1*4", 64)
    assert t.halo == ((4, 4), (4, 4)) and t.alignment == (1, 1)
    assert t.step == (56, 56) and t.core == (56, 56) and t.window == (64, 64)
    assert t.efficiency == pytest.approx((56 / 64) ** 2)
    valid = rfa.tiling("conv3s2*3", (40,))
    # four units need 8 * 3 + 15 = 39 pixels, five would need 47
    assert valid.core == (4,) and valid.window == (39,) and valid.step == (32,)
    assert valid.alignment == (8,) and valid.efficiency == 1.0


def test_alignment_counts_the_deepest_level_of_a_unet():
    t = rfa.tiling(UNET, 64)
    assert t.alignment == (4, 4) and t.output_jump == (1, 1)
    assert all(a % 4 == 0 for a in t.step)


@pytest.mark.parametrize(
    ("net", "image", "tile"),
    [
        ("conv3p1,conv3s2p1,conv3p1", (70, 53), 24),  # strided output
        ("conv3p1d2:reflect*2,conv3p1:replicate,conv3p1d3:reflect", (61, 47), 29),
        ("conv3s2*2,conv3", (77, 69), 30),  # valid: output smaller, offsets
        ("conv3p1,tconv3s2p1,conv3p1", (33, 29), 12),  # output finer than the input
        (UNET, (100, 76), 48),  # runnable sizes: multiples of 4
        ("conv5p2:reflect,maxpool3s2p1,res(conv3p1,conv3p1),conv3s2p1", (90, 41), 40),
    ],
)
def test_stitched_output_equals_whole_image(net, image, tile):
    stitched_equals_whole(net, image, tile)


def test_one_and_three_dimensional_networks():
    t = stitched_equals_whole(rfa.Network([rfa.Conv((5,), padding=2), rfa.Pool((2,))]), (101,), 25)
    assert t.alignment == (2,)
    stitched_equals_whole(
        rfa.Network([rfa.Conv((3, 3, 3), padding=1), rfa.Conv((3, 3, 3), stride=2, padding=1)]),
        (19, 14, 11),
        (10, 9, 8),
    )


def test_unet_windows_are_runnable_and_border_windows_move_inward():
    t = rfa.tiling(UNET, 48)
    for in_sl, _, _ in t.windows((100, 76)):
        for s in in_sl:
            assert s.start % 4 == 0 and (s.stop - s.start) % 4 == 0
    border = [w for w in t.windows((100, 76)) if w[0][0].stop == 100]
    assert border and all(w[0][0].stop - w[0][0].start in (48, 44, 40, 36) for w in border)


def test_halo_is_minimal():
    """One input pixel less after the kept span, or the origin one alignment later, changes
    a kept unit (generic random weights)."""
    for net, tile in [("conv3p1*3,conv3s2p1,conv3p1", 40), (UNET, 56), ("conv3s2*2,conv3", 30)]:
        rn = rfa.RandomNetwork(net, rng=1)
        t = rfa.tiling(net, (tile,) * 2)
        image = (4 * tile, 4 * tile)
        x = np.random.default_rng(2).standard_normal((1, 1, *image))
        interior = [
            w for w in t.windows(image)
            if w[0][0].start > 0 and w[0][0].stop < image[0]
        ]  # fmt: skip
        in_sl, _, keep_sl = interior[0]
        base = rn(x[(..., *in_sl)])[(..., *keep_sl)]
        a, b = in_sl[0].start, in_sl[0].stop
        a_align = t.alignment[0]
        checked = 0
        for cut in (slice(a, b - 1), slice(a + a_align, b)):
            try:
                y = rn(x[(..., cut, in_sl[1])])
            except ValueError:  # a size the U-Net refuses: then it cannot be smaller either
                continue
            shift = (cut.start - a) // a_align * (a_align // int(t.output_jump[0]))
            rows = slice(keep_sl[0].start - shift, keep_sl[0].stop - shift)
            if rows.start < 0 or rows.stop > y.shape[2]:
                checked += 1  # the smaller window no longer computes a kept unit at all
                continue
            assert not np.allclose(y[:, :, rows, keep_sl[1]], base, rtol=0, atol=1e-12), (
                net,
                cut,
            )
            checked += 1
        assert checked >= 1, net


def test_image_smaller_than_a_tile_is_one_window():
    t = rfa.tiling("conv3p1*2", 64)
    (only,) = t.windows((30, 20))
    assert only == ((slice(0, 30), slice(0, 20)),) * 3


def test_bad_input():
    with pytest.raises(ValueError, match=r"smallest tile that keeps one output step is 9"):
        rfa.tiling("conv3p1*4", 8)
    with pytest.raises(ValueError, match=r"`tile` sizes must be >= 1"):
        rfa.tiling("conv3p1", 0)
    with pytest.raises(ValueError, match=r"`tile` sizes must be >= 1"):
        rfa.tiling("conv3p1", (16, -2))
    with pytest.raises(TypeError, match=r"`tile` must contain integers"):
        rfa.tiling("conv3p1", 2.5)
    with pytest.raises(ValueError, match=r"`context` must be"):
        rfa.tiling("conv3p1", 16, context="near")
    with pytest.raises(ValueError, match=r"no spatial layout"):
        rfa.tiling("conv3,fc10", 16)
    with pytest.raises(ValueError, match=r"`image_shape` sizes must be >= 1"):
        rfa.tiling("conv3p1", 16).windows((0, 5))


def test_global_context_is_named_and_refused_unless_local():
    net = "conv3p1,mul(id|gap),conv3p1"
    t = rfa.tiling(net, 32)
    assert not t.exact and len(t.global_layers) == 1
    assert t.global_layers[0] == "layer 2.branch2.1 (gap) reads the whole map"
    assert t.halo == ((2, 2), (2, 2))  # the local field: two 3x3 convolutions
    with pytest.raises(ValueError, match=r"not exact under tiling: .*gap"):
        rfa.tiled(net, np.zeros((1, 1, 80, 80)), 32)
    with pytest.raises(ValueError, match=r"no halo makes tiles exact"):
        rfa.tiling(net, 32, context="global")
    rn = rfa.RandomNetwork(net, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 1, 80, 80))
    with pytest.warns(rfa.TilingWarning, match="differ"):
        y = rfa.tiled(rn, x, 32, context="local")
    deviation = np.abs(y - rn(x)).max()
    assert deviation > 1e-6  # the gate's mean differs per window: measured, not hidden
    print(f"gate network tiled locally: largest deviation {deviation:.3g}")


def test_to_dict_and_table():
    t = rfa.tiling("conv3p1*4", 64)
    d = t.to_dict((1000, 700))
    assert d["halo"] == [[4, 4], [4, 4]] and d["exact"] is True
    # ceil(1000 / 56) * ceil(700 / 56) windows
    assert d["windows"] == 18 * 13 and d["output_shape"] == [1000, 700]
    text = t.table((1000, 700))
    assert "4+4" in text and "234 windows" in text


def test_overlap_baselines_show_seams():
    rn = rfa.RandomNetwork("conv3p1*6,conv3s2p1", rng=0)
    x = np.random.default_rng(0).standard_normal((1, 1, 90, 90))
    whole = rn(x)
    for overlap in (0.0, 0.1):
        y = rfa.tiled(rn, x, 32, overlap=overlap)
        assert y.shape == whole.shape and np.abs(y - whole).max() > 1e-3
    with pytest.raises(ValueError, match=r"`overlap` must be"):
        rfa.tiled(rn, x, 32, overlap=1.5)


def test_dask_unet_and_strided_trunk():
    import dask  # the test extra installs it; the library imports it only on use
    import dask.array as da

    for net, image, tile in [
        (UNET, (100, 76), 48),
        ("conv7s2p3,maxpool3s2p1,conv3p1", (90, 70), 40),
    ]:
        rn = rfa.RandomNetwork(net, rng=2)
        x = np.random.default_rng(4).standard_normal((1, 1, *image))
        lazy = rfa.tiled(rn, da.from_array(x, chunks=(1, 1, 32, 32)), tile)
        assert isinstance(lazy, da.Array)
        with dask.config.set(scheduler="synchronous"):
            got = lazy.compute()
        np.testing.assert_allclose(got, rn(x), rtol=0, atol=1e-11)


def test_cli_table_json_and_errors(tmp_path):
    import json

    from click.testing import CliRunner

    from rfanalysis.cli import main

    out = tmp_path / "t.json"
    result = CliRunner().invoke(
        main, ["tiling", "conv3p1*4", "--tile", "64", "--image", "1000,700", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "4+4" in result.output and "234 windows" in result.output
    data = json.loads(out.read_text())
    assert data["halo"] == [[4, 4], [4, 4]] and data["windows"] == 234
    bad = tmp_path / "bad.json"
    small = CliRunner().invoke(main, ["tiling", "conv3p1*4", "--tile", "8", "-o", str(bad)])
    assert small.exit_code == 2 and not bad.exists()
    assert small.output.strip().splitlines() == [
        "Error: `tile` 8 along axis 0 is smaller than the receptive field needs: the smallest "
        "tile that keeps one output step is 9"
    ]
    zero = CliRunner().invoke(main, ["tiling", "conv3p1", "--tile", "0"])
    assert zero.exit_code == 2 and len(zero.output.strip().splitlines()) == 1


def test_dask_map_overlap_blocks_are_the_windows():
    """Tiles much larger than the field: map_overlap with the halo as depth."""
    import dask  # the test extra installs it; the library imports it only on use
    import dask.array as da

    net, image, tile = "conv3p1,conv3s2p1,conv3p1,up2,conv3p1", (150, 131), 48
    t = rfa.tiling(net, tile)
    args = t.map_overlap_args(image)
    assert args["fits"] and args["depth"][0] == t.halo[0]
    assert all(sum(c) == n for c, n in zip(args["chunks"], image))
    assert all(c % t.alignment[0] == 0 for c in args["chunks"][0][1:-1])
    rn = rfa.RandomNetwork(net, rng=2)
    x = np.random.default_rng(4).standard_normal((2, 1, *image))
    lazy = rfa.tiled(rn, da.from_array(x, chunks=(1, 1, 50, 50)), tile)
    with dask.config.set(scheduler="synchronous"):
        got = lazy.compute()
    np.testing.assert_allclose(got, rn(x), rtol=0, atol=1e-11)


def test_attention_is_named_and_its_deviation_measured():
    net = rfa.Network([rfa.Conv(3, padding=1), rfa.Attention(), rfa.Conv(3, padding=1)])
    t = rfa.tiling(net, 24)
    assert not t.exact
    assert t.global_layers == ("layer 2 (attn) global attention reads the whole map",)
    assert t.halo == ((2, 2), (2, 2))  # local: the attention reads its own token only
    rn = rfa.RandomNetwork(net, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 1, 50, 40))
    with pytest.warns(rfa.TilingWarning, match="global attention"):
        y = rfa.tiled(rn, x, 24, context="local")
    assert np.abs(y - rn(x)).max() > 1e-6
    shifted = rfa.tiling([rfa.Conv(3, padding=1), rfa.Attention(4, 2)], 24)
    assert shifted.global_layers == (
        "layer 2 (attn4x4s2x2) shifted-window attention: its mask depends on where the map ends",
    )


def test_windowed_attention_keeps_its_partition():
    """Windows of 4 tokens after a stride-2 layer: origins on multiples of 8 pixels."""
    net = rfa.Network([rfa.Conv(3, stride=2, padding=1), rfa.Attention(4), rfa.Conv(3, padding=1)])
    t = stitched_equals_whole(net, (70, 45), 40)
    assert t.exact and t.alignment == (8, 8)


def test_tiled_bad_input():
    rn = rfa.RandomNetwork("conv3p1", rng=0)
    x = np.zeros((1, 1, 40, 40))
    with pytest.raises(TypeError, match=r"`tile` must contain integers"):
        rfa.tiled(rn, x, 2.5)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer"):
        rfa.tiled(rn, x, 16, batch_size=0)
    with pytest.raises(ValueError, match=r"`x` must be an array of shape"):
        rfa.tiled(rn, np.zeros(5), 16)
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch, 1, \*spatial\)"):
        rn(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"`weights` must be one of"):
        rfa.RandomNetwork("conv3p1", weights="zeros")


def test_random_chains_stitch_exactly():
    """Random stacks of windows (kernel, stride, padding, dilation, padding mode, pools,
    upsampling) on random image sizes: every output unit written once, equal to the whole
    run."""
    gen = np.random.default_rng(7)  # fixed: the same 16 networks every run
    checked = 0
    for _ in range(16):
        layers = []
        for _ in range(gen.integers(2, 5)):
            kind = gen.choice(["conv", "conv", "conv", "maxpool", "up", "tconv"])
            if kind == "up":
                layers.append("up2")
                continue
            k = int(gen.choice([1, 2, 3, 5]))
            s = int(gen.choice([1, 1, 2]))
            if kind == "tconv":
                layers.append(f"tconv{max(k, 2)}s2")
                continue
            d = int(gen.choice([1, 1, 2])) if kind == "conv" else 1
            p = int(gen.integers(0, (d * (k - 1)) // 2 + 1))
            mode = gen.choice(["", ":reflect", ":replicate"]) if kind == "conv" and p else ""
            layers.append(f"{kind}{k}s{s}p{p}" + (f"d{d}" if d > 1 else "") + mode)
        spec = ",".join(layers)
        image = (int(gen.integers(40, 90)), int(gen.integers(40, 90)))
        try:
            rfa.tiling(spec, 8)
            tile = 8
        except ValueError as exc:
            if "smallest tile" not in str(exc):
                continue  # a stack too deep for these images
            tile = int(str(exc).rsplit(" ", 1)[1]) + int(gen.integers(0, 12))
        try:
            rfa.output_shape(spec, image)
        except ValueError:
            continue
        stitched_equals_whole(spec, image, tile)
        checked += 1
    assert checked >= 12


def test_progress_bar_counts_the_windows(capsys):
    rn = rfa.RandomNetwork("conv3p1*2", rng=0)
    rfa.tiled(rn, np.zeros((1, 1, 30, 30)), 16, progress=True)
    err = capsys.readouterr().err
    assert "tiles [" in err and "9 windows" in err  # 3 x 3 windows
