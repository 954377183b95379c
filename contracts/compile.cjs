// Compiles a solc standard-JSON input read from stdin with the pinned solcjs and prints the
// standard-JSON output. Imports ("@openzeppelin/...") resolve from this folder's node_modules.
// Driven by meshops/chain/build.py; exits naturally so large outputs are never cut short.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const roots = [path.join(__dirname, "src"), path.join(__dirname, "node_modules")];

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.resolve(root, importPath);
    if (candidate.startsWith(root + path.sep) && fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `import not found: ${importPath}` };
}

const input = fs.readFileSync(0, "utf8");
if (process.argv.includes("--version")) {
  process.stdout.write(solc.version() + "\n");
} else {
  process.stdout.write(solc.compile(input, { import: findImports }));
}
