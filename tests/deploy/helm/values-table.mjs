// Prints the values table of deploy/helm/cilium/README.md from values.yaml: every leaf value (maps
// of free keys such as labels count as one), its default, and the `# --` comment above it (or
// above its parent when it is the parent's only key). render_test.sh checks the README holds it.
// Usage: node values-table.mjs values.yaml
import fs from "node:fs";
import YAML from "yaml";

const text = fs.readFileSync(process.argv[2], "utf8");
const data = YAML.parse(text);
const desc = {};
let stack = [];
let pending = [];
for (const line of text.split("\n")) {
  const s = line.trim();
  if (s.startsWith("# --")) {
    pending = [s.slice(4).trim()];
    continue;
  }
  if (s.startsWith("#") && pending.length) {
    pending.push(s.slice(1).trim());
    continue;
  }
  const m = /^( *)([A-Za-z0-9_]+):/.exec(line);
  if (!m) {
    if (!s.startsWith("-")) pending = [];
    continue;
  }
  stack = stack.slice(0, m[1].length / 2).concat([m[2]]);
  if (pending.length) desc[stack.join(".")] = pending.join(" ");
  pending = [];
}
const opaque = /(Annotations|Labels|annotations|labels|nodeSelector|affinity|resources|extraConfig|updateStrategy)$/;
const rows = [];
function walk(v, path, parent) {
  if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length && !opaque.test(path)) {
    for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, v);
    return;
  }
  let d = desc[path] || "";
  const up = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
  if (!d && up && Object.keys(parent).length === 1) d = desc[up] || "";
  rows.push(`| \`${path}\` | \`${JSON.stringify(v)}\` | ${d.replaceAll("|", "\\|")} |`);
}
walk(data, "", null);
process.stdout.write(["| key | default | description |", "|---|---|---|", ...rows].join("\n") + "\n");
