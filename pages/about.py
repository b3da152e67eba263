"""About: the methods, measures and attacks the app uses, where each follows the authors' code
exactly and where it deliberately differs (and why), with references. The full statement is
docs/method.md; every section names its anchor there."""

import streamlit as st

from app_support.layout import setup_page
from interp_core.interpret import LABELS
from interp_core.services.explore import METRIC_DEFINITIONS

setup_page("About")

DOCS = "docs/method.md"


def docs(anchor: str) -> str:
    return f"`{DOCS}#{anchor}`"


def fidelity(follows: str, differs: str) -> None:
    """The two notes every section ends with."""
    st.markdown(f"**Follows the authors:** {follows}")
    st.markdown(f"**Differs:** {differs}")


st.title("Methods and measures")
st.markdown(
    "The app implements Boopathy et al., *Proper Network Interpretability Helps Adversarial Robustness in "
    "Classification* (ICML 2020), in PyTorch, checked formula by formula against the authors' released TensorFlow "
    f"code. This page summarizes, per measure and attack, where the project does exactly what the authors' code "
    f"does and where it deliberately does something else. The full statement, with every formula and option, is "
    f"`{DOCS}` in the repository; each section below names its anchor there.")

st.header("Networks")
st.markdown(f"({docs('networks')}) Every network ends in a last feature map A(x) (C × h × w), global average "
            "pooling and a linear layer W without bias, so the class activation map lives on the h × w grid "
            "(7 × 7 on MNIST, 8 × 8 on CIFAR-10) and the logit is its mean:")
st.latex(r"\mathrm{CAM}_c(x) = \sum_k W_{c,k}\, A_k(x), \qquad Z_c(x) = \frac{1}{hw} \sum_{i,j} \mathrm{CAM}_c(x)_{ij}")
fidelity("the *smallgap*, *pool* and 31-convolution *wresnet* architectures, exact to the authors' graphs "
         "(TensorFlow 'SAME' padding, pre-activation ReLU); their released weights are converted, and the converted "
         "networks reach the same clean accuracy.",
         "nothing in the networks. The project's own checkpoints are trained with the project's trainer "
         "(see Training below).")

st.header("Interpretation maps")
st.markdown(f"({docs('maps')}) Maps are raw (not normalized) on their own grid; the app shows them on one shared, "
            "symmetric, diverging colour scale per figure (ColorBrewer RdBu).")
st.markdown(
    f"""
- **{LABELS['cam']}** (Zhou et al., 2016): CAM_c as above.
- **{LABELS['gradcampp']}** (Chattopadhyay et al., 2018), in the paper's closed form for a pooled linear head:
  CAM with max(W, 0).
- **{LABELS['ig']}** (Sundararajan et al., 2017): baseline 0, 100-point right Riemann sum (below).
- **{LABELS['gradcam']}** (Selvaraju et al., 2017), **{LABELS['saliency']}** (Simonyan et al., 2014),
  **{LABELS['smoothgrad']}** (Smilkov et al., 2017), **{LABELS['input_x_gradient']}** (Shrikumar et al., 2016):
  the project's additions, through Captum, at input resolution and summed over colour channels.
"""
)
st.latex(r"\mathrm{IG}_c(x) = x \odot \frac{1}{m} \sum_{k=1}^{m} \nabla_z Z_c(z)\Big|_{z = k x / m}, \qquad m = 100")
fidelity("CAM and Grad-CAM++ exactly; the IG evaluation form. IG offers two forms per call: the **authors' form** "
         "keeps the full H × W × C map and computes it on a copy of the network with softplus (β = 1) in place of "
         "every ReLU, both when attacking through it and when reporting it, as their measures do; the command line "
         "and `reproduce` use it for IG-based ISA and AAI numbers.",
         "the **display form** (the app's maps) sums IG over colour channels so that every explainer gives one "
         "map per class that can be shown next to the others, and is computed on the network itself; when ISA "
         "attacks through it, it uses a softplus copy with β = 10 (option `smooth_beta`), which stays closer to the "
         "ReLU network being judged (softplus_β − ReLU ≤ log 2 / β). On MNIST (one channel) the two forms differ "
         "only in β.")

st.header("Discrepancy measures")
st.markdown(f"({docs('discrepancies')}) With ΔI_c = I_c(x′) − I_c(x), true class y, attack class t, K classes and "
            "a distance d (l1; l2 = the root of the sum of squares; sq_l2 = the sum of squares):")
