"""One CLI dialect: the argparse tree of ``faceedit`` is walked, so a new verb that spells
an output, a device or the progress switch differently fails here; deprecated spellings
print their one-line notice and still parse to the new option."""

from __future__ import annotations

import argparse

import pytest

from faceedit.cli import build_parser, main
from faceedit.cli.common import device_name

# verbs that write nothing a user names: the cache (--cache-dir), a listing, a server
NO_OUTPUT = {"models", "download", "serve"}
# verbs that run no network
NO_MODEL = {"convert", "stats", "models", "download", "data avatars", "train directions"}
# verbs that show no progress bar
NO_PROGRESS = {"convert", "stats", "models", "serve", "train directions"}
NO_PROGRESS |= {"edit-latent", "attgan-edit"}  # deprecated: their replacement has it
# verbs whose device defaults to their YAML config's (itself auto)
CONFIG_DEVICE = {"train attgan", "train stylegan2"}


def _verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(name, parser, listed)`` for every runnable verb, hidden (deprecated) ones too."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _verbs(child, (*path, name))


VERBS = dict(_verbs(build_parser()))


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return parser._option_string_actions.get(flag)


def test_the_tree_has_every_known_verb() -> None:
    # a verb renamed or lost would silently drop out of the checks below
    for verb in ("edit", "video", "demo", "generate", "invert", "serve", "eval avatars",
                 "eval latent", "eval attgan", "train classifier", "train transformer",
                 "train attgan", "train stylegan2", "train encoder", "train oracle",
                 "data avatars", "data latents", "edit-latent", "attgan-edit"):  # fmt: skip
        assert verb in VERBS


@pytest.mark.parametrize("verb", sorted(set(VERBS) - NO_OUTPUT))
def test_every_verb_that_writes_takes_dash_o_output(verb: str) -> None:
    parser = VERBS[verb]
    action = _action(parser, "--output")
    assert action is not None, verb
    assert action.option_strings == ["-o", "--output"] and action.dest == "output"
    assert _action(parser, "-o") is action


@pytest.mark.parametrize("verb", sorted(set(VERBS) - NO_MODEL))
def test_every_verb_that_runs_a_model_takes_device(verb: str) -> None:
    action = _action(VERBS[verb], "--device")
    assert action is not None, verb
    assert action.type is device_name
    assert action.default == (None if verb in CONFIG_DEVICE else "auto")


def test_config_devices_default_to_auto() -> None:
    from faceedit.train.attgan import AttGANTrainConfig
    from faceedit.train.stylegan2 import StyleGAN2TrainConfig

    fields = {f.name: f.default for f in AttGANTrainConfig.__dataclass_fields__.values()}
    assert fields["device"] == "auto"
    fields = {f.name: f.default for f in StyleGAN2TrainConfig.__dataclass_fields__.values()}
    assert fields["device"] == "auto"


@pytest.mark.parametrize("verb", sorted(set(VERBS) - NO_PROGRESS))
def test_every_verb_that_shows_progress_takes_quiet(verb: str) -> None:
    action = _action(VERBS[verb], "--quiet")
    assert action is not None, verb
    assert action.option_strings == ["-q", "--quiet"] and action.dest == "quiet"
    assert action.default is False and action.const is True


def test_no_verb_keeps_an_old_spelling_visible() -> None:
    old = {"--out", "--out-dir", "--no-progress", "--n-styles"}
    for verb, parser in VERBS.items():
        visible = {s for a in parser._actions for s in a.option_strings}
        assert not visible & old, (verb, visible & old)
        help_text = parser.format_help()
        assert "--out " not in help_text and "--no-progress" not in help_text, verb


@pytest.mark.parametrize("verb", [v for v in VERBS if _action(VERBS[v], "--strengths")])
def test_strengths_is_a_list_of_numbers_wherever_it_is_shown(verb: str) -> None:
    action = _action(VERBS[verb], "--strengths")
    if "--strengths" not in action.option_strings:
        pytest.skip(f"{verb}: --strengths is a deprecated alias of {action.option_strings}")
    assert action.type is None and action.nargs is None  # parsed by parse_strengths
    assert "LO,HI" not in (action.metavar or "") and "number of" not in (action.help or "")


