"""The embedding probe: a kNN classifier on the frozen embeddings (backbone output, no head).

Fitted on training images of every class of the task, remembered and forgotten, and scored on the forgotten
classes' test images. A method that only moved the head's decision leaves the identities separable in the
embedding (high probe accuracy although Acc_f is zero); one that changed the representation does not. The probe
on the remembered classes' test images is the ceiling to read it against.
"""
import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from audit.settings import PROBE_NEIGHBOURS


def knn_accuracy(fit_embeddings: torch.Tensor, fit_labels: torch.Tensor, test_embeddings: torch.Tensor,
                 test_labels: torch.Tensor, neighbours: int = PROBE_NEIGHBOURS) -> float:
    """Percent of ``test_embeddings`` whose majority label among the ``neighbours`` nearest fitted embeddings (cosine
    distance, the face-verification metric) is their own.

    Args:
        fit_embeddings: (N, D); fit_labels: (N,); test_embeddings: (M, D); test_labels: (M,).
    """
    probe = KNeighborsClassifier(n_neighbors=min(neighbours, len(fit_labels)), metric="cosine", algorithm="brute")
    probe.fit(fit_embeddings.numpy(), fit_labels.numpy())
    return 100.0 * float(np.mean(probe.predict(test_embeddings.numpy()) == test_labels.numpy()))
