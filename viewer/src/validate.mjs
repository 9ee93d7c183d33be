// Validate .glb files with the Khronos glTF validator; prints one JSON report per file.
// Usage: node src/validate.mjs FILE.glb [...]   (exit 1 when any file has errors)
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

let failed = false;
for (const path of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(await readFile(path)));
  const { numErrors, numWarnings } = report.issues;
  console.log(JSON.stringify({ path, numErrors, numWarnings, messages: report.issues.messages.slice(0, 20) }));
  failed ||= numErrors > 0;
}
process.exit(failed ? 1 : 0);