def test_device_values_are_checked_when_parsing(capsys) -> None:
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert device_name(good) == good
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["generate", "--model", "g", "-o", "x.png", "--device", "gpu"])
    assert e.value.code == 2
    assert "--device: 'gpu': expected auto" in capsys.readouterr().err


# (argv without the old option, old option and value, dest, parsed value, the new spelling)
DEPRECATED = [
    (["train", "directions", "--codes", "c", "--labels", "l"], ["--out", "d.npz"], "output",
     "d.npz", "-o/--output"),
    (["eval", "avatars", "--method", "latent", "--model", "m"], ["--out", "d"], "output", "d",
     "-o/--output"),
    (["data", "avatars"], ["--out", "d"], "output", "d", "-o/--output"),
    (["train", "attgan", "--config", "c.yaml"], ["--out-dir", "r"], "output", "r", "-o/--output"),
    (["train", "encoder", "--generator", "g", "--data", "d", "-o", "r"], ["--no-progress"],
     "quiet", True, "-q/--quiet"),
    (["train", "classifier", "--codes", "c", "--labels", "l", "-o", "r"], ["--no-progress"],
     "quiet", True, "-q/--quiet"),
    (["data", "latents", "-o", "r"], ["--strengths", "0.5,2"], "strength_range", "0.5,2",
     "--strength-range"),
    (["data", "avatars", "-o", "r"], ["--split", "0.5,0.25,0.25"], "split", "0.5,0.25,0.25",
     "--split-fractions"),
    (["eval", "attgan", "--model", "m", "-o", "r"], ["--data", "custom"], "data", "custom",
     "--data-layout"),
    (["eval", "latent", "--codes", "c", "--classifier", "k", "--attrs", "all", "-o", "r"],
     ["--model", "g"], "generator", "g", "--generator"),
    (["edit", "a.png", "-o", "b.png"], ["--n-styles", "3"], "num_styles", 3, "--num-styles"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "old", "dest", "value", "new"), DEPRECATED)
def test_deprecated_spellings_print_the_notice_and_still_work(
    argv, old, dest, value, new, capsys
) -> None:
    args = build_parser().parse_args([*argv, *old])
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err == f"faceedit: {old[0]} is deprecated, use {new}\n"
    # the new spelling parses to the same value, silently
    args = build_parser().parse_args([*argv, new.split("/")[-1], *old[1:]])
    assert getattr(args, dest) == value
    assert capsys.readouterr().err == ""


def test_a_required_output_is_met_by_its_old_spelling(capsys) -> None:
    argv = ["train", "directions", "--codes", "c", "--labels", "l"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "required: -o/--output" in capsys.readouterr().err
    assert build_parser().parse_args([*argv, "--out", "x.npz"]).output == "x.npz"


def test_deprecated_verbs_are_hidden_and_say_so_when_run(tmp_path, capsys) -> None:
    top = build_parser().format_help()
    assert "edit-latent" not in top and "attgan-edit" not in top
    missing = str(tmp_path / "none.npy")
    assert main(["edit-latent", missing, "--attr", "Smiling=1", "-o", str(tmp_path / "x.npy")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("faceedit: edit-latent is deprecated, use faceedit edit CODES.npy")
    assert len(lines) == 2 and lines[1].startswith("faceedit: error:")


def test_top_level_help_lists_every_verb_with_a_one_line_help(capsys) -> None:
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {a.dest: a.help for a in top._choices_actions}
    assert set(listed) == set(top.choices) - {"edit-latent", "attgan-edit"}
    help_text = parser.format_help()
    for name, text in listed.items():
        assert text and "\n" not in text, name
        assert f"    {name} " in help_text, name
    for group in ("train", "eval", "data"):
        sub = next(
            a for a in top.choices[group]._actions if isinstance(a, argparse._SubParsersAction)
        )
        for action in sub._choices_actions:
            assert action.help and "\n" not in action.help, (group, action.dest)
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in listed)
    # try it, edit, then models, then training
    order = [a.dest for a in top._choices_actions]
    assert order.index("demo") < order.index("edit") < order.index("models") < order.index("train")
