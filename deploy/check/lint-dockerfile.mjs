// Lints a Dockerfile offline with dockerfile-utils (the validator behind the
// Dockerfile language server) and exits 1 on any diagnostic, warnings included.
//   node lint-dockerfile.mjs ../../Dockerfile
import { readFileSync } from "node:fs";
import { validate, ValidationSeverity } from "dockerfile-utils";

const path = process.argv[2] ?? "../../Dockerfile";
const content = readFileSync(path, "utf8");

// Every optional check on, as an error.
const E = ValidationSeverity.ERROR;
const diagnostics = validate(content, {
  deprecatedMaintainer: E,
  directiveCasing: E,
  emptyContinuationLine: E,
  instructionCasing: E,
  instructionCmdMultiple: E,
  instructionEntrypointMultiple: E,
  instructionHealthcheckMultiple: E,
  instructionJSONInSingleQuotes: E,
  instructionWorkdirRelative: E,
});

for (const d of diagnostics) {
  const { line, character } = d.range.start;
  const kind = d.severity === 1 ? "error" : d.severity === 2 ? "warning" : "note";
  console.error(`${path}:${line + 1}:${character + 1}: ${kind}: ${d.message} (code ${d.code})`);
}
if (diagnostics.length > 0) {
  console.error(`${diagnostics.length} problem(s) in ${path}`);
  process.exit(1);
}
console.log(`${path}: no problems (dockerfile-utils)`);
