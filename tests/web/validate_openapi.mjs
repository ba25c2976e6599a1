// Validates the OpenAPI document a running quiesce serves (or a file, for the test that it fails), with @apidevtools/swagger-parser
// (schema of OpenAPI 3.1 plus its own checks: $refs resolve, operationIds unique, path
// parameters declared). Prints the document's operations as JSON: [[METHOD, path], ...].
import SwaggerParser from "@apidevtools/swagger-parser";
import { readFile } from "node:fs/promises";

async function load(where) {
  if (!where.startsWith("http")) return JSON.parse(await readFile(where, "utf8"));
  const res = await fetch(where);
  if (!res.ok || !res.headers.get("content-type").startsWith("application/json")) {
    console.error(`GET ${where}: ${res.status} ${res.headers.get("content-type")}`);
    process.exit(1);
  }
  return res.json();
}

const doc = await load(process.argv[2]);
if (doc.openapi !== "3.1.0") {
  console.error(`not OpenAPI 3.1: ${doc.openapi}`);
  process.exit(1);
}
await SwaggerParser.validate(structuredClone(doc));
const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const operations = [];
for (const [path, item] of Object.entries(doc.paths))
  for (const m of methods) if (item[m]) operations.push([m.toUpperCase(), path, Object.keys(item[m].responses)]);
console.log(JSON.stringify(operations));
