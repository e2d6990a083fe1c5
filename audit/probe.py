"""The embedding probe: a kNN classifier on the frozen embeddings, fitted on training images of the task's classes and
scored on the forgotten classes' test images. A method that only moved the head's decision leaves the identities
separable (high probe accuracy with Acc_f zero); the probe on the remembered classes is the ceiling."""
import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from audit.settings import PROBE_NEIGHBOURS


def knn_accuracy(fit_embeddings: torch.Tensor, fit_labels: torch.Tensor, test_embeddings: torch.Tensor,
                 test_labels: torch.Tensor, neighbours: int = PROBE_NEIGHBOURS) -> float:
    """Percent of (M, D) ``test_embeddings`` whose majority label among the ``neighbours`` nearest (N, D) fitted
    embeddings (cosine distance, the face-verification metric) is their own."""
    probe = KNeighborsClassifier(n_neighbors=min(neighbours, len(fit_labels)), metric="cosine", algorithm="brute")
    probe.fit(fit_embeddings.numpy(), fit_labels.numpy())
    return 100.0 * float(np.mean(probe.predict(test_embeddings.numpy()) == test_labels.numpy()))
