// An app's own search code, written against the official OpenSearch JavaScript client and unchanged:
// pointed at the cluster it searches with BM25; pointed at `echo-splade proxy` it gets learned sparse
// (or hybrid) results for the aliases the proxy rewrites, and everything else behaves as before.
//
//   SEARCH_URL=http://127.0.0.1:8700 SEARCH_INDEX=docs node search_app.mjs search "how much sleep do adults need"
//   SEARCH_URL=http://127.0.0.1:8700 node search_app.mjs other some-other-index   (bulk, get, count, cat)
import { Client } from "@opensearch-project/opensearch";

const client = new Client({
  node: process.env.SEARCH_URL ?? "http://127.0.0.1:9200",
  // credentials pass through the proxy untouched
  ...(process.env.SEARCH_USER ? { auth: { username: process.env.SEARCH_USER, password: process.env.SEARCH_PASSWORD } } : {}),
});

export async function searchDocs(index, text, size = 5) {
  const response = await client.search({
    index,
    body: {
      size,
      _source: ["title"],
      query: { bool: { must: [{ multi_match: { query: text, fields: ["title", "text"] } }] } },
    },
  });
  return {
    rewrite: response.headers["x-echo-splade-rewrite"] ?? null, // set by the proxy on the aliases it rewrites
    hits: response.body.hits.hits.map((h) => ({ id: h._id, score: h._score, title: h._source.title })),
  };
}

export async function otherApis(index) {
  const out = {};
  const bulk = await client.bulk({
    refresh: "true",
    body: [
      { index: { _index: index, _id: "a" } }, { title: "first", n: 1 },
      { index: { _index: index, _id: "b" } }, { title: "second", n: 2 },
    ],
  });
  out.bulk = { errors: bulk.body.errors, results: bulk.body.items.map((i) => i.index.result) };
  const doc = await client.get({ index, id: "b" });
  out.get = { status: doc.statusCode, found: doc.body.found, source: doc.body._source };
  const count = await client.count({ index, body: { query: { match: { title: "first" } } } });
  out.count = count.body.count;
  const cat = await client.cat.indices({ index, format: "json", h: "index,docs.count" });
  out.cat = cat.body;
  try {
    await client.get({ index, id: "missing" });
  } catch (err) {
    out.missing = { status: err.meta.statusCode, found: err.meta.body.found };
  }
  await client.indices.delete({ index });
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, arg, ...rest] = process.argv.slice(2);
  const result = what === "search"
    ? await searchDocs(process.env.SEARCH_INDEX ?? "docs", [arg, ...rest].join(" "))
    : await otherApis(arg);
  console.log(JSON.stringify(result));
}
