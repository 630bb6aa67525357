from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ._echo_splade_encoder import EchoSpladeEncoder, TextKind
from ._model_registry import cache_dir
from ._splade_loss import SpladeLoss
from ._training_config import TrainingConfig
from ._training_data import TrainingExample
from ._vocab_bias import VocabBias

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"
LOG_FILE = "train_log.jsonl"


class TrainingCollapsedError(ValueError):
    """The vectors went all-zero: the FLOPS regularisation (or learning rate) is too strong."""


class SpladeTrainer:
    """LoRA fine-tuning of an Echo-SPLADE encoder with InfoNCE + FLOPS (:class:`SpladeLoss`).

    Two stages, both optional: the *head stage* (``head_steps``) fits only the
    per-vocabulary bias (:class:`VocabBias`) on max-pooled logits computed once per
    distinct training text, then the *LoRA stage* (``steps``) trains the LoRA adapter
    (and the bias, if any) end to end.

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

    def __init__(
        self,
        config: TrainingConfig,
        examples: Sequence[TrainingExample],
        output_dir: str | os.PathLike,
        device: str | torch.device | None = None,
    ) -> None:
        if not examples:
            raise ValueError("no training examples")
        self.config = config
        self.examples = list(examples)
        self.output_dir = Path(output_dir)
        self.device = (
            torch.device(device)
            if device is not None
            else (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        )
        self.loss = SpladeLoss(config.lambda_q, config.lambda_d, config.flops_ramp_steps, config.temperature)
        self.encoder: EchoSpladeEncoder | None = None
        self.history: list[dict[str, Any]] = []
        self._orders: dict[int, list[int]] = {}  # epoch -> example order
        self._zero_steps = 0

    # ------------------------------------------------------------------ setup
    def _build(self) -> tuple[EchoSpladeEncoder, torch.optim.Optimizer | None, Any]:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        encoder = EchoSpladeEncoder.from_pretrained(
            cfg.model,
            device=self.device,
            dtype="float32",
            max_length=cfg.max_length,
            gguf_file=cfg.gguf_file,
            echo=cfg.echo,
            normalize=cfg.normalize,
            exclude=list(cfg.exclude),
            exclude_tokens=list(cfg.exclude_tokens),
        )
        if cfg.vocab_bias_init is not None:
            bias = VocabBias(encoder.vocab_size)
            with torch.no_grad():
                bias.bias.fill_(cfg.vocab_bias_init)
            encoder.vocab_bias = bias.to(self.device)
        elif encoder.vocab_bias is not None:  # training on from a trained encoder: its bias trains too
            encoder.vocab_bias.requires_grad_(True)
        if cfg.steps == 0:  # head stage only: no LoRA
            return encoder, None, None

        from peft import LoraConfig, get_peft_model
        from transformers import get_linear_schedule_with_warmup

        base = encoder.model
        if cfg.gradient_checkpointing:
            if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
                base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_targets),
            layers_to_transform=list(cfg.lora_layers) if cfg.lora_layers is not None else None,
            modules_to_save=list(cfg.train_modules) or None,
            bias="none",
        )
        encoder.model = get_peft_model(base, lora)
        encoder.model.train()
        trainable = [p for p in encoder.model.parameters() if p.requires_grad]
        logger.info(
            "LoRA: %d trainable parameters of %d",
            sum(p.numel() for p in trainable),
            sum(p.numel() for p in encoder.model.parameters()),
        )
        groups: list[dict[str, Any]] = [{"params": trainable}]
        if encoder.vocab_bias is not None:
            groups.append({"params": [encoder.vocab_bias.bias], "lr": cfg.head_learning_rate, "weight_decay": 0.0})
        optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps)
        return encoder, optimizer, scheduler

    def _micro_batch(
        self, step: int, micro: int, size: int | None = None, accum: int | None = None
    ) -> list[TrainingExample]:
        """The examples of one micro-batch: a seeded permutation per epoch, so resuming replays the same order."""
        n = len(self.examples)
        size = self.config.batch_size if size is None else size
        accum = self.config.grad_accum if accum is None else accum
        first = (step * accum + micro) * size
        out = []
        for g in range(first, first + size):
            epoch, offset = divmod(g, n)
            if epoch not in self._orders:
                self._orders = {
                    epoch: torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed + epoch)).tolist()
                }
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
        self._orders = {}
        start = 0
        if resume:
            if optimizer is None:
                raise ValueError("nothing to resume: a head-only run (steps 0) writes no checkpoints")
            start = self._restore(encoder, optimizer, scheduler)
        elif (self.output_dir / CHECKPOINTS).is_dir() and any((self.output_dir / CHECKPOINTS).iterdir()):
            raise ValueError(
                f"{self.output_dir} already holds checkpoints; pass resume=True (--resume) to continue "
                "or choose another output directory"
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "training_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        use_bf16 = self.device.type == "cuda"
        self._zero_steps = 0
        with (self.output_dir / LOG_FILE).open("a", encoding="utf-8") as log_file:
            if cfg.head_steps and not resume:  # a resumed run restores the fitted bias from its checkpoint
                self._fit_head(encoder, log_file, on_log)
            for step in range(start, cfg.steps):
                if optimizer is None:  # _build makes one whenever steps > 0
                    raise RuntimeError("the LoRA stage has no optimizer")
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
                    [p for p in encoder.model.parameters() if p.requires_grad], cfg.max_grad_norm
                )
                optimizer.step()
                scheduler.step()
                self._log(
                    "lora", step + 1, cfg.steps, {**totals, "lr": scheduler.get_last_lr()[0]}, began, log_file, on_log
                )
                if cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                    self._checkpoint(encoder, optimizer, scheduler, step + 1)
        encoder.save_pretrained(self.output_dir)
        logger.info("saved the adapter to %s", self.output_dir)
        return self.output_dir

    def _log(
        self,
        stage: str,
        step: int,
        steps: int,
        values: dict[str, float],
        began: float,
        log_file: Any,
        on_log: Callable[[dict[str, float]], None] | None,
    ) -> None:
        """Write one step's record, report it, and stop if the vectors have collapsed to all-zero."""
        record: dict[str, Any] = {"stage": stage, "step": step, **values, "seconds": time.perf_counter() - began}
        self.history.append(record)
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        logger.info(
            "%s step %d/%d loss %.4f ranking %.4f flops_q %.2f flops_d %.2f nnz_q %.0f nnz_d %.0f",
            stage,
            step,
            steps,
            record["loss"],
            record["ranking"],
            record["flops_q"],
            record["flops_d"],
            record["nnz_q"],
            record["nnz_d"],
        )
        if on_log is not None:
            on_log(record)
        self._zero_steps = self._zero_steps + 1 if min(record["nnz_q"], record["nnz_d"]) == 0 else 0
        if self._zero_steps >= self.config.collapse_patience:
            raise TrainingCollapsedError(
                f"training stopped at {stage} step {step}: query or document vectors have been all-zero for "
                f"{self._zero_steps} steps (mean non-zeros q={record['nnz_q']:.0f}, d={record['nnz_d']:.0f}); "
                "lower lambda_q/lambda_d or the learning rate, or lengthen flops_ramp_steps. "
                f"Checkpoints so far are under {self.output_dir / CHECKPOINTS}"
            )

    def _fit_head(
        self, encoder: EchoSpladeEncoder, log_file: Any, on_log: Callable[[dict[str, float]], None] | None
    ) -> None:
        """Head stage: fit the vocabulary bias alone on max-pooled logits computed once per distinct text."""
        cfg = self.config
        bias = encoder.vocab_bias  # set by _build: TrainingConfig requires vocab_bias_init for head_steps
        if bias is None:
            raise ValueError("the head stage trains the vocabulary bias: set vocab_bias_init")
        queries = sorted({e.query for e in self.examples})
        documents = sorted({e.positive for e in self.examples} | {e.negative for e in self.examples if e.negative})
        was_training = encoder.model.training
        encoder.model.eval()  # no dropout: the LoRA, if any, is still untrained (zero) here
        try:
            q_logits = self._head_features(encoder, queries, "query")  # [queries, vocab] float16
            d_logits = self._head_features(encoder, documents, "document")  # [documents, vocab] float16
        finally:
            encoder.model.train(was_training)
        q_row = {text: i for i, text in enumerate(queries)}
        d_row = {text: i for i, text in enumerate(documents)}
        optimizer = torch.optim.Adam([bias.bias], lr=cfg.head_learning_rate)
        for step in range(cfg.head_steps):
            began = time.perf_counter()
            batch = self._micro_batch(step, 0, size=cfg.head_batch_size, accum=1)
            doc_texts = [e.positive for e in batch] + [e.negative for e in batch if e.negative]
            q = bias(q_logits[[q_row[e.query] for e in batch]].to(self.device).float())  # [batch, vocab]
            d = bias(d_logits[[d_row[t] for t in doc_texts]].to(self.device).float())  # [batch + n, vocab]
            parts, stats = self._score(batch, q, d, step)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            self._log(
                "head",
                step + 1,
                cfg.head_steps,
                {**{k: float(v.detach()) for k, v in parts.items()}, **stats, "lr": cfg.head_learning_rate},
                began,
                log_file,
                on_log,
            )

    def _head_features(self, encoder: EchoSpladeEncoder, texts: list[str], kind: TextKind) -> torch.Tensor:
        """Max-pooled logits of ``texts`` (truncated to ``max_length`` like the LoRA stage), float16.

        Cached under ``<cache_dir>/features`` by base model, encoder options and texts, so a
        rerun with other head-stage settings starts at once.
        """
        key = hashlib.sha256(
            json.dumps(
                {
                    "model": encoder.model_id,
                    "gguf_file": encoder.gguf_file,
                    "kind": kind,
                    "truncate": True,
                    **{
                        k: getattr(encoder, k) for k in encoder.rev_keys if k not in ("top_k", "min_weight", "truncate")
                    },
                    "texts": texts,
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:20]
        path = cache_dir() / "features" / f"{kind}-{key}.pt"
        if path.is_file():
            logger.info("head stage: %d %s features from %s", len(texts), kind, path)
            return torch.load(path, map_location="cpu")
        logger.info("head stage: max-pooling %d %ss once (cached to %s)", len(texts), kind, path)
        began = time.perf_counter()
        features = encoder.max_logits(texts, kind, truncate=True).half()
        logger.info("head stage: %d %ss in %.0f s", len(texts), kind, time.perf_counter() - began)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(features, scratch)
        os.replace(scratch, path)
        return features

    def _forward(
        self, encoder: EchoSpladeEncoder, batch: list[TrainingExample], step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        queries = encoder.forward([e.query for e in batch], "query")  # [batch, vocab]
        negatives_text = [e.negative for e in batch if e.negative]
        documents = encoder.forward([e.positive for e in batch] + negatives_text, "document")
        return self._score(batch, queries, documents, step)

    def _score(
        self, batch: list[TrainingExample], queries: torch.Tensor, documents: torch.Tensor, step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Loss parts and non-zero counts of ``[batch, vocab]`` queries against ``[batch + n, vocab]`` documents
        (the batch's positives, then its hard negatives)."""
        positives, negatives = documents[: len(batch)], documents[len(batch) :]
        negatives_text = [e.negative for e in batch if e.negative]
        # Pairs that are relevant but not the labelled positive (same query twice in a batch) are no negatives.
        doc_texts = [e.positive for e in batch] + negatives_text
        ignore = torch.tensor(
            [
                [
                    j != i and (doc_texts[j] == e.positive or (j < len(batch) and batch[j].query == e.query))
                    for j in range(len(doc_texts))
                ]
                for i, e in enumerate(batch)
            ]
        )
        parts = self.loss(queries, positives, negatives, step=step, ignore=ignore)
        stats = {
            "nnz_q": float((queries > 0).sum(dim=1).float().mean()),
            "nnz_d": float((documents > 0).sum(dim=1).float().mean()),
        }
        return parts, stats

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(
        self, encoder: EchoSpladeEncoder, optimizer: torch.optim.Optimizer, scheduler: Any, step: int
    ) -> Path:
        folder = self.output_dir / CHECKPOINTS / f"step-{step:07d}"
        scratch = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        encoder.save_pretrained(scratch)
        torch.save(
            {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
                "config": self.config.to_dict(),
            },
            scratch / STATE_FILE,
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(scratch, folder)
        for old in self._checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint at step %d: %s", step, folder)
        return folder

    def _checkpoints(self) -> list[Path]:
        root = self.output_dir / CHECKPOINTS
        if not root.is_dir():
            return []
        return sorted(
            p
            for p in root.iterdir()
            if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp") and (p / STATE_FILE).is_file()
        )

    def _restore(self, encoder: EchoSpladeEncoder, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        from peft import set_peft_model_state_dict

        checkpoints = self._checkpoints()
        if not checkpoints:
            raise ValueError(f"nothing to resume: no checkpoint under {self.output_dir / CHECKPOINTS}")
        latest = checkpoints[-1]
        state = torch.load(latest / STATE_FILE, map_location="cpu", weights_only=False)
        saved = TrainingConfig.from_dict(state["config"]).to_dict()
        changed = sorted(
            k for k, v in self.config.to_dict().items() if saved.get(k) != v and k not in ("steps", "keep_checkpoints")
        )
        if changed:
            raise ValueError(f"cannot resume from {latest}: options changed since it was written: {changed}")
        set_peft_model_state_dict(encoder.model, load_file(str(latest / "adapter_model.safetensors")))
        saved_bias = VocabBias.load(latest)
        if (saved_bias is None) != (encoder.vocab_bias is None):
            raise ValueError(f"cannot resume from {latest}: its vocabulary bias does not match vocab_bias_init")
        if saved_bias is not None and encoder.vocab_bias is not None:
            with torch.no_grad():
                encoder.vocab_bias.bias.copy_(saved_bias.bias)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        logger.info("resuming from %s (step %d)", latest, state["step"])
        return int(state["step"])
