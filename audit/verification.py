"""Face verification: does the embedding still verify the people who asked to be forgotten? TAR over all test image
pairs at the cosine threshold accepting FAR of impostor pairs, and the FAR achieved (more than FAR if pairs are few)."""
import numpy as np
import torch
import torch.nn.functional as F


def pair_scores(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of every unordered pair of different images: (genuine scores, impostor scores)."""
    unit = F.normalize(embeddings.double(), dim=1)
    scores = unit @ unit.t()
    upper = torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=1)
    same = labels.view(-1, 1) == labels.view(1, -1)
    return scores[upper & same].numpy(), scores[upper & ~same].numpy()


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The similarity above which a fraction ``far`` of the impostor scores lies (linear quantile at 1 - far)."""
    return float(np.quantile(impostor_scores, 1.0 - far))


def tar_at_far(genuine_scores: np.ndarray, impostor_scores: np.ndarray, far: float) -> dict[str, float | None]:
    """TAR and achieved FAR (percent above the threshold), the threshold and the pair counts; None without pairs."""
    counts = {"genuine_pairs": len(genuine_scores), "impostor_pairs": len(impostor_scores)}
    if not len(genuine_scores) or not len(impostor_scores):
        return {"tar": None, "threshold": None, "far_achieved": None, **counts}
    threshold = threshold_at_far(impostor_scores, far)
    return {"tar": 100.0 * float(np.mean(genuine_scores > threshold)), "threshold": threshold,
            "far_achieved": 100.0 * float(np.mean(impostor_scores > threshold)), **counts}


def verification(embeddings: torch.Tensor, labels: torch.Tensor, far: float) -> dict[str, float | None]:
    """TAR at ``far`` among the identities of ``labels`` (see ``tar_at_far``)."""
    return tar_at_far(*pair_scores(embeddings, labels), far)
