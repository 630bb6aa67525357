from __future__ import annotations

import signal
import threading

import click

from echo_splade.encoder import DEFAULT_MODEL  # torch-free (lazy package)

from ._options import adapter_option, cpu_speed_options, run_guarded


@click.command("serve")
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Encoder: built-in short name, trained encoder folder, or HF model dir/hub id.",
)
@adapter_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8600, show_default=True, help="HTTP port.")
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Texts per model call, batched across concurrent requests (1: batching off).",
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(0, 10_000),
    default=5.0,
    show_default=True,
    help="How long a batch waits for more texts before the model runs.",
)
@click.option(
    "--max-texts", type=click.IntRange(min=1), default=256, show_default=True, help="Texts per request (more: 413)."
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Characters per text (more: 413); long texts are windowed like ingest.",
)
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True, help="Model replicas.")
@click.option("--device", help="cpu, cuda, ... [default: CUDA when present]")
@click.option(
    "--threads", type=click.IntRange(min=1), help="Torch CPU threads per replica. [default: cores / replicas]"
)
@click.option("--ray-port", type=click.IntRange(1024, 65535), help="GCS port of the local Ray cluster.")
@cpu_speed_options
def command(
    model,
    adapter,
    host,
    port,
    max_batch_size,
    batch_wait_ms,
    max_texts,
    max_chars,
    replicas,
    device,
    threads,
    ray_port,
    encoder_options,
) -> None:
    """Serve the encoder over HTTP until Ctrl-C / SIGTERM (in-flight requests finish first).

    \b
    Routes: POST /encode {"texts": [...], "kind": "document"|"query", "top_k"?, "min_weight"?}
            GET /health, GET /metrics (Prometheus), GET /info, GET /openapi.json
    Wire it into OpenSearch with `echo-splade provision --ml-commons`; see README "Use it from OpenSearch".
    """

    def action() -> None:
        from echo_splade.integration.service import EncoderService, ServiceConfig, ServiceStartError

        config = ServiceConfig(
            model=model,
            adapter=adapter,
            host=host,
            port=port,
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            max_texts=max_texts,
            max_chars=max_chars,
            replicas=replicas,
            device=device,
            threads=threads,
            ray_port=ray_port,
            **encoder_options,
        )
        service = EncoderService(config)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            service.start()
        except ServiceStartError as exc:
            raise click.ClickException(
                f"{exc} (a busy machine: try again; --ray-port picks the Ray GCS port)"
            ) from None
        click.echo(f"echo-splade serve: {config.model} at {service.url} (POST /encode, GET /health, /metrics)")
        try:
            stop.wait()
        finally:
            click.echo("stopping: in-flight requests finish first")
            service.stop()

    run_guarded(action)
