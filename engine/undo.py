"""Undoing a forgetting request of a GS-LoRA run: subtract a task's saved low-rank update from the run's weights.

Task T merged W_T = W_{T-1} + s B_T A_T (s = alpha / rank) and saved the factors; subtracting s B_T A_T from the final
weights is exact (up to rounding) for the last task, and an approximation for an earlier one, whose later updates were
learned on a model that had already forgotten T's classes.
"""
from pathlib import Path

import torch

from backbone.lora import low_rank_update, without_lora
from data.class_names import class_indices
from engine.evaluation import evaluate
from model import build_model, load_model_weights, model_from_file
from util.checkpoint import load_checkpoint, load_file
from util.errors import UserError
from util.files import read_results

State = dict[str, torch.Tensor]


def lora_update(factors: State, scaling: float) -> State:
    """{'<layer>.weight': scaling * B @ A} of every LoRA layer from its factors, computed as the merge computed it."""
    return {f"{layer}.weight": low_rank_update(factors[f"{layer}.lora_A"], factors[f"{layer}.lora_B"], scaling)
            for layer in sorted({key.rsplit(".", 1)[0] for key in factors})}


def subtract_update(state: State, update: State) -> State:
    """``state`` with ``update`` subtracted from the weights it names (the other entries are shared, not copied)."""
    missing = sorted(set(update) - set(state))
    if missing:
        raise UserError(f"the LoRA delta names weights the checkpoint lacks ({', '.join(missing[:3])}); the delta "
                        f"and the checkpoint come from different models")
    return {key: value - update[key].to(value.dtype) if key in update else value for key, value in state.items()}


def finished_tasks(run_dir: Path) -> tuple[dict, int]:
    """The run's results.json and its number of finished tasks; a folder that is not a run is a UserError."""
    results = read_results(run_dir, f"is {run_dir} a run folder of train_own_forget_cl.py?")
    done = len(results.get("tasks", []))
    if done == 0:
        raise UserError(f"{run_dir} has no finished task yet; nothing to undo")
    return results, done


def task_that_forgot(run_dir: Path, name: str) -> int:
    """The task of the run in ``run_dir`` that forgot the class ``name`` (a class folder name), to undo a request by
    name; an unknown name, one no task forgot, or a results.json without class names is a UserError."""
    results, _ = finished_tasks(run_dir)
    if "class_names" not in results:
        raise UserError(f"{run_dir / 'results.json'} holds no class names (written by an older version); pass --task")
    label = class_indices([name], results["class_names"], "--forget_class")[0]
    tasks = [entry["task"] for entry in results["plan"] if label in entry["forget"]]
    if not tasks:
        raise UserError(f"no task of {run_dir} forgot {name}; its tasks forgot "
                        f"{'; '.join(', '.join(e.get('forget_names', [])) for e in results['plan'])}")
    return tasks[0]


def delta_path(run_dir: Path, task: int) -> Path:
    return run_dir / "task-level" / f"lora_delta_task_{task}.pth"


def undo_task(run_dir: Path, task: int) -> dict[str, object]:
    """The run's final model with ``task``'s LoRA update subtracted, as checkpoint content (``undo``: what was undone
    and whether exactly); a UserError for an unfinished task or a run that saved no LoRA update."""
    results, done = finished_tasks(run_dir)
    if not 0 <= task < done:
        raise UserError(f"task {task} is not a finished task of {run_dir} (its finished tasks: 0-{done - 1})")
    if not delta_path(run_dir, task).is_file():
        raise UserError(f"{run_dir} (method {results.get('method')}) saved no LoRA update for task {task} "
                        f"({delta_path(run_dir, task)} is missing); only GS-LoRA and GS-LoRA++ runs can be undone")
    delta = load_file(delta_path(run_dir, task))
    final = load_checkpoint(run_dir / "task-level" / f"Backbone_task_{done - 1}.pth")
    state = subtract_update(final["model"], lora_update(delta["factors"], float(delta["scaling"])))
    return {"model": state, "model_args": final.get("model_args", {}), "config": final.get("config", {}),
            "undo": {"run_dir": str(run_dir.resolve()), "task": task, "final_task": done - 1,
                     "exact": task == done - 1}}


def relative_distance(state: State, reference: State) -> float:
    """||W - W_ref||_F / ||W_ref||_F over every floating-point tensor of the two state dicts (same keys)."""
    keys = [k for k, v in reference.items() if v.is_floating_point()]
    diff = torch.sqrt(sum((state[k].double() - reference[k].double()).pow(2).sum() for k in keys))
    norm = torch.sqrt(sum(reference[k].double().pow(2).sum() for k in keys))
    return float(diff / norm)


def pretrained_state(path: str, model_args: dict[str, object], classes: list[str]) -> State:
    """The run's -r weights in its key names and head size, so that they compare with the saved task weights."""
    return without_lora(model_from_file(path, classes, model_args).state_dict())


def class_set_accuracies(state: State, model_args: dict[str, object], test_data, sets: dict[str, list[int]],
                         device: torch.device, batch_size: int, amp: bool = False,
                         convention: str = "original") -> dict[str, float]:
    """Test accuracy (percent) of the merged weights ``state`` on each class set."""
    model = build_model(**model_args)
    load_model_weights(model, state)
    counts = evaluate(model.to(device), test_data, torch.arange(len(test_data)), batch_size, device, amp)
    return {name: counts.accuracy(classes, convention) for name, classes in sets.items()}
