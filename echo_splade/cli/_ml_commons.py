from __future__ import annotations

import json
from typing import Any

import click


def provision_ml_commons(backend: Any, service_url: str, index: str, query_top_k: int, dry_run: bool) -> None:
    """``provision --ml-commons``: print every body (dry run) or apply and print the ids."""
    from echo_splade.integration.service import MlCommonsSetup

    setup = MlCommonsSetup(service_url=service_url, index=index, query_top_k=query_top_k)
    if dry_run:
        for request in setup.dry_run(backend):
            click.echo(request.render())
        click.echo("# dry run, nothing sent")
        return
    result = setup.apply(backend)
    for what in result["changed"]:
        click.echo(f"created/updated: {what}")
    if not result["changed"]:
        click.echo("nothing to do: everything is in place")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "changed"}, indent=2))
    click.echo(
        f"model_id: {result['query_model_id']}  (neural_sparse queries; documents: {result['document_model_id']})"
    )
