"""About: the methods and measures the app uses, with references."""

import streamlit as st

from interp_core.services.explore import BOUND_DEFINITION, METRIC_DEFINITIONS
from interp_core.interpret import LABELS
from app_support.layout import setup_page

setup_page("About")

st.title("Methods and measures")

st.header("Models")
st.markdown(
    """
Every network ends in a last feature map A(x) (C × h × w), global average pooling and a linear layer W
without bias, so the class activation map CAM_c(x) = Σ_k W[c,k]·A_k(x) lives on the h × w grid (7 × 7 on
MNIST, 8 × 8 on CIFAR-10) and the logit Z_c(x) is its mean. Architectures: *smallgap*, *pool* and a
31-convolution *wresnet*, exact to the authors' TensorFlow graphs; their released weights are shipped
as converted checkpoints with model cards.
"""
)

st.header("Interpretation maps")
st.markdown(
    f"""
- **{LABELS['cam']}** (Zhou et al., 2016): CAM_c as above, on the native grid.
- **{LABELS['gradcampp']}** (Chattopadhyay et al., 2018), in the paper's closed form for a GAP + linear head:
  CAM with max(W, 0).
- **{LABELS['gradcam']}** (Selvaraju et al., 2017): ReLU of the gradient-weighted feature map.
- **{LABELS['saliency']}** (Simonyan et al., 2014): ∂Z_c/∂x summed over colour channels.
- **{LABELS['ig']}** (Sundararajan et al., 2017): baseline 0, 100-point right Riemann sum.
- **{LABELS['smoothgrad']}** (Smilkov et al., 2017): mean gradient over noisy copies.
- **{LABELS['input_x_gradient']}** (Shrikumar et al., 2016).

Maps are shown raw on one shared, symmetric, diverging colour scale per figure (ColorBrewer RdBu).
"""
)

st.header("Discrepancy measures (PAPER.md §4)")
st.markdown("With ΔI_c = I_c(x') − I_c(x), true class y, attack class t:")
st.table([{"measure": k, "definition": v} for k, v in METRIC_DEFINITIONS.items()])
st.markdown(f"**The bound.** {BOUND_DEFINITION} The 1-class measure has no such floor: an attack can move "
            "only the target-class map.")
st.markdown("The attack class t is the target of a targeted attack; otherwise the adversarial prediction when "
            "the attack flipped it, else the best-scoring wrong class at x'.")

st.header("Attacks (PAPER.md §5)")
st.markdown(
    """
- **PGD** (Madry et al., 2018): signed-gradient ascent of the cross-entropy in the ℓ∞ ball, projected; the
  authors evaluate with step 0.01, no random start, one restart. ℓ2 PGD steps along the normalized gradient.
- **FGSM** (Goodfellow et al., 2015): one signed step of size ε.
- **Targeted PGD**: descends the cross-entropy of a chosen target class (or the C&W margin, κ = 0.1).
- **ISA** (interpretability sneaking attack): minimizes margin(x') + γ·D(x, x') in the ε-ball, with the 1- or
  2-class discrepancy; the trade-off between ε and D is the paper's central picture.
- **AAI** (attack against interpretability): keeps the prediction, pushes the true-class CAM off its clean
  top-8 cells; measured by Kendall's τ.
"""
)

st.header("Training methods (PAPER.md §6)")
st.markdown(
    """
normal · PGD adversarial training (Madry et al., 2018) · TRADES (Zhang et al., 2019) · IG-norm and
IG-sum-norm (Chen et al., 2019) · **Int**, Int-adv, Int-1class, Int2, Int2-adv (Boopathy et al., 2020):
CE plus γ times the 2-class CAM discrepancy with the unknown target replaced by softmax-weighted wrong
classes.
"""
)

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
"""
)
