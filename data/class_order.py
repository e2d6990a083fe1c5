"""The seeded class order that decides which classes each task forgets (reference Sec. 3.2).

Forgetting removes classes from the end of the order backwards. Seed 1337 reproduces the original's order,
which starts 83, 17, 10, 9, 89, ...: it is Python's ``random.shuffle`` of ``range(num_classes)`` after
``random.seed(seed)``, done here with a private ``random.Random`` so no global state is touched.
"""
import random
from typing import List


def class_order(num_classes: int, seed: int = 1337) -> List[int]:
    order = list(range(num_classes))
    random.Random(seed).shuffle(order)
    return order
