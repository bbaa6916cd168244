"""Multivariate diffusion models (Singhal, Goldstein, Ranganath 2023): linear diffusions whose state carries
K − 1 auxiliary variables per data value, one kernel and one ELBO for all of them.

diffusions.py  the (Q, D, Σ∞) of VP-SDE, CLD, ALDA, MALDA and a learned diffusion; the β(s) time change
kernel.py      q(y_τ | x): mean and covariance from matrix exponentials, sampling y_τ
elbo.py        the ELBO in its denoising-score-matching form, the logit transform, bits/dim
nets.py        score networks: a U-Net (auxiliaries as extra channels) and an MLP for 2-D points
model.py       MDM = diffusion + score network (the checkpointed module) and its training objective
sampling.py    Euler–Maruyama and the probability-flow ODE, with trajectories
"""
from .diffusions import DIFFUSIONS, DiffusionConfig, LinearDiffusion
from .model import MDM, MDMConfig, MDMObjective

__all__ = ["DIFFUSIONS", "DiffusionConfig", "LinearDiffusion", "MDM", "MDMConfig", "MDMObjective"]
