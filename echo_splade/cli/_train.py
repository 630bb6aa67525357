from __future__ import annotations

import json

import click

from ._options import run_guarded


def _layers(value: str | None) -> tuple[int, ...] | None:
    """``"18-29"`` or ``"0,5,7"`` -> layer indices; ``None``/``"all"`` -> all layers."""
    if value is None or value == "all":
        return None
    try:
        out: list[int] = []
        for part in value.split(","):
            first, _, last = part.partition("-")
            out.extend(range(int(first), int(last or first) + 1))
        return tuple(out)
    except ValueError:
        raise click.BadParameter(f"expected 'all', a range like 18-29 or a list like 0,5,7; got {value!r}") from None


@click.command("train")
@click.option(
    "--data",
    type=click.Path(exists=True),
    required=True,
    help='JSONL of {"query", "positive", "negative"?} or a BEIR folder with a train qrels split.',
)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory for the adapter (loadable with --model DIR), checkpoints and train_log.jsonl.",
)
@click.option("--model", default="smollm2-135m", show_default=True, help="Base model (short name, HF dir or hub id).")
@click.option("--gguf-file", help="Load the base model from this GGUF file inside --model.")
@click.option("--split", default="train", show_default=True, help="BEIR qrels split to train on (never 'test').")
@click.option(
    "--steps",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Optimizer steps of the LoRA stage (0: head stage only, no LoRA).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Queries per micro-batch.")
@click.option(
    "--grad-accum", type=click.IntRange(min=1), default=1, show_default=True, help="Micro-batches per optimizer step."
)
@click.option("--lr", "learning_rate", type=float, default=2e-4, show_default=True, help="AdamW learning rate.")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=50, show_default=True)
@click.option(
    "--max-length",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Model input tokens per text (template and both copies included).",
)
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lora-dropout", type=float, default=0.1, show_default=True)
@click.option(
    "--lora-targets",
    default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    show_default=True,
    help="Comma-separated module names to adapt.",
)
@click.option("--lora-layers", help="Decoder layers to adapt: 'all' (default), a range 18-29 or a list 0,5,7.")
@click.option(
    "--train-modules",
    default="",
    help="Comma-separated modules trained in full besides the LoRA, "
    "e.g. model.norm (the final norm before the LM head).",
)
@click.option("--lambda-q", type=float, default=5e-4, show_default=True, help="FLOPS weight of queries.")
@click.option("--lambda-d", type=float, default=5e-4, show_default=True, help="FLOPS weight of documents.")
@click.option(
    "--flops-ramp-steps",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Quadratic warm-up of the FLOPS weights.",
)
@click.option("--temperature", type=float, default=1.0, show_default=True, help="InfoNCE temperature.")
@click.option(
    "--normalize",
    type=click.Choice(["none", "log_softmax"]),
    default="none",
    show_default=True,
    help="What the SPLADE head max-pools: raw logits (the paper) or per-position log-probabilities "
    "(sparse from the start on small untrained decoders; pair with --vocab-bias-init).",
)
@click.option(
    "--vocab-bias-init",
    type=float,
    help="Add a trainable per-vocabulary bias to the logits, starting at "
    "this value (with log_softmax: the log-probability threshold, e.g. 3).",
)
@click.option(
    "--head-steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Steps fitting only the vocabulary bias, before the LoRA stage, on logits computed once per text.",
)
@click.option(
    "--head-batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Queries per head-stage step."
)
@click.option(
    "--head-lr",
    "head_learning_rate",
    type=float,
    default=0.05,
    show_default=True,
    help="Learning rate of the vocabulary bias.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Save a resumable checkpoint every N steps (0: only at the end).",
)
@click.option(
    "--keep-checkpoints",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="How many recent checkpoints to keep (each is a loadable encoder folder).",
)
@click.option("--no-gradient-checkpointing", is_flag=True, help="Keep activations (faster, more memory).")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --output.")
@click.option("--device", help="cpu, cuda, ... [default: CUDA when present]")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads.")
def command(
    data,
    output,
    model,
    gguf_file,
    split,
    steps,
    batch_size,
    grad_accum,
    learning_rate,
    warmup_steps,
    max_length,
    lora_r,
    lora_alpha,
    lora_dropout,
    lora_targets,
    lora_layers,
    train_modules,
    lambda_q,
    lambda_d,
    flops_ramp_steps,
    temperature,
    normalize,
    vocab_bias_init,
    head_steps,
    head_batch_size,
    head_learning_rate,
    seed,
    checkpoint_every,
    keep_checkpoints,
    no_gradient_checkpointing,
    resume,
    device,
    threads,
) -> None:
    """Fine-tune an Echo-SPLADE encoder (LoRA, InfoNCE + FLOPS) and write an adapter directory.

    \b
    Example:
      echo-splade train --data ../shared/data/scifact --output models/scifact --steps 500
      echo-splade encode --model models/scifact "what causes heart disease" --queries --terms 10
    """
    layers = _layers(lora_layers)

    def action() -> None:
        import torch

        from echo_splade.encoder import SpladeTrainer, TrainingConfig, load_training_examples

        if threads:
            torch.set_num_threads(threads)
        config = TrainingConfig(
            model=model,
            gguf_file=gguf_file,
            max_length=max_length,
            steps=steps,
            batch_size=batch_size,
            grad_accum=grad_accum,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()),
            lora_layers=layers,
            train_modules=tuple(t.strip() for t in train_modules.split(",") if t.strip()),
            lambda_q=lambda_q,
            lambda_d=lambda_d,
            flops_ramp_steps=flops_ramp_steps,
            temperature=temperature,
            normalize=normalize,
            vocab_bias_init=vocab_bias_init,
            head_steps=head_steps,
            head_batch_size=head_batch_size,
            head_learning_rate=head_learning_rate,
            seed=seed,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            gradient_checkpointing=not no_gradient_checkpointing,
        )
        examples = load_training_examples(data, split=split)
        click.echo(f"training on {len(examples)} examples from {data}", err=True)
        trainer = SpladeTrainer(config, examples, output, device=device)
        out = trainer.train(
            resume=resume,
            on_log=lambda record: click.echo(
                json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in record.items()})
            ),
        )
        click.echo(f"adapter written to {out} (load it with --model {out})", err=True)

    run_guarded(action)
