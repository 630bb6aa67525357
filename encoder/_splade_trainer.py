from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ._echo_splade_encoder import EchoSpladeEncoder
from ._splade_loss import SpladeLoss
from ._training_config import TrainingConfig
from ._training_data import TrainingExample

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"
LOG_FILE = "train_log.jsonl"


class TrainingCollapsedError(ValueError):
    """The vectors went all-zero: the FLOPS regularisation (or learning rate) is too strong."""


class SpladeTrainer:
    """LoRA fine-tuning of an Echo-SPLADE encoder with InfoNCE + FLOPS (:class:`SpladeLoss`).

    Every step logs loss, ranking loss, FLOPS terms and the mean number of non-zero
    weights of queries and documents (to ``<output>/train_log.jsonl`` and the logger).
    Checkpoints (adapter, optimizer, scheduler, RNG, step) go to
    ``<output>/checkpoints/step-N`` and :meth:`train` with ``resume=True`` continues
    from the latest one. The result is ``<output>``: an adapter plus ``echo_splade.json``
    that :meth:`EchoSpladeEncoder.from_pretrained` loads.

    Args:
        config: the run's settings.
        examples: training examples (see :func:`load_training_examples`).
        output_dir: where the adapter, checkpoints and log go.
        device: default CUDA when present, else CPU. On CUDA the forward pass runs under bf16 autocast.
    """

    def __init__(self, config: TrainingConfig, examples: Sequence[TrainingExample], output_dir: str | os.PathLike,
                 device: str | torch.device | None = None) -> None:
        if not examples:
            raise ValueError("no training examples")
        self.config = config
        self.examples = list(examples)
        self.output_dir = Path(output_dir)
        self.device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        self.loss = SpladeLoss(config.lambda_q, config.lambda_d, config.flops_ramp_steps, config.temperature)
        self.encoder: EchoSpladeEncoder | None = None
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ setup
    def _build(self) -> tuple[EchoSpladeEncoder, torch.optim.Optimizer, Any]:
        from peft import LoraConfig, get_peft_model
        from transformers import get_linear_schedule_with_warmup

        cfg = self.config
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        encoder = EchoSpladeEncoder.from_pretrained(cfg.model, device=self.device, dtype="float32",
                                                    max_length=cfg.max_length, gguf_file=cfg.gguf_file, echo=cfg.echo)
        base = encoder.model
        if cfg.gradient_checkpointing:
            if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
                base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets),
                          layers_to_transform=list(cfg.lora_layers) if cfg.lora_layers is not None else None,
                          modules_to_save=list(cfg.train_modules) or None, bias="none")
        encoder.model = get_peft_model(base, lora)
        encoder.model.train()
        trainable = [p for p in encoder.model.parameters() if p.requires_grad]
        logger.info("LoRA: %d trainable parameters of %d", sum(p.numel() for p in trainable),
                    sum(p.numel() for p in encoder.model.parameters()))
        optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps)
        return encoder, optimizer, scheduler

    def _micro_batch(self, step: int, micro: int) -> list[TrainingExample]:
        """The examples of one micro-batch: a seeded permutation per epoch, so resuming replays the same order."""
        n, size = len(self.examples), self.config.batch_size
        first = (step * self.config.grad_accum + micro) * size
        out = []
        for g in range(first, first + size):
            epoch, offset = divmod(g, n)
            if epoch not in self._orders:
                self._orders = {epoch: torch.randperm(n, generator=torch.Generator().manual_seed(
                    self.config.seed + epoch)).tolist()}
            out.append(self.examples[self._orders[epoch][offset]])
        return out

    # ------------------------------------------------------------------ training
    def train(self, resume: bool = False, on_log: Callable[[dict[str, float]], None] | None = None) -> Path:
        """Run the training; return the output directory (adapter + ``echo_splade.json``).

        Args:
            resume: continue from the latest checkpoint under the output directory.
            on_log: called with each step's log record.

        Raises:
            TrainingCollapsedError: vectors stayed all-zero for ``collapse_patience`` steps.
        """
        cfg = self.config
        encoder, optimizer, scheduler = self._build()
        self.encoder = encoder
        self._orders: dict[int, list[int]] = {}
        start = 0
        if resume:
            start = self._restore(encoder, optimizer, scheduler)
        elif (self.output_dir / CHECKPOINTS).is_dir() and any((self.output_dir / CHECKPOINTS).iterdir()):
            raise ValueError(f"{self.output_dir} already holds checkpoints; pass resume=True (--resume) to continue "
                             "or choose another output directory")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "training_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        use_bf16 = self.device.type == "cuda"
        zero_steps = 0
        with (self.output_dir / LOG_FILE).open("a", encoding="utf-8") as log_file:
            for step in range(start, cfg.steps):
                began = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                totals: dict[str, float] = {}
                for micro in range(cfg.grad_accum):
                    batch = self._micro_batch(step, micro)
                    with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        parts, stats = self._forward(encoder, batch, step)
                    (parts["loss"] / cfg.grad_accum).backward()
                    for key, value in {**{k: float(v.detach()) for k, v in parts.items()}, **stats}.items():
                        totals[key] = totals.get(key, 0.0) + value / cfg.grad_accum
                torch.nn.utils.clip_grad_norm_(
                    [p for p in encoder.model.parameters() if p.requires_grad], cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                record = {"step": step + 1, **totals, "lr": scheduler.get_last_lr()[0],
                          "seconds": time.perf_counter() - began}
                self.history.append(record)
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                logger.info("step %d/%d loss %.4f ranking %.4f flops_q %.2f flops_d %.2f nnz_q %.0f nnz_d %.0f",
                            step + 1, cfg.steps, record["loss"], record["ranking"], record["flops_q"],
                            record["flops_d"], record["nnz_q"], record["nnz_d"])
                if on_log is not None:
                    on_log(record)
                zero_steps = zero_steps + 1 if min(record["nnz_q"], record["nnz_d"]) == 0 else 0
                if zero_steps >= cfg.collapse_patience:
                    raise TrainingCollapsedError(
                        f"training stopped at step {step + 1}: query or document vectors have been all-zero for "
                        f"{zero_steps} steps (mean non-zeros q={record['nnz_q']:.0f}, d={record['nnz_d']:.0f}); "
                        "lower lambda_q/lambda_d or the learning rate, or lengthen flops_ramp_steps. "
                        f"Checkpoints so far are under {self.output_dir / CHECKPOINTS}")
                if cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                    self._checkpoint(encoder, optimizer, scheduler, step + 1)
        encoder.save_pretrained(self.output_dir)
        logger.info("saved the adapter to %s", self.output_dir)
        return self.output_dir

    def _forward(self, encoder: EchoSpladeEncoder, batch: list[TrainingExample],
                 step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        queries = encoder.forward([e.query for e in batch], "query")  # [batch, vocab]
        negatives_text = [e.negative for e in batch if e.negative]
        documents = encoder.forward([e.positive for e in batch] + negatives_text, "document")
        positives, negatives = documents[:len(batch)], documents[len(batch):]
        # Pairs that are relevant but not the labelled positive (same query twice in a batch) are no negatives.
        doc_texts = [e.positive for e in batch] + negatives_text
        ignore = torch.tensor([[j != i and (doc_texts[j] == e.positive or (j < len(batch) and batch[j].query == e.query))
                                for j in range(len(doc_texts))] for i, e in enumerate(batch)])
        parts = self.loss(queries, positives, negatives, step=step, ignore=ignore)
        stats = {"nnz_q": float((queries > 0).sum(dim=1).float().mean()),
                 "nnz_d": float((documents > 0).sum(dim=1).float().mean())}
        return parts, stats

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, encoder: EchoSpladeEncoder, optimizer: torch.optim.Optimizer, scheduler: Any,
                    step: int) -> Path:
        folder = self.output_dir / CHECKPOINTS / f"step-{step:07d}"
        scratch = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        encoder.save_pretrained(scratch)
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                    "config": self.config.to_dict()}, scratch / STATE_FILE)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(scratch, folder)
        for old in self._checkpoints()[:-self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint at step %d: %s", step, folder)
        return folder

    def _checkpoints(self) -> list[Path]:
        root = self.output_dir / CHECKPOINTS
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")
                      and not p.name.endswith(".tmp") and (p / STATE_FILE).is_file())

    def _restore(self, encoder: EchoSpladeEncoder, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        checkpoints = self._checkpoints()
        if not checkpoints:
            raise ValueError(f"nothing to resume: no checkpoint under {self.output_dir / CHECKPOINTS}")
        latest = checkpoints[-1]
        state = torch.load(latest / STATE_FILE, map_location="cpu", weights_only=False)
        saved = TrainingConfig.from_dict(state["config"]).to_dict()
        changed = sorted(k for k, v in self.config.to_dict().items() if saved.get(k) != v and k != "steps")
        if changed:
            raise ValueError(f"cannot resume from {latest}: options changed since it was written: {changed}")
        set_peft_model_state_dict(encoder.model, load_file(str(latest / "adapter_model.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        logger.info("resuming from %s (step %d)", latest, state["step"])
        return int(state["step"])
