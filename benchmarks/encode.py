"""Encoder throughput and memory: EchoSpladeEncoder vs a naive implementation, same texts, same run.

The naive implementation gets the very same echo inputs (windows) but runs
``model(ids).logits`` over each padded batch in input order (no length sorting),
then ``log1p(relu(.))`` and a max over the second copy: it holds
``batch x seq x vocab`` logits. Each implementation runs in its own subprocess
so its peak RSS is its own. Prints docs/s, tokens/s (real, unpadded input
tokens), peak RSS (and peak CUDA memory on a GPU) for each, and the ratios.

Cases:
  corpus   SciFact documents of varied lengths (a seeded sample), windowed at --max-length.
  memory   16 texts x 512 input tokens in one batch, 32,000-token vocabulary (tiny-mistral).

    python benchmarks/encode.py --case corpus --model tiny-mistral --sample 400
    python benchmarks/encode.py --case corpus --model smollm2-135m --sample 48
    python benchmarks/encode.py --case memory
    python benchmarks/encode.py --case corpus --shape mistral-7b --random-init --sample 256   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

MISTRAL_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=32768,
    sliding_window=None,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)
H100_BF16_DENSE_TFLOPS = 989.0


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (Linux ``clear_refs`` 5), so warm-up peaks do not count."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (or since start), in MiB."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_texts(args) -> list[str]:
    from echo_splade.encoder import document_text

    if args.case == "memory":
        # Long enough that every text fills a 512-token echo input (truncated to one window).
        rng = random.Random(args.seed)
        words = "protein cell gene tumor patient dose trial risk brain heart blood virus immune receptor".split()
        return [" ".join(rng.choice(words) for _ in range(600)) for _ in range(16)]
    rows = [json.loads(line) for line in Path(args.corpus).open(encoding="utf-8") if line.strip()]
    rng = random.Random(args.seed)
    sample = rng.sample(rows, min(args.sample, len(rows)))
    return [
        document_text(r.get("title", ""), r.get("text", ""))
        for r in sample
        if document_text(r.get("title", ""), r.get("text", ""))
    ]


def build_encoder(args):
    import torch

    from echo_splade.encoder import EchoSpladeEncoder, load_tokenizer

    options = dict(max_length=args.max_length, batch_size=args.batch_size, truncate=args.case == "memory")
    if args.shape is None:
        return EchoSpladeEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype, **options)
    from transformers import MistralConfig, MistralForCausalLM

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build in bf16 directly: no fp32 copy of 7B weights
    try:
        with torch.device(device):
            model = MistralForCausalLM(MistralConfig(**MISTRAL_7B)).eval()
    finally:
        torch.set_default_dtype(previous)
    return EchoSpladeEncoder(model, load_tokenizer("tiny-mistral"), "mistral-7b-random-init", **options)


def naive_encode(encoder, texts: list[str]) -> list:
    """Same windows, input order, full ``model(ids).logits`` per padded batch (see ``naive_splade_weights``)."""
    import torch

    from echo_splade.encoder import naive_splade_weights, to_sparse_vector

    windows = encoder.prepare(texts, "document")
    merged: dict[int, torch.Tensor] = {}
    device = encoder.device
    for start in range(0, len(windows), encoder.batch_size):
        batch = windows[start : start + encoder.batch_size]
        longest = max(len(w.input_ids) for _, w in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        pool = torch.zeros(len(batch), longest, dtype=torch.bool)
        for i, (_, w) in enumerate(batch):
            ids[i, : len(w.input_ids)] = torch.tensor(w.input_ids)
            mask[i, : len(w.input_ids)] = 1
            pool[i, w.pool_start : w.pool_end] = True
        weights = naive_splade_weights(encoder.model, ids.to(device), mask.to(device), pool.to(device)).cpu()
        for i, (row, _) in enumerate(batch):
            merged[row] = weights[i] if row not in merged else torch.maximum(merged[row], weights[i])
    return [to_sparse_vector(merged[row], None, None) for row in range(len(texts))]


def worker(args) -> None:
    """Measure one implementation; print one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = build_encoder(args)
    texts = load_texts(args)
    cuda = encoder.device.type == "cuda"
    run = (
        (lambda t: encoder.encode_documents(t)) if args.worker == "efficient" else (lambda t: naive_encode(encoder, t))
    )
    with torch.inference_mode():
        run(texts[:1])  # warm-up
        rss_loaded = _status_mb("VmRSS") or peak_rss_mb()
        reset_peak_rss()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        vectors = run(texts)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
    windows = encoder.prepare(texts, "document")
    tokens = sum(len(w.input_ids) for _, w in windows)
    pooled = sum(w.pool_end - w.pool_start for _, w in windows)
    result = {
        "impl": args.worker,
        "docs": len(texts),
        "windows": len(windows),
        "tokens": tokens,
        "seconds": seconds,
        "docs_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_loaded,
        "peak_over_baseline_mb": peak_rss_mb() - rss_loaded,
        "mean_nnz": sum(len(v) for v in vectors) / len(vectors),
        "device": str(encoder.device),
    }
    if cuda:
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        weights = sum(p.numel() * p.element_size() for p in encoder.model.parameters()) / 2**20
        result["cuda_weights_mb"] = weights
        result["peak_cuda_over_weights_mb"] = result["peak_cuda_mb"] - weights
        params = sum(p.numel() for p in encoder.model.parameters())
        head = encoder.model.get_output_embeddings().weight.numel()
        head_positions = pooled if args.worker == "efficient" else tokens
        flop = 2 * (params - head) * tokens + 2 * head * head_positions
        result["model_tflops_per_s"] = flop / seconds / 1e12
        result["mfu"] = result["model_tflops_per_s"] / args.peak_tflops
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["corpus", "memory"], default="corpus")
    parser.add_argument("--model", default="tiny-mistral", help="short name or HF dir (ignored with --shape)")
    parser.add_argument("--shape", choices=["mistral-7b"], help="build a model of this shape instead of loading one")
    parser.add_argument("--random-init", action="store_true", help="required with --shape: random weights, no download")
    parser.add_argument("--corpus", default="/work/shared/data/scifact/corpus.jsonl")
    parser.add_argument("--sample", type=int, default=400, help="documents sampled from the corpus")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", help="default: CUDA when present")
    parser.add_argument("--dtype", help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--threads", type=int, help="torch CPU threads in each worker")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=H100_BF16_DENSE_TFLOPS,
        help="accelerator peak for model FLOP utilisation (default: H100 SXM bf16 dense)",
    )
    parser.add_argument("--only", choices=["efficient", "naive"], help="run one implementation")
    parser.add_argument("--worker", choices=["efficient", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "memory":
        args.max_length, args.batch_size = 512, 16
    if args.shape:
        import torch

        if not args.random_init:
            parser.error("--shape builds a model without weights: pass --random-init")
        if not torch.cuda.is_available() or (args.device or "cuda").startswith("cpu"):
            parser.error(
                f"--shape {args.shape} needs a CUDA GPU: the model alone is ~14.5 GB in bf16 and one "
                "CPU pass over the corpus would take hours"
            )
    if args.worker:
        worker(args)
        return

    forwarded, skip = [], False
    for arg in sys.argv[1:]:  # everything but --only goes to the workers
        if skip or arg == "--only" or arg.startswith("--only="):
            skip = arg == "--only"
            continue
        forwarded.append(arg)
    results = {}
    for impl in [args.only] if args.only else ["efficient", "naive"]:
        proc = subprocess.run([sys.executable, __file__, *forwarded, "--worker", impl], capture_output=True, text=True)
        line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.stderr.write(proc.stderr[-4000:])
            sys.exit(f"the {impl} worker failed (exit {proc.returncode})")
        results[impl] = json.loads(line[len("RESULT ") :])

    what = f"{args.shape} (random init)" if args.shape else args.model
    first = next(iter(results.values()))
    print(
        f"case={args.case} model={what} device={first['device']} docs={first['docs']} windows={first['windows']} "
        f"input tokens={first['tokens']} max_length={args.max_length} batch_size={args.batch_size}"
    )
    columns = [
        "docs_per_s",
        "tokens_per_s",
        "peak_rss_mb",
        "rss_before_mb",
        "peak_over_baseline_mb",
        "peak_cuda_mb",
        "model_tflops_per_s",
        "mfu",
        "mean_nnz",
        "seconds",
    ]
    columns = [c for c in columns if any(c in r for r in results.values())]
    print(f"{'':10}" + "".join(f"{c:>20}" for c in columns))
    for impl, r in results.items():
        print(f"{impl:10}" + "".join(f"{r.get(c, float('nan')):>20.3f}" for c in columns))
    if len(results) == 2:
        e, n = results["efficient"], results["naive"]
        print(f"throughput ratio efficient/naive: {e['docs_per_s'] / n['docs_per_s']:.2f}x docs/s")
        print(
            f"peak RSS ratio efficient/naive:   {e['peak_rss_mb'] / n['peak_rss_mb']:.3f} (whole process; "
            f"both hold the same ~{e['rss_before_mb']:.0f} MB of libraries and weights before encoding)"
        )
        print(
            f"peak RSS above that baseline, efficient/naive: "
            f"{e['peak_over_baseline_mb'] / max(n['peak_over_baseline_mb'], 1e-9):.3f}"
        )
        if "peak_cuda_mb" in e:
            print(f"peak CUDA memory ratio efficient/naive: {e['peak_cuda_mb'] / n['peak_cuda_mb']:.3f}")
            print(
                f"peak CUDA memory above the {e['cuda_weights_mb']:.0f} MiB of weights, efficient vs naive: "
                f"{e['peak_cuda_over_weights_mb']:.0f} vs {n['peak_cuda_over_weights_mb']:.0f} MiB "
                f"({e['peak_cuda_over_weights_mb'] / max(n['peak_cuda_over_weights_mb'], 1e-9):.2f}x)"
            )


if __name__ == "__main__":
    main()
