"""The embedding probe: a kNN classifier on the frozen embeddings, scored on the forgotten classes' test images. A
method that only moved the head's decision leaves the identities separable (high probe accuracy with Acc_f zero)."""
import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from audit.settings import PROBE_NEIGHBOURS


def knn_accuracy(fit_embeddings: torch.Tensor, fit_labels: torch.Tensor, test_embeddings: torch.Tensor,
                 test_labels: torch.Tensor, neighbours: int = PROBE_NEIGHBOURS) -> float:
    """Percent of ``test_embeddings`` whose ``neighbours`` nearest fitted ones (cosine distance) vote their label."""
    probe = KNeighborsClassifier(n_neighbors=min(neighbours, len(fit_labels)), metric="cosine", algorithm="brute")
    probe.fit(fit_embeddings.numpy(), fit_labels.numpy())
    return 100.0 * float(np.mean(probe.predict(test_embeddings.numpy()) == test_labels.numpy()))
