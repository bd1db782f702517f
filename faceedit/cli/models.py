"""``faceedit models`` and ``faceedit download``: the models shipped with faceedit, and
the official checkpoints and data.

The official route is one command: ``faceedit download lt-ffhq-e4e`` (or ``lt-ffhq-psp``)
fetches the encoder with its FFHQ decoder, the released latent transformers and the
latent classifier, and assembles them into a bundle that ``faceedit edit`` then uses
without ``--model``. The AttGAN release has no direct link: ``faceedit download
attgan-384-hq --from FOLDER`` takes in the folder downloaded by hand."""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_quiet


def register(commands: Commands) -> None:
    p = commands.add(
        "models",
        "list the models shipped with faceedit and the known official checkpoints, "
        "bundles and data, with what is downloaded",
        run_models,
        description=(
            "List every model faceedit knows by name: the shipped ones, then the official "
            "releases with their state in the cache, URL, licence and loader. The bundles "
            "lt-ffhq-e4e and lt-ffhq-psp name their parts: `faceedit download lt-ffhq-e4e` "
            "fetches the missing ones and assembles the bundle that `faceedit edit` uses "
            "without --model."
        ),
    )
    p.add_argument(
        "--cache-dir", default=None, help="cache (default $FACEEDIT_CACHE or ~/.cache/faceedit)"
    )
    p.add_argument(
        "--lineage",
        metavar="MODEL",
        help="print what trained, labelled, hardened or selected MODEL (a name or path) "
        "instead of the list",
    )
    p = commands.add(
        "download",
        "download an official checkpoint or bundle into the cache, resumable, verified and "
        "validated",
        run_download,
        description=(
            "Download a model listed by `faceedit models` into the cache: resumable (run "
            "the same command again after an interruption), checked against its size and "
            "SHA-256, and loaded before it appears. A bundle (lt-ffhq-e4e, lt-ffhq-psp) "
            "downloads each missing part and assembles them: `faceedit download "
            "lt-ffhq-e4e` is all `faceedit edit photo.jpg --attr Smiling=1` needs. An "
            "entry without a direct link (attgan-384-hq, attgan-128) is taken in from the "
            "folder downloaded by hand: faceedit download attgan-384-hq --from FOLDER."
        ),
    )
    p.add_argument("name", help="a name from `faceedit models`, e.g. lt-ffhq-e4e")
    p.add_argument(
        "--from",
        dest="source",
        metavar="FOLDER",
        help="entries without a direct link (attgan-384-hq, attgan-128): the release folder "
        "downloaded by hand (setting.txt + checkpoint/weights.N.pth), or the folder holding it",
    )
    p.add_argument(
        "--cache-dir", default=None, help="cache (default $FACEEDIT_CACHE or ~/.cache/faceedit)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    p.add_argument(
        "--no-validate", action="store_true", help="skip loading the file after download"
    )
    add_quiet(p, help="no progress bar")


def run_models(args: argparse.Namespace) -> int:
    if args.lineage:
        return _print_lineage(args.lineage)
    from faceedit.hub import catalogue
    from faceedit.registry import cache_dir, entries, format_size

    # one catalogue: shipped models load by name with no download (faceedit.load,
    # --model NAME); the official releases once `faceedit download NAME` has fetched them
    named = catalogue(args.cache_dir)
    downloads = entries()
    shipped = [e for e in named.values() if e.origin == "shipped"]
    print(f"shipped with faceedit ({len(shipped)}):")
    for e in shipped:
        print(f"  {e.name}  [{e.description.removeprefix('shipped ')}] {e.path}")
    print()
    print(f"cache: {cache_dir(args.cache_dir)}")
    for e in named.values():
        if e.origin == "shipped":
            continue
        entry = downloads[e.name]
        state = "downloaded" if e.path else ("manual download" if entry.kind == "manual" else "")
        print(f"\n{entry.name}  [{state or 'not downloaded'}]")
        print(f"  {entry.description}")
        if entry.kind == "bundle":
            parts = ", ".join(
                f"{name} ({'downloaded' if named.get(name) and named[name].path else 'missing'})"
                for name in entry.part_names
            )
            print(f"  parts:   {parts}")
            print(f"  get it:  faceedit download {entry.name}")
        else:
            print(f"  file:    {entry.filename} ({format_size(entry.size)})")
            print(f"  url:     {entry.url}")
        if entry.kind == "manual":
            print(
                f"  get it:  download the folder, then faceedit download {entry.name} --from FOLDER"
            )
        print(f"  source:  {entry.source}")
        print(f"  licence: {entry.licence}")
        print(f"  loads:   {entry.loads_as}" + (f" (preset {e.preset})" if e.preset else ""))
    return 0


def _print_lineage(model: str) -> int:
    from faceedit.lineage import describe, lineage_of

    entries = lineage_of(model)
    print(f"{model}: {len(entries)} model(s) and data set(s) in its lineage")
    for e in entries:
        sha = e.get("sha256")
        mark = "" if sha else "  (not on this machine: no fingerprint)"
        print(f"  {describe(e)}{mark}")
    return 0


def _load_bundle(path) -> object:
    """An assembled official bundle must load as the pipeline ``faceedit edit`` builds."""
    from faceedit.editing.latent_pipeline import LatentPipeline

    return LatentPipeline.from_pretrained(path)


def run_download(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.download import download, install_folder

    if args.source is not None:
        path = install_folder(args.name, args.source, cache=args.cache_dir)
    else:
        path = download(
            args.name,
            cache=args.cache_dir,
            progress=not args.quiet,
            timeout=args.timeout,
            validate=not args.no_validate,
            check_bundle=_load_bundle,
        )
    print(f"{args.name}: {path}")
    return 0
