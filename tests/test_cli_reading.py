"""The command line says how it read what it was given, and refuses inputs whose axes cannot
be the network's: an image's channels written as an axis, a zoo model given more axes than
its images have."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rfanalysis.cli import main

from .cli_checks import assert_one_line_error, assert_script_refuses, run_script


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "command", ["coverage", "routes", "blindspots", "geometry", "compare", "shift"]
)
@pytest.mark.parametrize("shape", ["224,224,3", "3,224,224", "64x64x1", "32,32,4"])
def test_channels_given_as_an_axis_are_refused(command, shape, tmp_path):
    image = ",".join(v for v in shape.replace("x", ",").split(",") if int(v) > 4)
    result = run(command, "conv3p1*2", "--input", shape)
    assert_one_line_error(result, "looks like an image's channels, which are not an input axis")
    assert f"write --input {image} for a 2-D image" in result.output
    assert "conv3x3x3" in result.output


@pytest.mark.parametrize("shape", ["16,16,16", "9,9,9", "64,64,16", "5,5,5"])
def test_volumes_and_fixed_3d_networks_are_analysed(shape):
    assert run("coverage", "conv3p1*2", "--input", shape).exit_code == 0
    # 3-D kernels fix the network's axes: a thin last axis is then meant
    assert run("coverage", "conv3x3x3p1", "--input", "224,224,3").exit_code == 0


def test_zoo_models_take_their_own_number_of_axes():
    result = run("coverage", "resnet18:trunk", "--input", "224,224,3")
    assert_one_line_error(
        result, "resnet18:trunk is a 2-D model (standard input 224,224) but the input has 3 axes"
    )
    assert run("coverage", "lenet", "--input", "28,28").exit_code == 0


def test_the_summary_says_how_the_spec_was_read():
    # the typo conv3p1x20 (for conv3p1*20) is one convolution padded 1 by 20
    out = run("coverage", "conv3p1x20", "--input", "32").output.splitlines()
    assert out[1] == "read as: conv 3x3, padding 1x20"
    assert out[2] == (
        "note: layer 1 (conv3p1x20) pads 20 on axis 1 where its window spans 3: units there "
        "read only padding"
    )
    out = run("routes", "conv3p1*20", "--input", "32").output.splitlines()
    assert out[1] == "read as: conv 3x3, padding 1 (x20)"
    assert not out[2].startswith("note")
    out = run("coverage", "conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)", "--input", "64")
    lines = out.output.splitlines()
    read = " ".join(lines[1 : next(i for i, x in enumerate(lines) if x.startswith("max "))])
    assert read == (
        "read as: conv 7x7, stride 2, padding 3; max pool 3x3, stride 2, padding 1; residual "
        "[conv 3x3, padding 1; conv 3x3, padding 1] + [identity]"
    )


@pytest.mark.parametrize(
    ("padding", "words"),
    # "valid" and "full" are numbers once parsed (0, and k - 1 = 2); "same" depends on the size
    [("same", ", padding same"), ("valid", ""), ("full", ", padding 2")],
)
def test_padding_by_name_is_read(padding, words):
    result = run("routes", f"conv3s2p{padding}*2,conv5p2x6", "--input", "32")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == f"read as: conv 3x3, stride 2{words} (x2); conv 5x5, padding 2x6"
    # padding by name never reaches past its window; padding 6 past a 5-wide window does
    assert [x for x in lines if x.startswith("note")] == [
        "note: layer 3 (conv5p2x6) pads 6 on axis 1 where its window spans 5: units there "
        "read only padding"
    ]


def test_named_networks_are_not_spelled_out():
    out = run("coverage", "lenet", "--input", "28").output
    assert "read as" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["coverage", "conv3p1", "--input", "224,224,3"], "looks like an image's channels"),
        (["coverage", "resnet5", "--input", "64"], "did you mean 'resnet50'"),
    ],
)
def test_installed_console_script_refuses(tmp_path, args, message):
    assert_script_refuses(run_script(*args, cwd=tmp_path), message, tmp_path)


def test_installed_console_script_echoes():
    done = run_script("coverage", "conv3p1x20", "--input", "32")
    assert done.returncode == 0
    assert "read as: conv 3x3, padding 1x20" in done.stdout
