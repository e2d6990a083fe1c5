"""Membership inference on the forget set: attacks learn "member" on the retained classes (training against test images)
and report the share of the forgotten classes' training images they call member. Shokri et al. (2017) for the
classifier, Yeom et al. (2018) for the loss threshold; the confidence feature is SalUn's and ℓ1-sparse's MIA."""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def attack_features(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(N, C) plain logits -> (N, 3) float64: true-class softmax confidence, softmax entropy, CE loss (nats)."""
    log_p = F.log_softmax(logits.double(), dim=1)
    true = log_p.gather(1, labels.view(-1, 1)).squeeze(1)
    entropy = -(log_p.exp() * log_p).sum(1)
    return torch.stack([true.exp(), entropy, -true], dim=1).numpy()


def balanced_accuracy(member_hits: np.ndarray, non_member_hits: np.ndarray) -> float:
    """Percent: the mean of the rate of members called members and of non-members called non-members."""
    return 50.0 * (float(np.mean(member_hits)) + 1.0 - float(np.mean(non_member_hits)))


def classifier_attack(members: np.ndarray, non_members: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """member_rate (percent of ``targets`` called member) and balanced attack_accuracy of a logistic regression."""
    x = np.concatenate([members, non_members])
    y = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    attack = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")).fit(x, y)
    return {"member_rate": 100.0 * float(attack.predict(targets).mean()),
            "attack_accuracy": balanced_accuracy(attack.predict(members), attack.predict(non_members))}


def loss_threshold(member_losses: np.ndarray, non_member_losses: np.ndarray) -> float:
    """The t of "loss <= t is a member" with the best balanced accuracy among loss midpoints (ties: the smallest)."""
    values = np.unique(np.concatenate([member_losses, non_member_losses]))
    candidates = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
    members, non_members = np.sort(member_losses), np.sort(non_member_losses)
    tpr = np.searchsorted(members, candidates, side="right") / len(members)
    fpr = np.searchsorted(non_members, candidates, side="right") / len(non_members)
    return float(candidates[np.argmax(tpr - fpr)])


def loss_threshold_attack(member_losses: np.ndarray, non_member_losses: np.ndarray,
                          target_losses: np.ndarray) -> dict[str, float]:
    """member_rate (percent of ``target_losses`` <= ``loss_threshold``), the threshold and its balanced accuracy."""
    threshold = loss_threshold(member_losses, non_member_losses)
    return {"member_rate": 100.0 * float(np.mean(target_losses <= threshold)), "threshold": threshold,
            "attack_accuracy": balanced_accuracy(member_losses <= threshold, non_member_losses <= threshold)}
