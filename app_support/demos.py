"""The guided demos of the home page: each a link that opens a page (the Explore page, or the
Random start page) with every setting filled and the attack run (the pages read their settings
from the URL, see app_support/url_state.py), and two sentences on what to look for.

The images and settings were chosen by measuring (the MNIST and CIFAR-10 demo samples, the
authors' networks): the card's ``works_on`` line says what the demo showed when measured, and
tests/test_demos.py runs every demo and checks its claim on the computed result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NORMAL, PGD_AT, INT = "mnist-smallgap-normal-paper", "mnist-smallgap-pgd-at-paper", "mnist-smallgap-int-paper"
CIFAR_NORMAL, CIFAR_INT = "cifar10-smallgap-normal-paper", "cifar10-smallgap-int-paper"


@dataclass(frozen=True)
class Demo:
    """A guided demo: ``params`` are the URL parameters of ``page`` (run=1: results at once)."""

    key: str
    title: str
    look_for: str
    works_on: str
    params: dict = field(default_factory=dict)
    page: str = "pages/explore.py"
    icon: str = ":material/play_circle:"

    @property
    def models(self) -> list[str]:
        """The shipped networks the demo needs (Explore links list several, the Random start page one)."""
        return self.params["models"].split(",") if "models" in self.params else [self.params["model"]]


def _explore(models: list[str], image: int, attack: str, explainers: str = "cam,gradcampp,saliency",
             dataset: str = "mnist", **settings) -> dict:
    return {"dataset": dataset, "split": "demo", "source": "gallery", "image": str(image), "models": ",".join(models),
            "attack": attack, **{k: str(v) for k, v in settings.items()}, "explainers": explainers,
            "trajectory": "cam", "run": "1"}


DEMOS = (
    Demo("pgd", "An attack flips the label, and the maps move",
         "PGD with ε = 0.3 turns the normally trained network's 1 into an 8 with a perturbation you can barely "
         "see. Compare the clean and adversarial maps: the true-class map loses its shape (Kendall τ far below 1).",
         "MNIST demo image #8 (a 1): measured 1 → 8, CAM Kendall τ 0.14.",
         _explore([NORMAL], 8, "pgd", eps=0.3)),
    Demo("isa", "Interpretability sneaking: the label flips, the true-class map hides it",
         "ISA adds γ × the 1-class discrepancy to a targeted attack, γ searched as the authors do (the largest that "
         "still reaches the target): the 3 becomes an 8 while the true-class CAM moves by less than the floor "
         "½(Z_y − Z_t). The 2-class measure (true and target class) cannot hide: its D2 stays above that bound line.",
         "MNIST demo image #18 (a 3), ε = 0.2, 1-class measure: measured γ found 9.3·10⁻⁵, 3 → 8, D1 of CAM/(h·w) "
         "3.45 < bound 5.37 ≤ D2 7.75 (with γ = 0 the same attack moves D1 by 8.68).",
         _explore([NORMAL], 18, "isa", eps=0.2, search_gamma=1, measure="1class", target="8")),
    Demo("aai", "Keep the label, wreck the explanation",
         "AAI pushes the true-class CAM off its 8 strongest cells while keeping the class. On the normal network "
         "the map's ranking falls apart (low Kendall τ); on the Int network, trained for stable maps, it holds.",
         "MNIST demo image #0 (a 4), ε = 0.1: measured both keep 4; Kendall τ normal 0.60, Int 0.98.",
         _explore([NORMAL, INT], 0, "aai", explainers="cam,gradcampp", eps=0.1)),
    Demo("robust", "Robust training makes interpretations robust",
         "The authors' PGD at ε = 0.35 on the normal, PGD-trained and Int networks side by side, maps on one "
         "shared colour scale and over the image: the normal network's true-class map is scrambled, the robust "
         "ones keep its ranking (Kendall τ far higher). Int's label survives only this attack, which starts at the "
         "image: the demo \"Robust, or an attack that stalls?\" flips it with one random start.",
         "MNIST demo image #8 (a 1): measured normal 1 → 8 with τ 0.05, PGD-AT 1 → 8 with τ 0.67, Int keeps 1 "
         "(under this attack) with τ 0.96.",
         _explore([NORMAL, PGD_AT, INT], 8, "paper-pgd", explainers="cam,gradcampp", eps=0.35)
         | {"shared": "1", "overlay": "1"}),
    Demo("start", "Robust, or an attack that stalls?",
         "The authors' PGD starts at the clean image; at ε = 0.35 the Int network keeps its 1 under it. The same "
         "attack from one random point of the ε-ball turns the 1 into an 8. The page measures why: from the image, "
         "the [0, 1] box cancels most of the signed steps (MNIST's background is 0 and the gradient points below "
         "it), so the attack hardly moves and the loss stays low.",
         "MNIST demo image #8 (a 1), Int, ε = 0.35, 200 steps of 0.01: measured authors' start keeps 1 (cross-entropy "
         "0.248, box cancels 85% of the steps), random start 1 → 8 (cross-entropy 20.8, box cancels 14%).",
         {"dataset": "mnist", "model": INT, "image": "8", "eps": "0.35", "run": "1"}, page="pages/random_start.py",
         icon=":material/casino:"),
    Demo("uar", "Unforeseen corruptions: snow on a normal and an Int network",
         "Snow, one of the unforeseen attacks (flakes whose intensities are optimized, at the authors' budget), "
         "falls on a CIFAR-10 airplane, aimed at each network's runner-up class. The normally trained network sees "
         "a bird and its true-class map loses its ranking (low Kendall τ); the Int network keeps the airplane and "
         "much more of its map.",
         "CIFAR-10 demo image #35 (an airplane), snow at distortion 2, 200 steps: measured normal airplane → bird "
         "(100%) with CAM Kendall τ 0.32; Int keeps airplane (57%) with τ 0.65.",
         _explore([CIFAR_NORMAL, CIFAR_INT], 35, "snow", explainers="cam,gradcampp", dataset="cifar10",
                  distortion=2.0)),
)
