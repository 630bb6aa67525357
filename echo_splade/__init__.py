"""echo-splade: Echo-Mistral-SPLADE learned sparse retrieval for OpenSearch and Elasticsearch.

Subpackages (one per top-level folder of the repository):

- ``echo_splade.encoder``: the model (decoder LLM + LoRA + echo input + SPLADE head); no cluster code.
- ``echo_splade.client``: one small engine-neutral interface over opensearch-py / elasticsearch-py.
- ``echo_splade.mappings``: index mappings, feature-name scheme, provisioning, bulk-load settings.
- ``echo_splade.ingest``: the Ray job that encodes a corpus and bulk-writes it.
- ``echo_splade.connector``: the query-side library (query encoding, DSL rewrite, hybrid, explanations).
- ``echo_splade.integration``: a real local node, evaluation and the demo.
"""

__version__ = "0.1.0"
