// The chart's CRDs: each openAPIV3Schema is structural (the API server's rules for
// apiextensions.k8s.io/v1: a type on every node, no properties beside additionalProperties, items
// on arrays, x-kubernetes-int-or-string only with its anyOf, nothing but a type on metadata), and
// the objects given are checked against the schema of their kind with AJV (as the API server
// validates a custom resource): every object of a "valid" file must pass; every object of an
// "invalid" file must fail at the path its annotation test.cilium.io/expect names.
// Usage: node crds.mjs RENDERED.yaml valid:FILE... invalid:FILE...
import fs from "node:fs";
import YAML from "yaml";
import Ajv from "ajv";

let failures = 0;
const fail = (msg) => {
  console.error(msg);
  failures++;
};
const docs = (file) =>
  YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
    .map((d) => d.toJS())
    .filter((o) => o);

// --- structural -------------------------------------------------------------------------------
function structural(node, path, errors) {
  if (typeof node !== "object" || node === null) {
    errors.push(`${path}: not a schema`);
    return;
  }
  const intOrString = node["x-kubernetes-int-or-string"] === true;
  if (intOrString) {
    const types = (node.anyOf || []).map((s) => s.type).sort().join(",");
    if (types !== "integer,string") errors.push(`${path}: x-kubernetes-int-or-string needs anyOf integer, string`);
    if (node.type) errors.push(`${path}: x-kubernetes-int-or-string has no type`);
  } else if (!node.type) {
    errors.push(`${path}: no type`);
  }
  if (node.anyOf && !intOrString) errors.push(`${path}: anyOf outside x-kubernetes-int-or-string`);
  for (const k of ["oneOf", "allOf", "not", "$ref", "definitions"])
    if (k in node) errors.push(`${path}: ${k} is not allowed in a structural schema here`);
  if (node.properties && node.additionalProperties !== undefined)
    errors.push(`${path}: properties and additionalProperties are mutually exclusive`);
  if (node.type === "array") {
    if (!node.items) errors.push(`${path}: array without items`);
    else structural(node.items, `${path}.items`, errors);
  } else if (node.items) {
    errors.push(`${path}: items on a ${node.type}`);
  }
  if (node.type !== "object" && (node.properties || node.additionalProperties))
    errors.push(`${path}: properties on a ${node.type}`);
  if (node["x-kubernetes-preserve-unknown-fields"] !== undefined && node["x-kubernetes-preserve-unknown-fields"] !== true)
    errors.push(`${path}: x-kubernetes-preserve-unknown-fields must be true when set`);
  for (const [k, v] of Object.entries(node.properties || {})) structural(v, `${path}.properties.${k}`, errors);
  if (typeof node.additionalProperties === "object") structural(node.additionalProperties, `${path}.additionalProperties`, errors);
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const validators = {};
const [rendered, ...samples] = process.argv.slice(2);
const crds = docs(rendered).filter((o) => o.kind === "CustomResourceDefinition");
if (crds.length === 0) fail(`${rendered}: no CustomResourceDefinition (render with --include-crds)`);
for (const crd of crds) {
  for (const v of crd.spec.versions) {
    const schema = v.schema && v.schema.openAPIV3Schema;
    const where = `${crd.metadata.name} ${v.name}`;
    if (!schema) {
      fail(`${where}: no openAPIV3Schema`);
      continue;
    }
    const errors = [];
    structural(schema, "openAPIV3Schema", errors);
    const meta = schema.properties && schema.properties.metadata;
    if (!meta || Object.keys(meta).some((k) => k !== "type")) errors.push("metadata: only its type may be given");
    // what the agent reads is typed, not only kept (a policy's status is written, never read)
    for (const [top, s] of Object.entries(schema.properties || {})) {
      if (["apiVersion", "kind", "metadata"].includes(top)) continue;
      if (top === "status" && crd.spec.names.kind.endsWith("NetworkPolicy")) continue;
      const n = s.type === "array" ? s.items : s;
      if (n.type === "object" && !n.properties && !n.additionalProperties) errors.push(`${top}: kept but not typed`);
    }
    errors.forEach((e) => fail(`${where}: ${e}`));
    validators[`cilium.io/${v.name}/${crd.spec.names.kind}`] = ajv.compile(schema);
  }
}

let valid = 0;
let refused = 0;
for (const arg of samples) {
  const [mode, file] = [arg.slice(0, arg.indexOf(":")), arg.slice(arg.indexOf(":") + 1)];
  for (const obj of docs(file)) {
    const name = `${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const validate = validators[`${obj.apiVersion}/${obj.kind}`];
    if (!validate) {
      fail(`${name}: no CRD for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    const ok = validate(obj);
    const errs = (validate.errors || []).map((e) => `${e.instancePath} ${e.message}`).join("; ");
    if (mode === "valid") {
      if (ok) valid++;
      else fail(`${name}: refused: ${errs}`);
    } else {
      const want = obj.metadata.annotations && obj.metadata.annotations["test.cilium.io/expect"];
      if (want === undefined) fail(`${name}: no test.cilium.io/expect annotation`);
      else if (ok) fail(`${name}: accepted, want an error at ${want}`);
      else if (!(validate.errors || []).some((e) => e.instancePath === want)) fail(`${name}: errors ${errs}, want one at ${want}`);
      else refused++;
    }
  }
}
console.log(`crds.mjs: ${crds.length} CRDs structural, ${valid} objects valid, ${refused} invalid ones refused, ${failures} failures`);
process.exit(failures ? 1 : 0);
