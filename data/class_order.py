"""The seeded class order that decides which classes each task forgets, from its end backwards (reference Sec. 3.2).
Seed 1337 reproduces the original's order (83, 17, 10, 9, 89, ...), on a private ``random.Random``."""
import random


def class_order(num_classes: int, seed: int = 1337) -> list[int]:
    order = list(range(num_classes))
    random.Random(seed).shuffle(order)
    return order
