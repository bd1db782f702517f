"""``faceedit models`` and ``faceedit download``: the models shipped with faceedit, and
the official checkpoints and data."""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_quiet


def register(commands: Commands) -> None:
    p = commands.add(
        "models",
        "list the models shipped with faceedit and the known official checkpoints and data",
        run_models,
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
        "download an official checkpoint into the cache, resumable, verified and validated",
        run_download,
    )
    p.add_argument("name", help="a name from `faceedit models`")
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
        print(f"  file:    {entry.filename} ({format_size(entry.size)})")
        print(f"  url:     {entry.url}")
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


def run_download(args: argparse.Namespace) -> int:
    from faceedit.checkpoints.download import download

    path = download(
        args.name,
        cache=args.cache_dir,
        progress=not args.quiet,
        timeout=args.timeout,
        validate=not args.no_validate,
    )
    print(f"{args.name}: {path}")
    return 0
