"""The seeded class order that decides which classes each task forgets (reference Sec. 3.2); tasks take classes from its
end backwards. Seed 1337 reproduces the original's order (83, 17, 10, 9, 89, ...): ``random.shuffle`` of
``range(num_classes)`` after ``random.seed(seed)``, on a private ``random.Random`` (no global state touched)."""
import random
from typing import List


def class_order(num_classes: int, seed: int = 1337) -> List[int]:
    order = list(range(num_classes))
    random.Random(seed).shuffle(order)
    return order
