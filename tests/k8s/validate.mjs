// Validates Kubernetes manifests offline against the API schemas of the npm package
// kubernetes-models. Usage: node validate.mjs FILE... ("-" reads stdin, e.g. `kubectl kustomize`).
// Exits 1 naming every object that fails, or that is of a kind the schemas do not know.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file === "-" ? 0 : file, "utf8");
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const name = `${obj.kind}/${obj.metadata?.name ?? "?"} (${file})`;
    if (obj.kind === "Kustomization") {
      // Read by kubectl kustomize, not by the API server: the test renders it instead.
      console.log(`skip ${name}: not an API object`);
      continue;
    }
    try {
      const models = await import(`kubernetes-models/${obj.apiVersion}`);
      const Model = models[obj.kind];
      if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
      new Model(obj).validate();
      console.log(`ok   ${name}`);
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