st.latex(r"D_1 = d(\Delta I_y), \qquad D_2 = \tfrac12\bigl(d(\Delta I_y) + d(\Delta I_t)\bigr), \qquad "
         r"D_{\mathrm{all}} = \tfrac1K \sum_{c} d(\Delta I_c)")
st.latex(r"\bar d(\Delta I_c) = \frac{d(\Delta I_c)}{\max I_c(x) - \min I_c(x)} \quad \text{(range-normalized)}")
st.table([{"measure": k, "definition": v} for k, v in METRIC_DEFINITIONS.items()])
fidelity("the three measures and their factors; raw maps on their native grid inside attack losses (l1, or the sum "
         "of squares `sq_l2`); range normalization by the clean map in reported ISA numbers, where the l2 variant is "
         "the root divided by the range; Kendall's τ_b (scipy's) between clean and perturbed maps of one class.",
         "the top-k intersection: the authors' implementation takes its threshold across maps and divides by the "
         f"number of cells; the project computes the intended share of the k largest cells ({docs('top-k-intersection')}).")

st.header("The bound")
st.markdown(f"({docs('bound')}) With I = CAM/(h·w), so that each map sums to its logit, every x′ on which t beats y "
            "satisfies")
st.latex(r"D_2^{\ell_1}(x, x') \;\ge\; \tfrac12\bigl(Z_y(x) - Z_t(x)\bigr) \qquad "
         r"\bigl(\text{on raw CAMs: } D_2 \ge \tfrac{hw}{2}\,(Z_y(x) - Z_t(x))\bigr),")
st.markdown("because an l1 norm is at least the absolute value of the sum of the entries. The 1-class measure has no "
            "such floor: an attack can move only the target-class map.")
fidelity("the statement, the CAM/(h·w) scale and the tightness check with minimum-ε targeted attacks, with the "
         "authors' targets by default in `reproduce` and the command line.",
         "only correctly classified images are attacked, and points count only where the attack reached t (the "
         "authors plot every image of their subset).")

st.header("Targets and images")
st.markdown(f"({docs('targets')}) The authors seed numpy, permute the test set, take a slice of the permutation as "
            "their images, and then draw each image's target from the same generator, one draw per image in order:")
st.latex(r"t = \bigl(y + 1 + \mathrm{randint}(K - 1)\bigr) \bmod K")
fidelity("the images and the target stream, so that a point can be set beside the authors' code image by image: seed "
         "99, the first 200 of the permutation, for PGD, AAI, the bound and UAR; seed 52, positions 37–41, for the "
         "ISA trade-off figure; seed 123 for the CAM ISA statistics. `reproduce` and the command line "
         "(`--targets authors`) use them by default.",
         "the command line and the app also offer a seeded random wrong class (`--targets random`, torch "
         "generator, explicit `--seed`) and the clean runner-up class, for images outside the authors' sets; the "
         "registered targeted attacks default to the runner-up class when no target is given.")

st.header("Attacks")
st.markdown(f"({docs('attacks')}) Every gradient attack is a configuration of one projected-gradient engine:")
st.latex(r"x'_{s+1} = \Pi_{B_\epsilon(x) \cap [0,1]^d}\bigl(x'_s + \alpha\, u(\nabla \ell(x'_s))\bigr), \qquad "
         r"u \in \{\mathrm{sign},\; g/\lVert g\rVert_2,\; \mathrm{clip}(1000\, g, -1, 1)\}")
st.markdown("Each registered attack below names the key under which the app and `build_attack` know it.")

st.subheader("`paper-pgd`: PGD, the authors' protocol")
st.markdown(f"({docs('pgd')}) Untargeted cross-entropy ascent x′ ← clip(x′ + 0.01·sign(∇)), l-inf projection, no "
            "random start, one restart, 200 steps; ε grids 0–0.4 (MNIST) and 0–10/255 (CIFAR-10); the seed-99 subset.")
fidelity("exactly, for every number labelled \"paper\".", "nothing.")

st.subheader("`pgd`, `pgd-margin`, `pgd-targeted`, `fgsm`: the general forms")
st.markdown("PGD as Madry et al. define it (uniform random start, step 2.5·ε/steps, restarts, l-inf or l2), on the "
            "cross-entropy (`pgd`), on the C&W margin (`pgd-margin`), or toward a target class (`pgd-targeted`); FGSM "
            "(`fgsm`, Goodfellow et al. 2015) takes one signed step of size ε.")
