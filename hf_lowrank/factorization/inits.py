"""The one registry of inits: what each start of the factors is called, whether it needs calibration statistics,
and how the command line, the model cards and the plots describe it. The math is `models.decomposition`'s
(`decompose_linear`, which knows the same names: `models.INITS`)."""

from dataclasses import dataclass

from ..models import INITS as IMPLEMENTED


__all__ = ["DATA_AWARE_INITS", "DEFAULT_PREVIEW_INITS", "INITS", "INIT_REGISTRY", "Init", "init_help"]


@dataclass(frozen=True)
class Init:
    """One init of the factors.

    Attributes:
        name: its `--init` value.
        needs_calibration: whether it weights the SVD with statistics gathered on `--calibration_samples` examples.
        help: its clause in the `--init` help.
        card_note: how a model card says the factors started ("initialised from ...").
        plot_style: `(matplotlib color, marker)` of its preview curve.
        previewed_by_default: whether the training-free preview measures it when `--preview_inits` is not given.
    """

    name: str
    needs_calibration: bool
    help: str
    card_note: str
    plot_style: tuple[str, str]
    previewed_by_default: bool = True


INIT_REGISTRY: dict[str, Init] = {
    init.name: init
    for init in (
        Init(
            "svd",
            False,
            "the truncated SVD of each teacher weight, the papers'",
            "the truncated SVD of the teacher's weight",
            ("tab:gray", "s"),
        ),
        Init(
            "whitened",
            True,
            "SVD-LLM: the best rank-r map on calibration inputs",
            "the whitened SVD of the teacher's weight (SVD-LLM: the best rank-r map on calibration inputs)",
            ("tab:green", "^"),
        ),
        Init(
            "activation",
            True,
            "ASVD: input channels scaled by mean|x|^--init_alpha",
            "the activation-scaled SVD of the teacher's weight (ASVD)",
            ("tab:brown", "v"),
        ),
        Init(
            "fisher",
            True,
            "FWSVD: rows weighted by squared task-loss gradients",
            "the Fisher-weighted SVD of the teacher's weight (FWSVD)",
            ("tab:purple", "D"),
            previewed_by_default=False,  # one backward per calibration batch: asked for by name
        ),
    )
}
if tuple(INIT_REGISTRY) != IMPLEMENTED:  # a new init is added in both places
    raise ImportError(f"the init registry {list(INIT_REGISTRY)} does not match models.INITS {list(IMPLEMENTED)}.")

INITS = tuple(INIT_REGISTRY)
DATA_AWARE_INITS = tuple(name for name, init in INIT_REGISTRY.items() if init.needs_calibration)
DEFAULT_PREVIEW_INITS = tuple(name for name, init in INIT_REGISTRY.items() if init.previewed_by_default)


def init_help() -> str:
    """The inits' clause of the `--init` help: ``svd (...), whitened (...), ... or fisher (...)``."""
    clauses = [f"{init.name} ({init.help})" for init in INIT_REGISTRY.values()]
    return ", ".join(clauses[:-1]) + " or " + clauses[-1]
