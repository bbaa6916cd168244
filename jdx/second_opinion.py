"""A counterfactual's own check (house rule 12): a separately trained classifier's verdict beside the joint
model's, and the warnings in words when the edit should not be trusted. The CLI and the app share it.

  judge_name(folder, class_names, image_size, channels)  the folder's classifier checkpoint for these data;
  find_judge(model, folder=None)                           → that classifier loaded, or None;
  verdict(names, w, p_before, p_after, p_separate, l1)     → Verdict (the two verdicts and the warnings);
  real_scale(names, before, after)                         → how far real `before` images lie from real `after`;
  scale_words(names, before, after, l1)                    → that, and where an edit of size l1 falls, in words.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from torch import nn

INVISIBLE_L1 = 0.03     # mean |Δ| (pixels in [0, 1]) below which a flipped label counts as an invisible edit
REAL_DISTANCES = Path(__file__).resolve().parents[1] / "assets/results/counterfactuals/real-distances.json"
SURE = 0.7              # the separate classifier's probability below which its agreeing is a weak second opinion
ADVERSARIAL = "this is an adversarial edit, not an explanation"


@lru_cache(maxsize=32)
def judge_name(folder: str, class_names: tuple, image_size, channels) -> str | None:
    """The folder's classifier checkpoint (kind "classifier") for these classes, image size and channels,
    found once per folder and data (not on every request's path); its stem, or None."""
    for js in sorted(Path(folder).glob("*.json")):
        try:
            meta = json.loads(js.read_text())
        except (OSError, ValueError):
            continue
        d = meta.get("data", {})
        if (meta.get("kind") == "classifier" and tuple(d.get("class_names", [])) == class_names
                and d.get("image_size") == image_size and d.get("channels") == channels):
            return js.stem
    return None


def find_judge(model: nn.Module, folder: str | Path | None = None) -> nn.Module | None:
    """The separately trained classifier for this model's data, from `folder` (default: the folder the model's
    checkpoint was loaded from), on the model's device; None when none ships."""
    from .checkpoint import load
    folder = Path(folder) if folder is not None else Path(model.info.path).parent
    d = model.info.data
    name = judge_name(str(folder), tuple(d.get("class_names", [])), d.get("image_size"), d.get("channels"))
    if name is None:
        return None
    return load(folder / name, next(model.parameters()).device)


class Verdict(NamedTuple):
    before: str                 # the joint model's class for the input
    joint: str                  # … for the counterfactual (the model that steered the edit)
    separate: str | None        # the separate classifier's class for the counterfactual (None: no judge)
    flipped: bool               # the joint model's label changed
    agree: bool | None          # the two classifiers name the same class (None: no judge)
    invisible: bool             # flipped with a mean |Δ| below INVISIBLE_L1
    warnings: list[str]         # in words, for the CLI and the page
    weak: bool = False          # the separate classifier agrees, but with probability below SURE (of its weight)
    missed: bool = False        # the joint model's class for the counterfactual has no weight in the target
    short: tuple = ()           # a mixture's classes the joint model gives under SHORT of their asked weight

    @property
    def believed(self) -> bool:
        """Both classifiers name a class the target mixture weights, every class of a mixture is reached and
        the edit is not invisible."""
        return bool(self.agree) and not self.invisible and not self.missed and not self.short


def with_article(noun: str) -> str:
    """The noun with its indefinite article: "an Ankle boot", "a Bag"."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def targeted(names: Sequence[str], w) -> list[str]:
    """The classes the target mixture w (C,) weights."""
    return [names[k] for k in np.flatnonzero(np.asarray(w, dtype=float) > 0)]


SHORT = 0.25    # a mixture's class given under this fraction of its asked weight was not reached


@lru_cache(maxsize=1)
def _real_distances() -> dict | None:
    try:
        return json.loads(REAL_DISTANCES.read_text())
    except (OSError, ValueError):
        return None


def real_scale(names: Sequence[str], before: str, after: str) -> tuple[float, float] | None:
    """(5th percentile, median) of the L1 from a real test image of `before` to the nearest real training image of
    `after` (bench/real_distances.py), for the data set whose classes these are; None where not measured. A scale
    for an edit's size, not a verdict: as a threshold ("smaller than 95 % of real pairs") it flagged 87 of 200 of
    the default's edits, and a classifier the project never trained with believed those as often as the rest
    (32 % vs 35 %; README)."""
    table = _real_distances()
    if table is None or list(table["class_names"]) != list(names) or before == after:
        return None
    a, b = list(names).index(before), list(names).index(after)
    return float(table["p5"][a][b]), float(table["median"][a][b])


def scale_words(names: Sequence[str], before: str, after: str, l1: float) -> str | None:
    """real_scale in a sentence, with where an edit of size l1 falls; None where not measured. The page and the
    CLI say the same."""
    if (scale := real_scale(names, before, after)) is None:
        return None
    p5, median = scale
    size = ("smaller than 95 % of real pairs: it may still look like " + with_article(before) if l1 < p5 else
            f"{l1 / median:.1f}× the median pair" if l1 >= median else "between the two")
    return (f"a real {before} lies L1 {median:.3f} from the nearest real {after} (median; 95 % farther than "
            f"{p5:.3f}). This edit's L1 {l1:.3f} is {size}.")


def verdict(names: Sequence[str], w, p_before, p_after, p_separate, l1: float) -> Verdict:
    """w: target weights (C,); p_*: probabilities (C,) (p_separate None when no judge ships); l1 in [0, 1].
    A mixture asks for its weights (normalised), not for one class: its top class is judged against its own
    share (a 50/50 mix's Dress at 49 % is what was asked), and a class of the mix the edit left out is said."""
    w, p0, p1 = (np.asarray(v, dtype=float) for v in (w, p_before, p_after))
    w = w / w.sum()
    top = int(p1.argmax())
    before, joint = names[int(p0.argmax())], names[top]
    flipped = joint != before
    separate = agree = None
    if p_separate is not None:
        separate = names[int(np.asarray(p_separate).argmax())]
        agree = separate == joint
    warnings = []
    invisible = flipped and l1 < INVISIBLE_L1
    if invisible and agree:
        # "Near the border" in pixels, not in probability: the classifier may have been sure of `before` (a
        # walkthrough read "sat on the border" beside Sneaker 100 % as a contradiction).
        warnings.append(f"the label flipped with an almost invisible change (mean |Δ| {l1:.3f}): both classifiers "
                        f"now say {joint}, so in pixels the picture lies close to the border between {before} and "
                        f"{joint}, however sure the classifier was of {before}; an edit this small shows where "
                        f"that border is, not what {with_article(joint)} looks like")
    elif invisible:
        warnings.append(f"the label flipped with an almost invisible change (mean |Δ| {l1:.3f}): {ADVERSARIAL}")
    missed = bool(w[top] <= 0)
    if missed:
        asked = ", ".join(targeted(names, w))
        warnings.append(f"the edit missed the target: the joint model calls the result {joint}, which is not in the "
                        f"target ({asked}); raise t* or s, or lower λ")
    asked_k = np.flatnonzero(w > 0)
    short_k = [k for k in asked_k if len(asked_k) > 1 and p1[k] < SHORT * w[k]]
    short = tuple(names[k] for k in short_k)
    if short and not missed:
        gave = ", ".join(f"{names[k]} {p1[k]:.0%} (asked {w[k]:.0%})" for k in short_k)
        warnings.append(f"the edit reached only part of the mixture: the joint model gives {gave}; the result is "
                        f"{with_article(joint)}, not the mix")
    weak = False
    if separate is not None:
        if not agree:
            warnings.append(f"the two classifiers disagree: the joint model says {joint}, the separate classifier "
                            f"{separate}; the edit convinces only the model that steered it")
        elif (p_sure := float(np.asarray(p_separate).max())) < SURE * max(w[top], 1e-9):
            weak = True
            warnings.append(f"the separate classifier agrees only weakly ({separate} at {p_sure:.0%} < "
                            f"{SURE * w[top]:.0%}): a weak second opinion")
    return Verdict(before, joint, separate, flipped, agree, invisible, warnings, weak, missed, short)
