"""Errors caused by user input. Entry points print their message as one line and exit, without a traceback."""


class UserError(Exception):
    """A mistake in flags, data or files that the user can fix; the message says how."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names where (task, epoch) and the loss term."""


def check_finite(losses, where: str) -> None:
    """Stops the run with one line naming ``where`` and the non-finite term of ``losses`` (name -> scalar tensor); costs
    one device sync per call (one per optimizer step)."""
    for name, value in losses.items():
        value = float(value.detach())
        if value != value or value in (float("inf"), float("-inf")):
            raise TrainingDiverged(f"{where}: loss term '{name}' is {value}; lower --lr or the loss weights")
