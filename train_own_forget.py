"""Single-step forgetting: one task that forgets --per_forget_cls classes after the first --num_of_first_cls.

Same flags as train_own_forget_cl.py; --num_tasks is 1 and the missing-class layout is the single-step one.
``--forget_classes a,b`` forgets those classes by name instead (every other class is remembered)."""
from run_setup import run_main
from train_own_forget_cl import forget

if __name__ == "__main__":
    run_main(lambda: forget(single_step=True))