st.latex(r"m_t(x') = \max\Bigl(\max_{j \ne t} Z_j(x') - Z_t(x'),\; -\kappa\Bigr), \qquad \kappa = 0.1")
fidelity(f"the targeted margin with κ = 0.1 ({docs('margin')}).",
         "these are the project's additions: the authors evaluate with `paper-pgd` only. Every robust accuracy the "
         "lab shows stands beside its re-test, which runs them from a random start (then Square) on what the "
         "authors' PGD left standing, and the strong evaluation protocol uses them with AutoAttack, so that a "
         "defence is never credited for a weak attack.")

st.subheader("`isa`: the interpretability sneaking attack")
st.markdown(f"({docs('isa')}) Reach the target while keeping the discrepancy small:")
st.latex(r"\min_{x'}\; m_t(x') + \gamma\, D(x, x') \quad \text{s.t.} \quad \lVert x' - x\rVert_\infty \le \epsilon, "
         r"\qquad x' \leftarrow \Pi\bigl(x' - s\,\epsilon\, \mathrm{clip}(1000\,\nabla, -1, 1)\bigr)")
st.markdown("Two per-image searches (doubling and bisection, 10 rounds): the minimum ε with γ = 0, then at each "
            "ε = p·ε_min the largest γ that still reaches t. The trade-off plots D against ε per image. On Explore "
            "`isa` runs the second search at the chosen ε by default and shows the γ it found; a fixed γ is the "
            "option.")
fidelity("the objective, the soft-sign update, both searches and their starts (ε = 0.05, γ = 5·10⁻⁵), the curve "
         "starting at the minimum-ε example, the authors' running minimum over smaller ε, raw D against the nominal ε "
         "(their figure) and range-normalized D (their statistics), and by default their budget of "
         "`steps` = 10 steps of `step_scale` s = 0.2.",
         "a second named budget, **fine** (100 steps of 0.02·ε, the same total path), is offered everywhere ISA runs "
         "and `reproduce` runs both: with the authors' budget the 1-class curve on MNIST levels off because ten "
         "large steps cannot follow the objective, not because the measure resists, and the fine budget shows how far "
         "it falls (`reproduce` states the measured ratio). The soft-sign scale 1000 applies per image; the authors "
         "take the gradient of the batch-mean loss, so their effective scale is 1000 divided by the batch size, "
         "which ties an image's attack to its batch mates. A point counts when t is the prediction.")

st.subheader("`min-eps`: the minimum-ε targeted attack")
st.markdown(f"({docs('min-eps')}) The smallest l-inf ε at which ISA with γ = 0 reaches t, by the search above "
            "(`steps` and `step_scale` as ISA's). The ε found is an upper bound on the minimum, and none found is "
            "no proof of robustness: on Explore each attack of the search starts at a random point of the ball, 3 "
            "restarts, the best kept (from x alone, the search finds no ε up to 1 for the PGD-trained and Int "
            "networks on MNIST image #0; from random starts 0.356 and 0.381).")
fidelity("the search (the reproduction also the start at x).",
         "the authors rerun the attack once more at the final upper end of the interval (1 when nothing succeeded) "
         "and use that example; the project keeps the best successful example seen during the search and marks "
         "images without a success, so that no failed attack enters the bound check; Explore's search starts at "
         "random points.")

st.subheader("`aai`: the attack against interpretability")
st.markdown(f"({docs('aai')}) Keep the class, push the true-class map off its clean top-k cells; measured by "
            "Kendall's τ over the images whose prediction did not change:")
st.latex(r"\max_{x'} \; -\sum_{p \,\in\, \text{top-}k(\mathrm{CAM}_y(x))} \mathrm{CAM}_y(x')_p, \qquad k = 8")
fidelity("objective, k = 8, 200 signed steps of 0.01, uniform random start, l-inf projection, the final iterate, "
         "and the measure; with IG, the authors' IG form.",
         "the random start comes from a seeded torch generator rather than the authors' numpy stream: the start's "
         "distribution is the same, and it keeps AAI's randomness independent of the order of other draws.")

