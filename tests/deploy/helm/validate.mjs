// Validates every object of rendered manifests (multi-document YAML files) against the
// Kubernetes OpenAPI schemas (npm kubernetes-models) and the Prometheus operator's CRD schemas
// (@kubernetes-models/prometheus-operator); an object of a kind neither knows is an error.
// Usage: node validate.mjs FILE...
import fs from "node:fs";
import YAML from "yaml";

async function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
  const pkg =
    group === "monitoring.coreos.com" ? "@kubernetes-models/prometheus-operator" : "kubernetes-models";
  try {
    const mod = await import(`${pkg}/${apiVersion}/${kind}`);
    return mod[kind] || null;
  } catch (e) {
    return null;
  }
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${file}: document ${i + 1}`;
    if (doc.errors.length) {
      console.error(`${where}: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const Model = await modelFor(String(obj.apiVersion), String(obj.kind));
    if (!Model) {
      console.error(`${where} (${name}): no schema for ${obj.apiVersion} ${obj.kind}`);
      failures++;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
    } catch (e) {
      console.error(`${where} (${name}): ${e.message}`);
      failures++;
    }
  }
}
console.log(`validate.mjs: ${checked} objects valid, ${failures} failures`);
process.exit(failures ? 1 : 0);
