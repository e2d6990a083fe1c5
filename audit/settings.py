"""The flags of ``--audit`` as one record, stored with every audit (``record``, everything but the oracle's folder): an
oracle's stored audit is reused, and ``test_forget_cl.py --audit`` skips an audit, only when the record matches."""
from dataclasses import asdict, dataclass

# Face verification is judged at this false accept rate (one impostor pair in a thousand accepted).
FAR = 1e-3
# Neighbours of the kNN embedding probe.
PROBE_NEIGHBOURS = 5


@dataclass(frozen=True)
class AuditSettings:
    """What the audits of a task do: relearn sizes ``ks`` (images per forgotten class), ``steps``, AdamW ``lr`` and
    ``prompt_lr``, ``prompts`` tokens, ``images`` per class per audited set, ``batch`` per step, ``oracle`` folder."""

    ks: tuple[int, ...] = (1, 5, 10, 25)
    steps: int = 10
    lr: float = 1e-3
    prompt_lr: float = 0.1
    prompts: int = 4
    images: int = 20
    batch: int = 32
    oracle: str | None = None

    def record(self, seed: int) -> dict[str, object]:
        """What defines an audit's numbers: every setting but the oracle's folder, the run seed and the constants."""
        values = {k: v for k, v in asdict(self).items() if k != "oracle"}
        return {**values, "ks": list(self.ks), "seed": seed, "far": FAR, "neighbours": PROBE_NEIGHBOURS}


def audit_settings_from_args(args) -> AuditSettings | None:
    """The audit settings of parsed flags; None unless ``--audit`` is on."""
    return AuditSettings(ks=tuple(args.audit_k), steps=args.audit_steps, lr=args.audit_lr,
                         prompt_lr=args.audit_prompt_lr, prompts=args.audit_prompts, images=args.audit_images,
                         batch=args.audit_batch, oracle=args.audit_oracle) if getattr(args, "audit", False) else None
