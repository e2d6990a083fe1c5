"""The flags of ``--audit`` as one record: how many images, which attack budgets, which oracle run.

Everything but the oracle's folder defines the numbers, so it is stored with every audit (``record``): an oracle's
stored audit is reused only when its record is the same, and ``test_forget_cl.py --audit`` recomputes an audit
only when its record differs.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

# Face verification is judged at this false accept rate (one impostor pair in a thousand accepted).
FAR = 1e-3
# Neighbours of the kNN embedding probe.
PROBE_NEIGHBOURS = 5


@dataclass(frozen=True)
class AuditSettings:
    """What the audits of a task do.

    Args:
        ks: relearn-attack sizes, images per forgotten class.
        steps: optimizer steps of every relearn attack.
        lr: AdamW learning rate of the whole-model attack.
        prompt_lr: AdamW learning rate of the prompt-only attack.
        prompts: learned tokens of the prompt-only attack.
        images: cap of images per class in every set an audit looks at (members, non-members, forget set, pairs).
        batch: images per relearn step.
        oracle: run folder of a model trained without the forgotten classes (a Retrain run), or None.
    """

    ks: Tuple[int, ...] = (1, 5, 10, 25)
    steps: int = 10
    lr: float = 1e-3
    prompt_lr: float = 0.1
    prompts: int = 4
    images: int = 20
    batch: int = 32
    oracle: Optional[str] = None

    def record(self, seed: int) -> Dict[str, object]:
        """What defines an audit's numbers: every setting but the oracle's folder, the run seed and the constants."""
        values = {k: v for k, v in asdict(self).items() if k != "oracle"}
        return {**values, "ks": list(self.ks), "seed": seed, "far": FAR, "neighbours": PROBE_NEIGHBOURS}


def audit_settings_from_args(args) -> Optional[AuditSettings]:
    """The audit settings of parsed flags; None unless ``--audit`` is on."""
    if not getattr(args, "audit", False):
        return None
    return AuditSettings(ks=tuple(args.audit_k), steps=args.audit_steps, lr=args.audit_lr,
                         prompt_lr=args.audit_prompt_lr, prompts=args.audit_prompts, images=args.audit_images,
                         batch=args.audit_batch, oracle=args.audit_oracle)
