// Prints what a JavaScript expression yields over the objects of a rendered chart: `objs` (every
// object), `get(kind, name)` (one, or an error). Strings print as they are, the rest as JSON.
// Usage: node query.mjs RENDERED.yaml 'get("ConfigMap", "cilium-config").data["routing-mode"]'
import fs from "node:fs";
import YAML from "yaml";

const objs = YAML.parseAllDocuments(fs.readFileSync(process.argv[2], "utf8"))
  .map((d) => d.toJS())
  .filter((o) => o);
// eslint-disable-next-line no-unused-vars
function get(kind, name) {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
}
const v = eval(process.argv[3]);
process.stdout.write((typeof v === "string" ? v : JSON.stringify(v)) + "\n");