st.subheader("Unforeseen attacks: `fog`, `gabor`, `snow`, `jpeg-linf`, `jpeg-l2`, `jpeg-l1`")
st.markdown(f"({docs('uar')}) Kang et al. (2019)'s attacks whose changes are not small in any pixel l_p ball: a "
            "fractal fog, Gabor noise, snowflakes, and perturbations of the JPEG coefficients bounded in l-inf, l2 "
            "or l1. Each optimizes its transformation's parameters toward a target class, 200 steps of "
            "distortion/√200 from a random start. Its budget is the `distortion`, on each attack's own scale, not "
            "an ε of the pixels; the authors' budgets are fog 2048, gabor 400 (both on the 0–255 scale), snow 2, "
            "JPEG 0.25 / 8 / 256 (norms of the coefficient shifts). On MNIST, where they destroy the digit (fog "
            "2048 moves pixels by up to 0.89, Gabor 400 by 1.0), the project's budgets keep every pixel within 0.4 "
            "of the clean image, the largest ε of the paper's MNIST curves: fog 128, gabor 80, snow 0.025, JPEG "
            "0.25 / 2 / 8.")
fidelity("the six transformations' formulas (after the `advex-uar` reference code), budgets, steps, step rule, "
         "random start, and in `reproduce` and `evaluate uar` their targets (the seed-99 stream after the "
         "permutation); CIFAR-10 smallgap and wresnet networks in `reproduce`.",
         "the project implements the transformations itself (differentiable, any device, MNIST included): the "
         "reference package hard-codes CUDA and ImageNet normalization, so it cannot run on a CPU as it is. On "
         "Explore they aim, like every targeted attack there, at the runner-up class or the class you choose; "
         "MNIST has budgets of the project's (the authors give none).")

st.header("Training methods")
st.markdown(f"({docs('training')}) normal · PGD adversarial training (Madry et al., 2018) · TRADES (Zhang et al., "
            "2019) · IG-norm and IG-sum-norm (Chen et al., 2019) · **Int**, Int-adv, Int-1class, Int2, Int2-adv "
            "(Boopathy et al., 2020): the cross-entropy plus γ times the 2-class CAM discrepancy with the unknown "
            "target replaced by softmax-weighted wrong classes:")
st.latex(r"\tilde D(x, x') = \lVert \Delta \mathrm{CAM}_y \rVert_1 + \sum_{c \ne y} \tilde p_c(x')\, "
         r"\lVert \Delta \mathrm{CAM}_c \rVert_1, \qquad \tilde p_c = \frac{e^{Z_c(x')}}{\sum_{j \ne y} e^{Z_j(x')}}")
fidelity("the methods, their inner attacks, the regularizer and the schedules (the `paper` preset, with the authors' "
         "initialization).",
         "TRADES takes the batch mean of the KL term (the authors sum it over the batch); the IG regularizer "
         "differentiates each image's own loss (the authors' batch-mean weight is an option, on in the `paper` "
         "preset); the authors' \"Int with IG\" reduces to a plain IG norm, so only IG-norm is offered.")

st.header("References")
st.markdown(
    """
1. A. Boopathy, S. Liu, G. Zhang, C. Liu, P.-Y. Chen, S. Chang, L. Daniel. *Proper Network Interpretability
   Helps Adversarial Robustness in Classification.* ICML 2020. arXiv:2006.14748.
2. A. Madry et al. *Towards Deep Learning Models Resistant to Adversarial Attacks.* ICLR 2018.
3. H. Zhang et al. *Theoretically Principled Trade-off between Robustness and Accuracy* (TRADES). ICML 2019.
4. J. Chen et al. *Robust Attribution Regularization.* NeurIPS 2019.
5. B. Zhou et al. *Learning Deep Features for Discriminative Localization* (CAM). CVPR 2016.
6. R. Selvaraju et al. *Grad-CAM.* ICCV 2017. A. Chattopadhyay et al. *Grad-CAM++.* WACV 2018.
7. M. Sundararajan, A. Taly, Q. Yan. *Axiomatic Attribution for Deep Networks* (IG). ICML 2017.
8. D. Smilkov et al. *SmoothGrad.* 2017. K. Simonyan et al. *Deep Inside Convolutional Networks* (saliency). 2014.
9. A. Ghorbani, A. Abid, J. Zou. *Interpretation of Neural Networks is Fragile.* AAAI 2019 (top-k attacks).
10. M. Kendall. *A New Measure of Rank Correlation.* Biometrika 1938.
11. I. Goodfellow, J. Shlens, C. Szegedy. *Explaining and Harnessing Adversarial Examples* (FGSM). ICLR 2015.
12. D. Kang, Y. Sun, D. Hendrycks, T. Brown, J. Steinhardt. *Testing Robustness Against Unforeseen Adversaries.* 2019.
"""
)
