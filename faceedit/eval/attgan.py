"""AttGAN evaluation (He et al., IEEE TIP 2019, Sec. IV-B): attribute editing accuracy
and reconstruction quality.

- **Editing accuracy** per attribute: every test image has that attribute flipped (the
  release's ``test_int`` strength and conflict rules) and an attribute classifier
  checks whether the edited image shows the target value. The classifier is either one
  given by the user (any AttGAN checkpoint's discriminator head, or a standalone
  :class:`~faceedit.nets.attgan.AttGANDiscriminator`) or the model's own head, which
  is optimistic because the generator was trained against it (the report says which).
- **Reconstruction**: ``G(x, a)`` against ``x``: PSNR and SSIM (Wang et al. 2004,
  Gaussian window 11, sigma 1.5) on images scaled to [0, 1].

Results are written as ``attgan_eval.json``, a Markdown table and a bar chart PNG.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from faceedit.errors import FaceeditError
from faceedit.eval.metrics import psnr, ssim
from faceedit.units import DECIBEL, FRACTION, UNITLESS, with_units


@dataclass
class AttGANEvalReport:
    """Evaluation results: ``accuracy`` per attribute in [0, 1], mean PSNR (dB) and SSIM."""

    attrs: list[str]
    accuracy: dict[str, float]
    mean_accuracy: float
    psnr: float
    ssim: float
    n_images: int
    classifier: str

    def table(self) -> str:
        """A Markdown table of the results."""
        lines = [
            f"AttGAN evaluation on {self.n_images} images (classifier: {self.classifier})",
            "",
            "| attribute | editing accuracy |",
            "| --- | ---: |",
        ]
        lines += [f"| {a} | {100 * self.accuracy[a]:.1f}% |" for a in self.attrs]
        lines += [
            f"| **mean** | **{100 * self.mean_accuracy:.1f}%** |",
            "",
            "| reconstruction | value |",
            "| --- | ---: |",
            f"| PSNR | {self.psnr:.2f} dB |",
            f"| SSIM | {self.ssim:.4f} |",
        ]
        return "\n".join(lines) + "\n"


class _Classifier:
    """Wraps a discriminator head: ``img [N,3,S,S]`` -> logits for the model's attributes."""

    def __init__(self, D: nn.Module, names: Sequence[str], model_names: Sequence[str]) -> None:
        missing = [n for n in model_names if n not in names]
        if missing:
            raise FaceeditError(
                f"the classifier does not know attribute(s) {', '.join(missing)} "
                f"(it has: {', '.join(names)})"
            )
        self.D = D.eval()
        self.cols = [list(names).index(n) for n in model_names]

    @torch.no_grad()
    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        from faceedit.nets.attgan import resize_for

        logits = self.D.classify(resize_for(img, self.D.config.img_size))
        return logits[:, self.cols]


def classifier_from(obj: nn.Module, model_names: Sequence[str]) -> _Classifier:
    """An AttGAN (its D head) or an AttGANDiscriminator as an attribute classifier."""
    from faceedit.nets.attgan import AttGAN, AttGANDiscriminator

    if isinstance(obj, AttGAN):
        if obj.D is None:
            raise FaceeditError("the classifier checkpoint has no discriminator/classifier head")
        return _Classifier(obj.D, obj.attrs, model_names)
    if isinstance(obj, AttGANDiscriminator):
        n = obj.config.n_attrs
        if n != len(model_names):
            raise FaceeditError(
                f"a bare discriminator with {n} outputs cannot be matched to "
                f"{len(model_names)} attributes"
            )
        return _Classifier(obj, list(model_names), model_names)
    raise FaceeditError(f"not an attribute classifier: {type(obj).__name__}")


