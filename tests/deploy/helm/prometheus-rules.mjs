// Prints the spec (rule groups) of the PrometheusRule objects of a rendered chart as a Prometheus
// rules file, for promtool. Usage: node prometheus-rules.mjs RENDERED.yaml > rules.yaml
import fs from "node:fs";
import YAML from "yaml";

const groups = [];
for (const doc of YAML.parseAllDocuments(fs.readFileSync(process.argv[2], "utf8"))) {
  const obj = doc.toJS();
  if (obj && obj.kind === "PrometheusRule") groups.push(...obj.spec.groups);
}
if (groups.length === 0) {
  console.error(`${process.argv[2]}: no PrometheusRule`);
  process.exit(1);
}
process.stdout.write(YAML.stringify({ groups }));
