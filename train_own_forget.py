"""Single-step forgetting: one task that forgets --per_forget_cls classes after the first --num_of_first_cls.

Same flags as train_own_forget_cl.py (--num_tasks 1, single-step missing-class layout); --forget_classes names them."""
from run_setup import run_main
from train_own_forget_cl import forget

if __name__ == "__main__":
    run_main(lambda: forget(single_step=True))