def evaluate_attgan(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    classifier: nn.Module | None = None,
    batch_size: int = 16,
    max_images: int | None = None,
    test_int: float | None = None,
    progress: bool = True,
) -> AttGANEvalReport:
    """Editing accuracy per attribute and reconstruction PSNR/SSIM.

    Args:
        model: an :class:`~faceedit.nets.attgan.AttGAN`.
        dataset: yields ``(img [3, S, S] in [-1, 1], att {0,1} [n_attrs])`` in the
            model's attribute order.
        classifier: AttGAN or AttGANDiscriminator to judge edits (default: ``model.D``).
    """
    from tqdm.auto import tqdm

    from faceedit.attributes import conflict_rules, flip_targets
    from faceedit.nets.attgan import AttGAN, fast_generate

    if not isinstance(model, AttGAN):
        raise FaceeditError(f"evaluate_attgan needs an AttGAN, got {type(model).__name__}")
    names = list(model.attrs)
    if classifier is None:
        if model.D is None:
            raise FaceeditError(
                "this checkpoint has no classifier head; pass a classifier (--classifier PATH)"
            )
        clf, clf_name = classifier_from(model, names), "the model's own head (optimistic)"
    else:
        clf, clf_name = classifier_from(classifier, names), "given classifier"
    G = model.G.eval()
    device = next(G.parameters()).device  # the data follows the model
    fast = G.inference_copy()
    cfg = G.config
    ti = cfg.test_int if test_int is None else test_int
    rules = conflict_rules(cfg.conflict_rules)
    n_total = len(dataset) if max_images is None else min(len(dataset), max_images)
    if n_total == 0:
        raise FaceeditError("no images to evaluate")
    correct = torch.zeros(len(names))
    psnrs, ssims = [], []
    for start in tqdm(range(0, n_total, batch_size), desc="eval attgan", disable=not progress):
        items = [dataset[i] for i in range(start, min(start + batch_size, n_total))]
        img = torch.stack([x for x, _ in items]).to(device)
        att = torch.stack([a for _, a in items]).float().to(device)
        if att.shape[1] != len(names):
            raise FaceeditError(
                f"the dataset has {att.shape[1]} attributes, the model {len(names)}"
            )
        recon = fast_generate(fast, img, (att * 2 - 1) * cfg.thres_int)
        a01, r01 = (img + 1) / 2, (recon.clamp(-1, 1) + 1) / 2
        psnrs.append(psnr(r01, a01, data_range=1.0))
        ssims.append(ssim(r01, a01, data_range=1.0))
        for i, target in enumerate(flip_targets(att, names, cfg.thres_int, ti, rules)):
            edited = fast_generate(fast, img, target)
            pred = (clf(edited)[:, i] > 0).float()
            correct[i] += (pred == 1 - att[:, i]).sum().cpu()
    acc = {n: float(correct[i] / n_total) for i, n in enumerate(names)}
    return AttGANEvalReport(
        attrs=names,
        accuracy=acc,
        mean_accuracy=float(sum(acc.values()) / len(acc)),
        psnr=float(torch.cat(psnrs).mean()),
        ssim=float(torch.cat(ssims).mean()),
        n_images=n_total,
        classifier=clf_name,
    )


def write_report(report: AttGANEvalReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``attgan_eval.json``, ``attgan_eval.md`` and ``attgan_eval.png`` (bar chart)."""
    from faceedit.fileio import atomic_write_text
    from faceedit.viz import saved_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "attgan_eval.json",
        "table": out / "attgan_eval.md",
        "chart": out / "attgan_eval.png",
    }
    on_disk = with_units(
        asdict(report), accuracy=FRACTION, mean_accuracy=FRACTION, psnr=DECIBEL, ssim=UNITLESS
    )
    atomic_write_text(paths["json"], json.dumps(on_disk, indent=2) + "\n")
    atomic_write_text(paths["table"], report.table())
    with saved_figure(
        paths["chart"], figsize=(max(5, 0.6 * len(report.attrs) + 2), 4), dpi=100
    ) as (fig, ax):
        vals = [100 * report.accuracy[a] for a in report.attrs]
        ax.bar(range(len(vals)), vals, color="#4c72b0")
        ax.set_xticks(range(len(vals)), report.attrs, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("editing accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(
            f"AttGAN: PSNR {report.psnr:.2f} dB, SSIM {report.ssim:.3f} (n={report.n_images})",
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
    return paths
